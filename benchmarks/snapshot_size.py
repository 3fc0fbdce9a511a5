"""Engine snapshot size and cost: the old pickle against the plain-data format.

    PYTHONPATH=. python benchmarks/snapshot_size.py [--repeat 3]

Two states, built by feeding one engine (default settings: ADWIN and the
distribution test on the score and every feature, ADWIN on the error and the
estimated error) predictions of 20 numeric features with a score, and each
prediction's outcome:

* ``13 models x 20 features``: 5,000 predictions and outcomes per model (every
  reference complete, the error signal's marks and values filled);
* ``5,000 models x 20 features``: 3 predictions and outcomes per model (state
  that has only begun: detectors built, references being collected).

For each state, side by side in one run: the snapshot as the engine wrote it
before (header and pickle, rebuilt here from the same objects), and the current
format's document as JSON without compression, with zlib at levels 1 (what
``stream_mlops.snapshot`` writes), 6 and 9, and with zstd (level 3) when the
``zstandard`` package is installed (it is not a dependency: the row says what
adding it would buy). Times are the best of ``--repeat`` runs (CPU-bound, on a
shared machine), ``encode`` from the engine's objects to the bytes, ``decode``
from the bytes to the document (for pickle: ``pickle.loads``, which is the whole
restore); the last columns are ``Engine.snapshot`` and ``Engine.restore``, the
whole path (restore checks every field and rebuilds every detector).
"""

from __future__ import annotations

import argparse
import pickle
import random
import time
import zlib
from collections.abc import Callable
from typing import Any

from stream_mlops import snapshot
from stream_mlops.config import Settings, parse_settings
from stream_mlops.engine import Engine
from stream_mlops.events import OutcomeEvent, PredictionEvent, dumps, loads

T0 = 1_800_000_000.0
FEATURES = 20


def settings_for(models: int) -> Settings:
    """Default settings, but room for ``models`` model versions (``[limits]``)."""
    limit = max(models, Settings().limits.max_models_per_task)
    return parse_settings({"limits": {"max_models_per_task": limit}})


def build(models: int, per_model: int, seed: int = 0) -> Engine:
    """One engine fed ``per_model`` predictions (and outcomes) of each model, interleaved."""
    rng = random.Random(seed)
    engine = Engine(settings_for(models), partition=0, labeled_events=False)
    names = [f"f{k}" for k in range(FEATURES)]
    for i in range(per_model):
        for m in range(models):
            event_id = f"m{m}-{i}"
            label = rng.random() < 0.1
            engine.process(
                PredictionEvent(
                    event_id=event_id,
                    model_id=f"model-{m}",
                    model_version="v1",
                    ts=T0 + i,
                    features={name: rng.gauss(k, 1.0) for k, name in enumerate(names)},
                    prediction=int(label),
                    score=rng.random(),
                )
            )
            actual = int(label) if rng.random() < 0.95 else int(not label)
            engine.process(OutcomeEvent(event_id=event_id, ts=T0 + i + 1, actual=actual))
    return engine


def old_pickle(engine: Engine) -> bytes:
    """The snapshot as the engine wrote it up to format 3 (header, then a pickle)."""
    join = engine._join
    state = {
        "river": snapshot.river_version(),
        "models": engine._models,
        "policy": engine._policy,
        "versions_retired": engine._versions_retired,
        "counters": (
            engine._predictions,
            engine._outcomes,
            engine._unscored,
            engine._alerts_by_signal,
            engine._retrain_requests,
        ),
        "join": (
            join.watermark,
            join.counts,
            join.prediction_offsets.to_bytes(),
            join.outcome_offsets.to_bytes(),
        ),
    }
    return b"SMLOPS\x00\x03" + pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)


def document(engine: Engine) -> dict[str, Any]:
    """The plain-data document ``Engine.snapshot`` encodes."""
    return loads(zlib.decompress(engine.snapshot()[8:]))


def best(repeat: int, call: Callable[[], object]) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        start = time.process_time()
        result = call()
        times.append(time.process_time() - start)
    return min(times), result


def rows(name: str, engine: Engine, repeat: int) -> list[list[str]]:
    out: list[list[str]] = []
    doc = document(engine)
    # The object-to-plain-data step, shared by every JSON row.
    plain_s, _ = best(repeat, lambda: document_of(engine))
    encode_pickle_s, old = best(repeat, lambda: old_pickle(engine))
    decode_pickle_s, _ = best(repeat, lambda: pickle.loads(old[8:]))  # type: ignore[index]
    assert isinstance(old, bytes)
    base = len(old)
    out.append(_row(name, "pickle (format 3)", base, base, encode_pickle_s, decode_pickle_s))
    json_s, raw = best(repeat, lambda: dumps(doc, sort_keys=False))
    assert isinstance(raw, bytes)
    parse_s, _ = best(repeat, lambda: loads(raw))
    out.append(_row(name, "JSON", len(raw), base, plain_s + json_s, parse_s))
    for level in (1, 6, 9):
        zip_s, packed = best(repeat, lambda level=level: zlib.compress(raw, level))  # type: ignore[misc]
        assert isinstance(packed, bytes)
        unzip_s, _ = best(repeat, lambda packed=packed: zlib.decompress(packed))  # type: ignore[misc]
        label = f"JSON + zlib {level}" + (" (written)" if level == 1 else "")
        out.append(
            _row(name, label, len(packed), base, plain_s + json_s + zip_s, unzip_s + parse_s)
        )
    try:
        import zstandard
    except ImportError:
        out.append([name, "JSON + zstd 3", "(zstandard not installed)", "", "", ""])
    else:
        compressor = zstandard.ZstdCompressor(level=3)
        zip_s, packed = best(repeat, lambda: compressor.compress(raw))
        assert isinstance(packed, bytes)
        unzip_s, _ = best(repeat, lambda: zstandard.ZstdDecompressor().decompress(packed))
        out.append(
            _row(
                name,
                "JSON + zstd 3",
                len(packed),
                base,
                plain_s + json_s + zip_s,
                unzip_s + parse_s,
            )
        )
    snapshot_s, data = best(repeat, engine.snapshot)
    assert isinstance(data, bytes)
    restore_s, _ = best(repeat, lambda: Engine.restore(engine.settings, data, partition=0))
    out.append(
        [
            name,
            "Engine.snapshot / restore",
            f"{len(data):,}",
            "",
            f"{snapshot_s * 1e3:,.0f}",
            f"{restore_s * 1e3:,.0f}",
        ]
    )
    return out


def document_of(engine: Engine) -> dict[str, Any]:
    # What Engine.snapshot builds before encoding (the models dominate).
    return {
        "models": [state.state() for state in engine._models.values()],
        "policy": engine._policy.state(),
    }


def _row(name: str, fmt: str, size: int, base: int, encode_s: float, decode_s: float) -> list[str]:
    return [
        name,
        fmt,
        f"{size:,}",
        f"{size / base:.2f}",
        f"{encode_s * 1e3:,.0f}",
        f"{decode_s * 1e3:,.0f}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    table = [["state", "format", "bytes", "x pickle", "encode ms", "decode ms"]]
    for name, models, per_model in (
        ("13 models x 20 features", 13, 5_000),
        ("5,000 models x 20 features", 5_000, 3),
    ):
        started = time.monotonic()
        engine = build(models, per_model)
        print(f"built {name} in {time.monotonic() - started:.0f} s", flush=True)
        table += rows(name, engine, args.repeat)
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        print(
            "  ".join(
                cell.rjust(w) if i > 1 else cell.ljust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            )
        )


if __name__ == "__main__":
    main()
