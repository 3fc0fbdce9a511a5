"""The registry under several writer processes at once: one writer at a time per model.

Each test starts its processes together behind a barrier, so the writes
overlap as much as they can; without the per-model lock, these lost champion
history entries and registered one artifact under several version names.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path

from stream_mlops.registry import ModelRegistry

WRITERS = 4
PROMOTIONS = 50
TRIALS = 15
# fork: the children need nothing but this module's functions, and start fast.
_CONTEXT = multiprocessing.get_context("fork")


def _promote_many(root: str, writer: int, barrier: Barrier, appended: Queue[int]) -> None:
    registry = ModelRegistry(root)
    barrier.wait()
    count = 0
    for k in range(PROMOTIONS):
        # Alternate between two versions so that most promotions change the champion.
        version = ("v1", "v2")[(writer + k) % 2]
        reason = f"writer {writer} promotion {k}"
        pointer = registry.promote("fraud", version, ts=float(k), reason=reason)
        if pointer.history[-1].reason == reason:
            count += 1  # ours was appended (not a no-op on an equal champion)
    appended.put(count)


def _register_same(root: str, trial: int, barrier: Barrier, versions: Queue[str]) -> None:
    registry = ModelRegistry(root)
    barrier.wait()
    record = registry.register(f"model-{trial}", b"the same artifact", created_ts=1.0)
    versions.put(record.version)


def _run(target: Callable[..., None], args_of: list[tuple[object, ...]]) -> None:
    processes = [_CONTEXT.Process(target=target, args=args) for args in args_of]
    for process in processes:
        process.start()
    try:
        for process in processes:
            process.join(timeout=60)
            assert process.exitcode == 0
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
                process.join()


def test_concurrent_promotions_lose_no_history_entry(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    registry.register("fraud", b"one", created_ts=1.0)
    registry.register("fraud", b"two", created_ts=2.0)
    barrier = _CONTEXT.Barrier(WRITERS)
    appended = _CONTEXT.Queue()
    _run(_promote_many, [(str(tmp_path), w, barrier, appended) for w in range(WRITERS)])
    total = sum(appended.get(timeout=5) for _ in range(WRITERS))
    history = registry.promotions("fraud")
    assert total > WRITERS  # the writers did overlap on changes, not only no-ops
    assert len(history) == total
    assert len({p.reason for p in history}) == total


def test_one_artifact_from_concurrent_writers_is_one_version(tmp_path: Path) -> None:
    for trial in range(TRIALS):
        barrier = _CONTEXT.Barrier(WRITERS)
        versions = _CONTEXT.Queue()
        _run(_register_same, [(str(tmp_path), trial, barrier, versions) for _ in range(WRITERS)])
        answers = {versions.get(timeout=5) for _ in range(WRITERS)}
        stored = ModelRegistry(tmp_path).list(f"model-{trial}")
        assert answers == {"v1"}, f"trial {trial}"
        assert [r.version for r in stored] == ["v1"], f"trial {trial}"
