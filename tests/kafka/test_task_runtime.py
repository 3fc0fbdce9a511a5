"""The task runtime's branches, on the in-memory transport: no broker, a few seconds.

The service here is a toy: it adds up the integers of its partition, publishes
each running total, dead-letters what is not an integer, asks for a commit on
"!", and decides a "milestone" once the total reaches 100, which ``act`` then
publishes. Every exactly-once claim is checked the way a downstream reader
would: what ``read_committed`` shows on the output topics.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace

import pytest

from stream_mlops.config import KafkaSettings
from stream_mlops.events import DeadLetter
from stream_mlops.kafka.checkpoint import checkpoint_due
from stream_mlops.kafka.observer import BatchReport, CheckpointReport, RestoreReport
from stream_mlops.kafka.state import StateError, TaskSnapshot
from stream_mlops.kafka.task_runtime import (
    MAX_POLL_INTERVAL_MS,
    MAX_POLL_RECORDS,
    FencedError,
    Outputs,
    RuntimeConfig,
    TaskRuntime,
)
from stream_mlops.kafka.transport import (
    PartitionReader,
    Record,
    RecordTooLargeError,
    TopicPartition,
)
from tests.kafka.in_memory import MemoryCluster, MemoryGroupConsumer, MemoryProducer

pytestmark = pytest.mark.usefixtures("process_settings")

INPUTS = ("numbers", "more-numbers")
TOTALS = "totals"
MILESTONES = "milestones"
DEAD = "dead-letters"
STATE = "state"
GROUP = "tally-group"
MILESTONE = 100


@dataclass
class Tally:
    partition: int
    total: int = 0
    decided: bool = False
    #: how the task came to be: "fresh" or the offsets it was restored at
    origin: object = "fresh"


class TallyService:
    name = "tally"
    input_topics: Sequence[str] = INPUTS

    def __init__(self) -> None:
        self.acted: list[int] = []

    def fresh(self, partition: int) -> Tally:
        return Tally(partition)

    def restore(
        self, partition: int, state: bytes, offsets: Mapping[str, int], reader: PartitionReader
    ) -> Tally:
        data = json.loads(state)
        return Tally(partition, data["total"], data["decided"], origin=dict(offsets))

    def process(self, task: Tally, records: list[Record], out: Outputs) -> None:
        for record in records:
            assert record.value is not None
            text = record.value.decode()
            if text == "!":
                out.commit_soon()
                continue
            if not text.lstrip("-").isdigit():
                out.dead_letter(record, f"not an integer: {text!r}", "invalid")
                continue
            task.total += int(text)
            out.send(TOTALS, b"%d" % task.partition, b"%d" % task.total, "total")
            if task.total >= MILESTONE and not task.decided:
                task.decided = True
                out.commit_soon()

    def snapshot(self, task: Tally) -> bytes:
        return json.dumps({"total": task.total, "decided": task.decided}).encode()

    def has_actions(self, task: Tally) -> bool:
        return task.decided

    def act(self, task: Tally, out: Outputs) -> None:
        out.send(MILESTONES, b"%d" % task.partition, b"%d" % task.total, "milestone")
        self.acted.append(task.partition)
        task.decided = False
        task.total = -1_000_000  # never again

    def describe(self, tasks: Sequence[Tally]) -> dict[str, object]:
        return {"total": sum(t.total for t in tasks)}

    def totals(self) -> dict[str, object]:
        return {"acted": len(self.acted)}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Recorder:
    """An observer that keeps everything it is told."""

    polls: list[float] = field(default_factory=list)
    batches: list[BatchReport] = field(default_factory=list)
    checkpoints: list[CheckpointReport] = field(default_factory=list)
    assignments: list[frozenset[int]] = field(default_factory=list)
    restores: list[RestoreReport] = field(default_factory=list)

    def polled(self, at: float) -> None:
        self.polls.append(at)

    def batch_processed(self, report: BatchReport) -> None:
        self.batches.append(report)

    def checkpoint_ended(self, report: CheckpointReport) -> None:
        self.checkpoints.append(report)

    def assigned(self, partitions: frozenset[int]) -> None:
        self.assignments.append(partitions)

    def restored(self, report: RestoreReport) -> None:
        self.restores.append(report)


class Setup:
    def __init__(self, partitions: int = 2) -> None:
        self.cluster = MemoryCluster()
        self.partitions = partitions
        for topic in INPUTS:
            self.cluster.create_topic(topic, partitions)
        for topic in (TOTALS, MILESTONES, DEAD):
            self.cluster.create_topic(topic, partitions)
        self.cluster.create_topic(STATE, 1)
        self.clock = Clock()

    def config(
        self,
        instance: str = "a",
        *,
        max_events: int = 1_000_000,
        max_bytes: int = 100,
        batch_records: int = MAX_POLL_RECORDS,
    ) -> RuntimeConfig:
        return RuntimeConfig(
            group_id=GROUP,
            transactional_id=f"tally-{instance}",
            state_topic=STATE,
            dead_letter_topic=DEAD,
            checkpoint_interval_ms=200,
            checkpoint_max_events=max_events,
            max_record_bytes=max_bytes,
            batch_max_records=batch_records,
            session_timeout_ms=7000,
        )

    def runtime(
        self,
        instance: str = "a",
        *,
        max_events: int = 1_000_000,
        max_bytes: int = 100,
        batch_records: int = MAX_POLL_RECORDS,
        observers: Sequence[Recorder] = (),
        service: TallyService | None = None,
    ) -> TaskRuntime[Tally]:
        return TaskRuntime(
            service or TallyService(),
            self.cluster.transport(),
            self.config(
                instance, max_events=max_events, max_bytes=max_bytes, batch_records=batch_records
            ),
            observers=observers,
            clock=self.clock,
        )

    def send(self, values: Sequence[str], *, partition: int = 0, topic: str = INPUTS[0]) -> None:
        for value in values:
            self.cluster.produce(topic, value.encode(), key=b"k", partition=partition)

    def totals(self, partition: int | None = None) -> list[int]:
        return [
            int(r.value or b"")
            for r in self.cluster.committed_records(TOTALS)
            if partition is None or int(r.key or b"") == partition
        ]

    def milestones(self) -> list[int]:
        return [int(r.value or b"") for r in self.cluster.committed_records(MILESTONES)]

    def snapshots(self) -> list[TaskSnapshot]:
        return [
            TaskSnapshot.from_bytes(r.value or b"") for r in self.cluster.committed_records(STATE)
        ]


def running(setup: Setup, runtime: TaskRuntime[Tally]) -> TaskRuntime[Tally]:
    """Started, with its assignment restored (the first poll brings it)."""
    runtime.start()
    runtime.step()
    return runtime


@pytest.fixture
def setup() -> Iterator[Setup]:
    s = Setup()
    yield s
    assert s.cluster.open_clients == [], "a runtime left a client open"


def test_outputs_snapshots_and_offsets_become_visible_together_at_the_checkpoint(
    setup: Setup,
) -> None:
    setup.send(["1", "2", "3"], partition=0)
    setup.send(["10"], partition=1, topic=INPUTS[1])
    with running(setup, setup.runtime()) as runtime:
        runtime.step()
        assert setup.totals() == [], "visible before the commit"
        assert setup.cluster.committed_offsets(GROUP) == {}
        runtime.checkpoint()

        assert setup.totals(0) == [1, 3, 6] and setup.totals(1) == [10]
        committed = setup.cluster.committed_offsets(GROUP)
        assert committed == {
            TopicPartition(INPUTS[0], 0): 3,
            TopicPartition(INPUTS[1], 0): 0,
            TopicPartition(INPUTS[0], 1): 0,
            TopicPartition(INPUTS[1], 1): 1,
        }
        by_partition = {s.partition: s for s in setup.snapshots()}
        assert by_partition[0].offsets == {INPUTS[0]: 3, INPUTS[1]: 0}
        assert json.loads(by_partition[0].engine_state)["total"] == 6
        assert by_partition[1].key == f"{GROUP}:1".encode()
        # Nothing changed since: the next checkpoint writes no snapshot.
        runtime.checkpoint()
        assert len(setup.snapshots()) == 2


def test_a_failed_commit_aborts_its_outputs_and_rewinds_to_the_last_snapshot(
    setup: Setup,
) -> None:
    recorder = Recorder()
    with running(setup, setup.runtime(observers=[recorder])) as runtime:
        setup.send(["1", "2"])
        runtime.step()
        runtime.checkpoint()
        setup.send(["5", "7"])
        runtime.step()
        assert runtime.tasks[0].total == 15
        setup.cluster.fail_next_commit()
        runtime.checkpoint()

        assert setup.totals() == [1, 3], "the aborted transaction's outputs are void"
        assert runtime.tasks[0].total == 3, "rewound to the committed snapshot"
        assert runtime.tasks[0].origin == {INPUTS[0]: 2, INPUTS[1]: 0}
        assert [c.outcome for c in recorder.checkpoints] == ["committed", "aborted"]
        assert "injected" in str(recorder.checkpoints[-1].reason)
        runtime.step()  # the records after the snapshot, again
        runtime.checkpoint()
        assert setup.totals() == [1, 3, 8, 15]
        assert runtime.stats.snapshot().aborted == 1


def test_a_newer_process_with_the_same_transactional_id_fences_the_older_one(
    setup: Setup,
) -> None:
    older = running(setup, setup.runtime("a"))
    setup.send(["1", "2"])
    older.step()
    # A restarted process with the same instance id: the older one's open
    # transaction is aborted, and it can never commit again.
    with setup.runtime("a") as newer:
        with pytest.raises(FencedError, match="another tally took over transactional id 'tally-a'"):
            older.checkpoint()
        older.close()
        assert setup.totals() == []
        running(setup, newer)
        newer.step()
        newer.checkpoint()
        assert setup.totals() == [1, 3]


def test_a_fenced_runtime_stops_at_its_next_transaction_too(setup: Setup) -> None:
    with running(setup, setup.runtime("a")) as older, setup.runtime("a"):
        setup.send(["1"])
        with pytest.raises(FencedError):
            older.step()  # begins a transaction for the record


def test_a_rebalance_moves_a_task_with_its_committed_state(setup: Setup) -> None:
    first_log = Recorder()
    with running(setup, setup.runtime("a", observers=[first_log])) as first:
        assert sorted(first.tasks) == [0, 1]
        setup.send(["1", "2"], partition=0)
        setup.send(["40"], partition=1)
        first.step()
        first.checkpoint()
        setup.send(["4"], partition=1)
        first.step()  # partition 1 now holds 44, uncommitted
        with running(setup, setup.runtime("b")) as second:
            # The group moved on: the first member gives partition 1 up at its
            # next poll, aborting what it had not committed.
            first.step()
            assert sorted(first.tasks) == [0] and sorted(second.tasks) == [1]
            assert second.tasks[1].total == 40 and second.tasks[1].origin != "fresh"
            assert first_log.assignments[-1] == frozenset({0})
            assert first_log.checkpoints[-1].outcome == "aborted"
            second.step()  # the "4" again, now on the second member
            second.checkpoint()
            assert setup.totals(1) == [40, 44]
            setup.send(["3"], partition=0)
            first.step()
            first.checkpoint()
            assert setup.totals(0) == [1, 3, 6]


def test_a_commit_with_a_stale_generation_fails_and_the_member_rebuilds(setup: Setup) -> None:
    with running(setup, setup.runtime("a")) as first:
        setup.send(["5"], partition=1)
        first.step()
        with running(setup, setup.runtime("b")) as second:
            # The first member has not polled since the rebalance: its commit
            # carries the old generation (KIP-447) and is refused.
            first.checkpoint()
            assert setup.totals() == []
            first.step()  # where it learns of the new generation
            assert sorted(first.tasks) == [0]
            second.step()
            second.checkpoint()
            assert setup.totals(1) == [5]


def test_a_restarted_process_resumes_from_its_snapshot_and_outputs_each_total_once(
    setup: Setup,
) -> None:
    first = running(setup, setup.runtime("a"))
    setup.send(["1", "2", "3"])
    first.step()
    first.checkpoint()
    setup.send(["4", "5"])
    first.step()
    setup.cluster.crash()  # kill -9: no final checkpoint, no goodbye to the group
    setup.cluster.expire_sessions(GROUP)
    with running(setup, setup.runtime("a")) as second:
        assert second.tasks[0].total == 6
        second.step()
        second.checkpoint()
    assert setup.totals() == [1, 3, 6, 10, 15]


def test_records_the_restored_state_already_holds_are_skipped(setup: Setup) -> None:
    with running(setup, setup.runtime()) as runtime:
        setup.send(["1", "2"])
        runtime.step()
        runtime.checkpoint()
        consumer = next(c for c in setup.cluster.clients if hasattr(c, "seek"))
        consumer.seek(TopicPartition(INPUTS[0], 0), 0)  # a fetch from before the snapshot
        setup.send(["3"])
        runtime.step()
        runtime.checkpoint()
    assert setup.totals() == [1, 3, 6]


def test_committed_offsets_without_a_snapshot_stop_the_runtime(setup: Setup) -> None:
    setup.cluster.commit_offsets(GROUP, {TopicPartition(INPUTS[0], 0): 5})
    with setup.runtime() as runtime:
        runtime.start()
        with pytest.raises(StateError, match="refusing to start from empty state"):
            runtime.step()


def test_input_topics_of_different_partition_counts_fail_at_start() -> None:
    setup = Setup()
    setup.cluster.create_topic(INPUTS[1], 3)
    with setup.runtime() as runtime, pytest.raises(StateError, match="differ in partitions"):
        runtime.start()


def test_bad_records_become_dead_letters_and_the_rest_is_processed(setup: Setup) -> None:
    recorder = Recorder()
    with running(setup, setup.runtime(observers=[recorder], max_bytes=10)) as runtime:
        setup.send(["1", "x", "2"])
        setup.cluster.produce(INPUTS[0], None, partition=0)  # a tombstone
        setup.send(["9" * 11])
        runtime.step()
        runtime.checkpoint()
    letters = [json.loads(r.value or b"") for r in setup.cluster.committed_records(DEAD)]
    assert [(d["offset"], d["error"]) for d in sorted(letters, key=lambda d: d["offset"])] == [
        (1, "not an integer: 'x'"),
        (3, "record has no value (tombstone)"),
        (4, "record is 11 bytes, over max_record_bytes=10"),
    ]
    assert setup.totals() == [1, 3]
    (batch,) = recorder.batches
    assert batch.records == 5
    assert batch.records_by_partition() == {TopicPartition(INPUTS[0], 0): 5}
    assert batch.dead_letters == {"invalid": 1, "tombstone": 1, "too_large": 1}
    assert batch.outputs == {"total": 2}
    assert setup.cluster.committed_offsets(GROUP)[TopicPartition(INPUTS[0], 0)] == 5


def test_checkpoints_come_at_the_interval_after_max_events_or_when_asked(setup: Setup) -> None:
    with running(setup, setup.runtime(max_events=3)) as runtime:
        setup.send(["1"])
        runtime.step()
        assert setup.totals() == [], "no reason to commit yet"
        setup.clock.now += 0.2
        runtime.step()
        assert setup.totals() == [1], "the interval passed"
        setup.send(["1", "1", "1"])
        runtime.step()
        assert setup.totals() == [1, 2, 3, 4], "max events reached"
        setup.send(["1", "!"])
        runtime.step()
        assert setup.totals() == [1, 2, 3, 4, 5], "the service asked for a commit"


@pytest.mark.parametrize(
    ("urgent", "since_last_s", "records", "due"),
    [
        (True, 0.0, 1, True),  # an alert does not wait for the interval
        (False, 0.0, 1, False),
        (False, 0.199, 9, False),
        (False, 0.2, 1, True),  # the interval passed
        (False, 0.0, 10, True),  # max records reached
    ],
)
def test_a_checkpoint_is_due_when_asked_at_the_interval_or_at_max_records(
    urgent: bool, since_last_s: float, records: int, due: bool
) -> None:
    assert (
        checkpoint_due(
            urgent=urgent,
            since_last_s=since_last_s,
            interval_s=0.2,
            records=records,
            max_records=10,
        )
        is due
    )


def test_a_commit_asked_for_early_in_a_long_poll_does_not_wait_for_the_rest_of_it(
    setup: Setup,
) -> None:
    recorder = Recorder()
    with running(setup, setup.runtime(batch_records=10, observers=[recorder])) as runtime:
        setup.send(["1"] * 5 + ["!"] + ["1"] * 44)
        runtime.step()  # one poll of 50 records, in batches of 10
        assert setup.totals() == [1, 2, 3, 4, 5, 6, 7, 8, 9], "committed after the first batch"
        snapshot = setup.snapshots()[-1]
        assert snapshot.offsets[INPUTS[0]] == 10, "the commit holds exactly what was processed"
        assert [b.records for b in recorder.batches] == [10, 10, 10, 10, 10]
        assert runtime.tasks[0].total == 49, "the rest of the poll was processed too"
        setup.clock.now += 0.2
        runtime.step()
        assert setup.totals() == list(range(1, 50))
        assert setup.cluster.committed_offsets(GROUP)[TopicPartition(INPUTS[0], 0)] == 50


def test_a_failed_commit_in_a_long_poll_drops_the_rest_and_reads_it_again(
    setup: Setup,
) -> None:
    with running(setup, setup.runtime(batch_records=10)) as runtime:
        setup.send(["1"] * 5 + ["!"] + ["1"] * 24)
        setup.cluster.fail_next_commit()
        runtime.step()  # the first batch's commit fails: rewound, the rest not processed
        assert setup.totals() == [] and runtime.tasks[0].total == 0
        runtime.step()  # all 30 again; the asked-for commit after the first batch
        setup.clock.now += 0.2
        runtime.step()
        assert setup.totals() == list(range(1, 30)), "each total once, none lost"


def test_a_send_refused_mid_batch_aborts_rewinds_and_reads_the_records_again(
    setup: Setup,
) -> None:
    """A producer whose open transaction failed (librdkafka: "Erroneous state" after a
    lost partition leader) refuses the next send: the runtime aborts and rewinds, it
    does not stop, and every output comes once."""
    recorder = Recorder()
    with running(setup, setup.runtime(observers=[recorder])) as runtime:
        setup.send(["1", "2"])
        runtime.step()
        runtime.checkpoint()
        setup.send(["3", "4", "5"])
        setup.cluster.fail_next_send(after=1)
        runtime.step()  # "3" is sent, "4" refused: the transaction is void

        assert [c.outcome for c in recorder.checkpoints] == ["committed", "aborted"]
        assert "injected" in str(recorder.checkpoints[-1].reason)
        assert runtime.tasks[0].total == 3, "rewound to the committed snapshot"
        runtime.step()
        runtime.checkpoint()
        assert setup.totals() == [1, 3, 6, 10, 15], "each total once, none lost"


def test_a_send_refused_while_acting_is_carried_out_again(setup: Setup) -> None:
    with running(setup, setup.runtime()) as runtime:
        service = runtime.service
        assert isinstance(service, TallyService)
        setup.send(["70", "40"])
        # The two totals and the snapshot go; the milestone is refused.
        setup.cluster.fail_next_send(after=3)
        runtime.step()
        assert setup.totals() == [70, 110] and setup.milestones() == []
        assert runtime.tasks[0].decided, "restored from the snapshot holding the decision"
        setup.clock.now += 0.2
        runtime.step()
        assert setup.milestones() == [110]
        assert setup.totals() == [70, 110]


def test_a_decision_is_acted_on_only_after_it_is_committed(setup: Setup) -> None:
    with running(setup, setup.runtime()) as runtime:
        service = runtime.service
        assert isinstance(service, TallyService)
        setup.send(["60", "50"])
        setup.cluster.fail_next_commit()
        runtime.step()  # decides, asks for a commit, which fails: nothing acted on
        assert service.acted == [] and setup.milestones() == []
        runtime.step()  # the records again; this time the decision commits, then is acted on
        assert setup.totals() == [60, 110]
        assert setup.milestones() == [110] and service.acted == [0]
        assert json.loads(setup.snapshots()[-1].engine_state)["decided"] is False


def test_an_action_whose_commit_fails_is_carried_out_again_from_the_restored_decision(
    setup: Setup,
) -> None:
    with running(setup, setup.runtime()) as runtime:
        service = runtime.service
        assert isinstance(service, TallyService)
        setup.send(["70", "40"])
        setup.cluster.fail_next_commit(after=1)
        runtime.step()  # the decision commits; the transaction acting on it fails
        assert setup.totals() == [70, 110]
        assert service.acted == [0] and setup.milestones() == []
        assert runtime.tasks[0].decided, "restored from the snapshot holding the decision"
        setup.clock.now += 0.2
        runtime.step()
        assert service.acted == [0, 0] and setup.milestones() == [110]
        assert setup.totals() == [70, 110]


def test_observers_hear_of_polls_batches_checkpoints_and_readiness(setup: Setup) -> None:
    recorder = Recorder()
    runtime = setup.runtime(observers=[recorder])
    with runtime:
        runtime.start()
        assert runtime.stats.snapshot().ready is False
        runtime.step()
        assert recorder.assignments == [frozenset({0, 1})]
        assert [r.partitions for r in recorder.restores] == [frozenset({0, 1})]
        view = runtime.stats.snapshot()
        assert view.ready and view.partitions == (0, 1) and view.last_poll == setup.clock.now
        setup.send(["5"], partition=1)
        setup.clock.now += 1.0
        runtime.step()
        (batch,) = recorder.batches
        assert batch.records_by_partition() == {TopicPartition(INPUTS[0], 1): 1}
        (checkpoint,) = recorder.checkpoints
        assert checkpoint.outcome == "committed" and checkpoint.snapshots == 1
        assert checkpoint.records == 1 and checkpoint.tasks == {"total": 5}
        assert checkpoint.offsets == {
            TopicPartition(INPUTS[0], 1): 1,
            TopicPartition(INPUTS[1], 1): 0,
        }
        assert recorder.polls == [setup.clock.now - 1.0, setup.clock.now]
    assert runtime.stats.snapshot().ready is False, "a closed runtime is not ready"
    view = runtime.stats.snapshot()
    assert (view.records, view.outputs, view.checkpoints) == (1, {"total": 1}, 1)


def test_run_commits_the_last_transaction_at_stop_and_closes_every_client(
    setup: Setup, process_settings: list[str]
) -> None:
    stop = threading.Event()

    class StopAfterThree(TallyService):
        def process(self, task: Tally, records: list[Record], out: Outputs) -> None:
            super().process(task, records, out)
            if task.total >= 3:
                stop.set()

    setup.send(["1", "2"])
    setup.runtime(service=StopAfterThree()).run(stop)
    assert setup.totals() == [1, 3], "the final checkpoint committed"
    assert process_settings == ["tune_gc", "freeze"], "gc tuned at start, frozen after restore"
    consumer = next(c for c in setup.cluster.clients if hasattr(c, "settings"))
    assert consumer.settings == {  # type: ignore[attr-defined]
        "max_poll_interval_ms": MAX_POLL_INTERVAL_MS,
        "session_timeout_ms": 7000,
        "instance_id": None,
    }


def test_a_failing_service_still_closes_every_client(setup: Setup) -> None:
    class Broken(TallyService):
        def process(self, task: Tally, records: list[Record], out: Outputs) -> None:
            raise RuntimeError("a bug")

    setup.send(["1"])
    with pytest.raises(RuntimeError, match="a bug"):
        setup.runtime(service=Broken()).run(threading.Event())
    assert setup.totals() == []


def test_the_instance_id_makes_the_consumer_a_static_member_unless_turned_off() -> None:
    cluster = MemoryCluster()
    for topic in INPUTS:
        cluster.create_topic(topic, 1)
    for static, expected in ((True, "engine-0.eu"), (False, None)):
        kafka = KafkaSettings(static_membership=static, session_timeout_ms=9000)
        config = RuntimeConfig.for_group(
            kafka, kafka, instance_id="engine-0.eu", session_timeout_ms=9000
        )
        assert config.instance_id == expected
        assert config.transactional_id == "stream-mlops-engine-engine-0.eu"
        with TaskRuntime(TallyService(), cluster.transport(), config):
            consumer = cluster.clients[-1]
            assert isinstance(consumer, MemoryGroupConsumer)
            assert consumer.settings["instance_id"] == expected
            assert consumer.settings["session_timeout_ms"] == 9000


@pytest.mark.parametrize("bad", ["engine 0", "", ".", "..", "a/b", "é", "x" * 250])
def test_an_instance_id_kafka_would_refuse_is_a_value_error(bad: str) -> None:
    with pytest.raises(ValueError, match=r"group\.instance\.id"):
        RuntimeConfig.for_group(KafkaSettings(), KafkaSettings(), instance_id=bad)


CLIENT_LIMIT = 8000


class BigTally(TallyService):
    """Publishes an output over the client's limit for the input "big"."""

    def process(self, task: Tally, records: list[Record], out: Outputs) -> None:
        for record in records:
            if record.value == b"big":
                out.send(TOTALS, b"%d" % task.partition, b"9" * 10_000, "total")
            else:
                super().process(task, [record], out)


def test_records_the_client_refuses_for_size_are_logged_counted_and_never_stop_it(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As the real clients do (tests/kafka/test_transport.py): refused at ``send``,
    before anything is queued, the transaction unharmed."""
    send = MemoryProducer.send

    def limited(
        self: MemoryProducer,
        topic: str,
        key: bytes | None,
        value: bytes,
        partition: int | None = None,
    ) -> None:
        if len(value) > CLIENT_LIMIT:
            raise RecordTooLargeError(topic, len(value), "over the test's limit")
        send(self, topic, key, value, partition)

    monkeypatch.setattr(MemoryProducer, "send", limited)
    bad = b"y" * 20_000
    setup.send(["1", "big", bad.decode(), "2"], partition=0)
    # A payload limit above the client's: the dead letter goes without its payload.
    config = replace(setup.config(max_bytes=100_000), dead_letter_payload_bytes=100_000)
    with TaskRuntime(BigTally(), setup.cluster.transport(), config, clock=setup.clock) as runtime:
        runtime.start()
        runtime.step()
        runtime.step()
        runtime.checkpoint()
        assert runtime.oversize.refused == {TOTALS: 1, DEAD: 1}

    assert setup.totals(0) == [1, 3], "the records after the refused ones are processed"
    assert setup.cluster.committed_offsets(GROUP)[TopicPartition(INPUTS[0], 0)] == 4
    [raw] = setup.cluster.committed_records(DEAD)
    letter = DeadLetter.model_validate_json(raw.value or b"")
    assert letter.offset == 2 and letter.payload == "" and letter.payload_truncated
    assert letter.payload_bytes == len(bad)
    assert letter.payload_sha256 == hashlib.sha256(bad).hexdigest()


def test_a_dead_letter_keeps_the_configured_share_of_the_payload(setup: Setup) -> None:
    bad = b"z" * 5000
    setup.send([bad.decode()], partition=1)
    config = replace(setup.config(max_bytes=100_000), dead_letter_payload_bytes=1000)
    with TaskRuntime(TallyService(), setup.cluster.transport(), config, clock=setup.clock) as rt:
        rt.start()
        rt.step()
        rt.step()
        rt.checkpoint()
    [raw] = setup.cluster.committed_records(DEAD)
    letter = DeadLetter.model_validate_json(raw.value or b"")
    assert base64.b64decode(letter.payload) == bad[:1000] and letter.payload_truncated
    assert letter.payload_bytes == len(bad)
