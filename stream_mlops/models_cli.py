"""``stream-mlops models list | show | search | reproduce | bootstrap``: the registry on the CLI.

Wiring: the main CLI adds a ``models`` subparser, calls ``add_arguments`` on
it and dispatches to ``command``. It sits above both the registry and the
retraining core (``reproduce`` and ``bootstrap`` train models), so neither
package depends on the other's command line; the retraining core is imported
when an action needs it, which keeps ``list``, ``show`` and ``search`` free of
river's import time. ``reproduce`` needs the training window's
events: the Kafka edge passes ``read_window`` (it reads the window's offset
ranges back from the topic); without it, ``--events FILE`` reads them from a
JSONL file of labeled events that also carry ``topic``, ``partition`` and
``offset``. ``bootstrap`` trains, registers and promotes a model's first
version from a JSONL file of labeled events (``features`` and ``actual``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from stream_mlops.registry import (
    DEFAULT_REGISTRY,
    REGISTRY_ENV,
    ModelRegistry,
    ModelVersion,
    RegistryError,
    TrainingWindow,
)

WindowReader = Callable[[TrainingWindow], Iterable[Any]]
"""Reads a training window's labeled events back (as retrain ``LabeledExample``)."""


def parse_time(text: str) -> float:
    """Epoch seconds from a number or an ISO-8601 time with a zone.

    >>> parse_time("2026-11-27T13:00:00Z"), parse_time("1800000000")
    (1795784400.0, 1800000000.0)
    """
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: not epoch seconds or ISO-8601") from exc
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r}: ISO-8601 time needs a zone (e.g. Z)")
    return moment.timestamp()


def format_time(ts: float | None) -> str:
    """
    >>> format_time(1795784400.5)
    '2026-11-27T13:00:00.500Z'
    """
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``models`` subcommands to ``parser``."""
    parser.add_argument(
        "--registry",
        type=Path,
        default=Path(os.environ.get(REGISTRY_ENV, DEFAULT_REGISTRY)),
        help=f"registry directory (default: ${REGISTRY_ENV}, else ./{DEFAULT_REGISTRY})",
    )
    sub = parser.add_subparsers(dest="models_command", required=True, metavar="ACTION")

    list_ = sub.add_parser("list", help="all versions, champions marked with *")
    list_.add_argument("--model", default=None, help="only this model")
    list_.add_argument("--json", action="store_true", help="a JSON array, for machines")

    show = sub.add_parser("show", help="one version: window, config, metrics, lineage")
    show.add_argument("model")
    show.add_argument("version")
    show.add_argument("--json", action="store_true", help="a JSON object, for machines")

    search = sub.add_parser("search", help="versions matching every given filter")
    search.add_argument("--model", default=None)
    search.add_argument("--metric", default=None, help="metric name, e.g. loss")
    search.add_argument("--min", dest="min_value", type=float, default=None)
    search.add_argument("--max", dest="max_value", type=float, default=None)
    search.add_argument("--created-after", type=parse_time, default=None, metavar="TIME")
    search.add_argument("--created-before", type=parse_time, default=None, metavar="TIME")
    search.add_argument("--parent", default=None, metavar="VERSION")
    search.add_argument("--json", action="store_true", help="a JSON array, for machines")

    reproduce = sub.add_parser(
        "reproduce", help="rebuild a version from its parent and training window"
    )
    reproduce.add_argument("model")
    reproduce.add_argument("version")
    reproduce.add_argument(
        "--events",
        type=Path,
        default=None,
        help="JSONL of the window's labeled events with topic/partition/offset",
    )
    reproduce.add_argument("--json", action="store_true", help="a JSON object, for machines")

    bootstrap = sub.add_parser(
        "bootstrap", help="train, register and promote a model's first version (its champion)"
    )
    bootstrap.add_argument("model")
    bootstrap.add_argument("--task", choices=["classification", "regression"], required=True)
    bootstrap.add_argument(
        "--events",
        type=Path,
        required=True,
        help="JSONL of labeled events (features, actual); other models' lines are skipped",
    )
    bootstrap.add_argument(
        "--learning-rate", type=float, default=None, help="SGD step (default: the task's)"
    )
    bootstrap.add_argument("--json", action="store_true", help="a JSON object, for machines")


def command(
    args: argparse.Namespace,
    *,
    read_window: WindowReader | None = None,
    out: TextIO | None = None,
) -> int:
    """Run one ``models`` action; returns the exit code (0 ok, 1 failed)."""
    stdout = out if out is not None else sys.stdout
    registry = ModelRegistry(args.registry)
    try:
        if args.models_command == "list":
            _print_versions(registry, registry.list(args.model), args.json, stdout)
        elif args.models_command == "show":
            _show(registry, args.model, args.version, args.json, stdout)
        elif args.models_command == "search":
            found = registry.search(
                model_id=args.model,
                metric=args.metric,
                min_value=args.min_value,
                max_value=args.max_value,
                created_after=args.created_after,
                created_before=args.created_before,
                parent=args.parent,
            )
            _print_versions(registry, found, args.json, stdout)
        elif args.models_command == "bootstrap":
            _bootstrap(registry, args, stdout)
        else:
            return _reproduce(registry, args, read_window, stdout)
    except (RegistryError, ValueError) as exc:
        print(f"stream-mlops models: {exc}", file=sys.stderr)
        return 1
    return 0


def _champions(registry: ModelRegistry, records: Sequence[ModelVersion]) -> set[tuple[str, str]]:
    marked = set()
    for model_id in sorted({r.model_id for r in records}):
        champion = registry.champion(model_id)
        if champion is not None:
            marked.add((model_id, champion.version))
    return marked


def _record_json(record: ModelVersion, champion: bool) -> dict[str, Any]:
    return {**record.model_dump(mode="json"), "champion": champion}


def _print_versions(
    registry: ModelRegistry, records: Sequence[ModelVersion], as_json: bool, out: TextIO
) -> None:
    champions = _champions(registry, records)
    if as_json:
        rows = [_record_json(r, (r.model_id, r.version) in champions) for r in records]
        out.write(json.dumps(rows, indent=2, sort_keys=True) + "\n")
        return
    header = ("MODEL", "VERSION", "PARENT", "CREATED", "EVENTS", "LOSS", "SHA256")
    table = [header] + [
        (
            r.model_id,
            r.version + ("*" if (r.model_id, r.version) in champions else ""),
            r.parent_version or "-",
            format_time(r.created_ts),
            str(r.training_window.event_count),
            f"{r.metrics['loss']:.4g}" if "loss" in r.metrics else "-",
            r.content_hash[:12],
        )
        for r in records
    ]
    _write_table(table, out)
    if not records:
        out.write("(no versions)\n")


def _write_table(rows: Sequence[Sequence[str]], out: TextIO) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        out.write("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        out.write("\n")


def _show(registry: ModelRegistry, model_id: str, version: str, as_json: bool, out: TextIO) -> None:
    record = registry.get(model_id, version)
    champion = registry.champion(model_id)
    is_champion = champion is not None and champion.version == version
    lineage = [r.version for r in registry.lineage(model_id, version)]
    promotions = [p for p in registry.promotions(model_id) if p.version == version]
    if as_json:
        data = {
            **_record_json(record, is_champion),
            "lineage": lineage,
            "promotions": [p.model_dump(mode="json") for p in promotions],
        }
        out.write(json.dumps(data, indent=2, sort_keys=True) + "\n")
        return
    window = record.training_window
    lines = [
        f"model         {record.model_id}",
        f"version       {record.version}" + ("  (champion)" if is_champion else ""),
        f"lineage       {' <- '.join(lineage)}",
        f"created       {format_time(record.created_ts)}",
        f"sha256        {record.content_hash}",
        f"artifact      {record.artifact_bytes} bytes",
        "window",
        f"  start       {format_time(window.start_ts)}  event {window.start_event_id or '-'}",
        f"  events      {window.event_count}, event time "
        f"{format_time(window.first_event_ts)} .. {format_time(window.last_event_ts)}",
    ]
    lines += [
        f"  offsets     {r.topic}[{r.partition}] {r.first_offset}..{r.last_offset}"
        for r in window.ranges
    ]
    lines.append("metrics")
    lines += [f"  {name:<22}{value:.6g}" for name, value in sorted(record.metrics.items())]
    lines.append(
        "libraries     " + ", ".join(f"{k} {v}" for k, v in sorted(record.library_versions.items()))
    )
    lines.append("config        " + json.dumps(record.config, sort_keys=True))
    lines += [f"promoted      {format_time(p.ts)}  {p.reason}" for p in promotions]
    out.write("\n".join(lines) + "\n")


def _reproduce(
    registry: ModelRegistry,
    args: argparse.Namespace,
    read_window: WindowReader | None,
    out: TextIO,
) -> int:
    # Imported here: the retraining core pulls in river, which list/show/search
    # do not need, so those stay fast.
    from stream_mlops.retrain.challenger import keeps_sets
    from stream_mlops.retrain.exceptions import ReproduceError
    from stream_mlops.retrain.reproduce import reproduce
    from stream_mlops.retrain.session import library_versions

    record = registry.get(args.model, args.version)
    if read_window is not None:
        events: Iterable[Any] = read_window(record.training_window)
    elif args.events is not None:
        events = _read_jsonl(args.events)
    else:
        raise ValueError("reproduce needs the window's events: pass --events FILE")
    try:
        rebuilt = reproduce(registry, args.model, args.version, events)
    except ReproduceError as exc:
        print(f"stream-mlops models: {exc}", file=sys.stderr)
        return 1
    matches = rebuilt == record.content_hash
    installed = library_versions()
    differing = {
        name: (recorded, installed.get(name, "?"))
        for name, recorded in record.library_versions.items()
        if installed.get(name) != recorded
    }
    if args.json:
        result = {
            "model_id": record.model_id,
            "version": record.version,
            "recorded_sha256": record.content_hash,
            "rebuilt_sha256": rebuilt,
            "matches": matches,
            "library_differences": {k: list(v) for k, v in differing.items()},
        }
        out.write(json.dumps(result, indent=2, sort_keys=True) + "\n")
    else:
        verdict = "same content hash" if matches else "DIFFERENT content hash"
        out.write(f"{record.model_id} {record.version}: {verdict}\n")
        out.write(f"  recorded  {record.content_hash}\n  rebuilt   {rebuilt}\n")
        for name, (recorded, now) in sorted(differing.items()):
            out.write(f"  note: recorded with {name} {recorded}, rebuilt with {now}\n")
        parent = record.parent_version
        if not matches and parent is not None and keeps_sets(registry.artifact(args.model, parent)):
            out.write(
                f"  note: the parent {parent} holds sets (e.g. river's Select or OneHotEncoder),"
                " which iterate in the order of the process's string hash seed: a model grown"
                " from it can differ between processes\n"
            )
    return 0 if matches else 1


def _bootstrap(registry: ModelRegistry, args: argparse.Namespace, out: TextIO) -> None:
    # Imported here: the retraining core pulls in river (see _reproduce).
    from dataclasses import replace

    from stream_mlops.retrain.bootstrap import bootstrap_champion
    from stream_mlops.retrain.models import ModelSpec

    spec = ModelSpec.for_task(args.task)
    if args.learning_rate is not None:
        spec = replace(spec, learning_rate=args.learning_rate)
    examples = []
    try:
        text = args.events.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"{args.events}: cannot read ({exc.strerror})") from exc
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            if data.get("model_id", args.model) != args.model:
                continue
            examples.append((dict(data["features"]), data["actual"]))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"{args.events}:{number}: not a labeled event ({exc})") from exc
    record = bootstrap_champion(registry, args.model, spec, examples, created_ts=time.time())
    if args.json:
        out.write(json.dumps(_record_json(record, True), indent=2, sort_keys=True) + "\n")
    else:
        out.write(
            f"{record.model_id} {record.version}: champion, trained on {len(examples)} events, "
            f"sha256 {record.content_hash[:12]}\n"
        )


def _read_jsonl(path: Path) -> Iterator[Any]:
    from stream_mlops.retrain.inputs import LabeledExample, SourcePosition

    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
                ts = data["ts"]
                yield LabeledExample(
                    event_id=str(data["event_id"]),
                    model_id=str(data["model_id"]),
                    model_version=str(data["model_version"]),
                    ts=float(ts) if isinstance(ts, int | float) else parse_time(str(ts)),
                    features=dict(data["features"]),
                    prediction=data["prediction"],
                    actual=data["actual"],
                    source=SourcePosition(
                        str(data["topic"]), int(data["partition"]), int(data["offset"])
                    ),
                )
            except (ValueError, KeyError, TypeError, argparse.ArgumentTypeError) as exc:
                raise ValueError(f"{path}:{number}: not a labeled event ({exc})") from exc
