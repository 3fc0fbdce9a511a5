"""Fuzzed input records: each one the engine must send to ``dead-letters``.

Used by the fault tests (``tests/kafka/test_faults.py``) and the fault
benchmark (``benchmarks/faults.py``). Every kind is refused by a different
check of the edge or the core, and none can be valid by accident, so "every
fuzzed record is a dead letter" is an exact count:

* ``bytes``: random bytes (never a JSON object);
* ``mutation``: a valid prediction with one field removed, retyped or made
  invalid (the schema refuses it);
* ``wrong_type``: fields of the wrong JSON type (strings for numbers, lists
  for maps, booleans for scores);
* ``far_future``: a valid prediction dated 9999 or ``2e10`` (the event-time
  guard refuses it);
* ``huge_features``: more features than ``[limits] max_features_per_event``;
* ``oversized``: a record over ``[kafka] max_record_bytes`` (the tests set it
  to ``OVERSIZED_LIMIT``). Records near the 1 MiB producer limit are left
  out: their base64 dead letter does not fit a Kafka record until helper
  "edge"'s truncation lands.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import orjson

KINDS = ("bytes", "mutation", "wrong_type", "far_future", "huge_features", "oversized")
#: ``[kafka] max_record_bytes`` for a fuzzed run: above every good record.
OVERSIZED_LIMIT = 20_000
#: above the default ``[limits] max_features_per_event`` (1000)
HUGE_FEATURES = 1_500


def _random_bytes(rng: random.Random, good: dict[str, object]) -> bytes:
    # A leading byte that no JSON text starts with keeps it from being valid.
    return b"\xfe" + rng.randbytes(rng.randrange(1, 400))


_MUTATIONS: tuple[Callable[[dict[str, object]], None], ...] = (
    lambda e: e.pop("event_id"),
    lambda e: e.pop("model_id"),
    lambda e: e.pop("prediction"),
    lambda e: e.update(event_id=""),
    lambda e: e.update(model_id="bad id!"),
    lambda e: e.update(score=7.5),
    lambda e: e.update(type="outcome", actual=1),
    lambda e: e.update(type="no-such-type"),
    lambda e: e.update(ts=-1e300),
    lambda e: e.update(features={"f" * 1000: 1.0}),
)


def _mutation(rng: random.Random, good: dict[str, object]) -> bytes:
    event = dict(good)
    rng.choice(_MUTATIONS)(event)
    return orjson.dumps(event)


_RETYPES: tuple[Callable[[dict[str, object]], None], ...] = (
    lambda e: e.update(features=[1, 2, 3]),
    lambda e: e.update(features="amount=3"),
    lambda e: e.update(prediction={"a": 1}),
    lambda e: e.update(ts="yesterday"),
    lambda e: e.update(event_id=12345),
    lambda e: e.update(model_version=["v1"]),
)


def _wrong_type(rng: random.Random, good: dict[str, object]) -> bytes:
    event = dict(good)
    rng.choice(_RETYPES)(event)
    return orjson.dumps(event)


def _far_future(rng: random.Random, good: dict[str, object]) -> bytes:
    return orjson.dumps({**good, "ts": rng.choice(["9999-12-31T00:00:00Z", 2e10, 4e9])})


def _huge_features(rng: random.Random, good: dict[str, object]) -> bytes:
    features = {f"f{i}": float(i) for i in range(HUGE_FEATURES)}
    return orjson.dumps({**good, "features": features})


def _oversized(rng: random.Random, good: dict[str, object]) -> bytes:
    size = rng.randrange(OVERSIZED_LIMIT + 1, 3 * OVERSIZED_LIMIT)
    return orjson.dumps({**good, "model_version": "v" * size})


_MAKERS: dict[str, Callable[[random.Random, dict[str, object]], bytes]] = {
    "bytes": _random_bytes,
    "mutation": _mutation,
    "wrong_type": _wrong_type,
    "far_future": _far_future,
    "huge_features": _huge_features,
    "oversized": _oversized,
}


def fuzzed(
    good: list[dict[str, object]], n: int, seed: int, kinds: tuple[str, ...] = KINDS
) -> list[tuple[str, bytes]]:
    """``n`` fuzzed prediction records made from ``good`` ones, with their kind.

    Their ``event_id`` is changed too, so that no fuzzed record could join a
    good outcome even if a check let it through.
    """
    rng = random.Random(seed)
    out: list[tuple[str, bytes]] = []
    for i in range(n):
        kind = kinds[i % len(kinds)]
        base = {**rng.choice(good), "event_id": f"fuzz-{seed}-{i}"}
        out.append((kind, _MAKERS[kind](rng, base)))
    rng.shuffle(out)
    return out


def interleave(
    good: list[dict[str, object]],
    bad: list[tuple[str, bytes]],
    partitions: int,
    seed: int,
) -> tuple[list[bytes], list[int], list[bytes]]:
    """Good records (each in ``index % partitions``) with the bad ones spread
    between them at random partitions: values, partitions and keys to produce."""
    rng = random.Random(seed)
    slots = sorted(rng.randrange(len(good) + 1) for _ in bad)
    values: list[bytes] = []
    placement: list[int] = []
    keys: list[bytes] = []
    b = 0
    for i, event in enumerate(good):
        while b < len(bad) and slots[b] <= i:
            values.append(bad[b][1])
            placement.append(rng.randrange(partitions))
            keys.append(f"fuzz-{b}".encode())
            b += 1
        values.append(orjson.dumps(event))
        placement.append(i % partitions)
        keys.append(str(event["event_id"]).encode())
    for rest in bad[b:]:
        values.append(rest[1])
        placement.append(rng.randrange(partitions))
        keys.append(f"fuzz-{b}".encode())
        b += 1
    return values, placement, keys
