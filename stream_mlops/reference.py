"""A model's pinned reference: the events its signals are compared with.

By default a signal's reference is its own first values on the stream
(``reference_observations`` of them), formed again after each drift alert. A
pinned reference replaces them with events known to be good: a JSONL file
(``reference = {file = "ref.jsonl"}``, or ``replay --reference FILE``), or the
champion's recorded training window in the registry (``reference =
"champion"``, read back from the labeled-events topic when the engine
service starts, ``stream_mlops.reference_window``). Either way the engine gets one
``ModelReference`` per model and, when it creates a signal, takes from it:

* every feature (numeric, categorical, and the data-quality ranges, known
  categories and schema) and the ``outcome``: from all of the model's
  reference events (the inputs and the outcomes do not depend on the model
  version);
* the model's own outputs (``score``, ``prediction``, ``estimated_error``,
  ``error``, ``miss_rate``, ``false_positive_rate``): only from events of the
  same ``model_version``, since another version's scores say nothing of this
  one's. The champion's training window was scored by its parent, so it pins
  the features and the outcome only.

A signal with fewer than ``MIN_VALUES`` reference values keeps the stream's
(slices always do). The file holds prediction and outcome events (joined by
``event_id``: a prediction with its outcome is labeled, one without is not),
as in a replay file, and labeled events (as on the ``labeled-events`` topic,
e.g. from ``stream-mlops tail labeled-events --json``). They are validated as
the stream's are; a line that is not such an event stops the load with its
line number and the reason: a reference silently missing part of itself would
skew every comparison made with it.

>>> refs = parse_reference([
...     b'{"type": "prediction", "event_id": "a", "model_id": "fraud", "model_version": "v1",'
...     b' "ts": 0, "features": {"amount": 12.5}, "prediction": 0, "score": 0.1}',
...     b'{"type": "outcome", "event_id": "a", "ts": 5, "actual": 0}',
... ], "ref.jsonl")
>>> fraud = refs["fraud"]
>>> fraud.numeric("amount"), fraud.labeled("v1")
([12.5], [(0, 0.1, 0)])
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from pydantic import ValidationError

from stream_mlops import outcomes
from stream_mlops.config import ConfigError, ReferenceFile, Settings
from stream_mlops.events import (
    EventError,
    FeatureValue,
    LabeledEvent,
    LabelValue,
    OutcomeEvent,
    PredictionEvent,
    decode_input,
    describe_validation_error,
    loads,
)
from stream_mlops.model_task import Task
from stream_mlops.signals import error_value, estimated_error, numeric

__all__ = [
    "MAX_EVENTS_PER_MODEL",
    "MIN_VALUES",
    "ModelReference",
    "ReferenceError",
    "ReferenceEvent",
    "load_references",
    "parse_reference",
    "read_reference_file",
]

#: A signal is pinned when the reference holds at least this many of its values.
MIN_VALUES: Final = 100
#: Reference events kept per model (the first ones): the statistics taken from
#: them (quantiles, means, rates) gain little from more, and the engine holds
#: them in memory while it runs.
MAX_EVENTS_PER_MODEL: Final = 100_000

_LABELED_FIELDS: Final = frozenset(LabeledEvent.model_fields)
# Signals computed from a model version's own outputs.
_OWN_OUTPUTS: Final = frozenset(
    ("score", "prediction", "estimated_error", "error", *outcomes.CLASS_SIGNALS)
)


class ReferenceError(ConfigError):
    """A reference that cannot be loaded; the message names the field, file and line."""


@dataclass(frozen=True, slots=True)
class ReferenceEvent:
    """One reference event, with its outcome when known (``actual``).

    ``prediction`` and ``score`` are None where the model's output is not
    known for this version (the champion's training window).
    """

    model_version: str
    features: Mapping[str, FeatureValue]
    prediction: LabelValue | None
    score: float | None
    actual: LabelValue | None


class ModelReference:
    """One model's pinned reference events, and the values its signals take from them."""

    def __init__(self, model_id: str, events: Sequence[ReferenceEvent], source: str) -> None:
        self.model_id = model_id
        self.events = events
        #: where the events came from (a file, or the champion's window), for logs
        self.source = source

    def numeric(self, feature: str) -> list[float]:
        """The feature's numeric (and bool) values, in reference order."""
        return [x for e in self.events if (x := numeric(e.features.get(feature))) is not None]

    def categories(self, feature: str) -> list[str]:
        """The feature's string values, in reference order."""
        return [v for e in self.events if type(v := e.features.get(feature)) is str]

    def features(self) -> list[Mapping[str, FeatureValue]]:
        """Every event's features (the data-quality reference)."""
        return [e.features for e in self.events]

    def of_version(self, model_version: str) -> list[ReferenceEvent]:
        return [e for e in self.events if e.model_version == model_version]

    def labeled(self, model_version: str) -> list[tuple[LabelValue, float, LabelValue]]:
        """(prediction, score, actual) of the version's labeled, scored events, in order.

        What a calibration of the version's scores is fitted on (issue 16,
        label-free performance estimation).
        """
        return [
            (e.prediction, e.score, e.actual)
            for e in self.events
            if e.model_version == model_version
            and e.prediction is not None
            and e.score is not None
            and e.actual is not None
        ]

    def values(self, signal: str, model_version: str, task: Task) -> list[float]:
        """The reference values of a numeric signal of ``model_version``, in order.

        ``signal`` as the engine names it: ``score``, ``prediction``,
        ``estimated_error``, ``error``, ``outcome``, ``miss_rate``,
        ``false_positive_rate`` or ``feature:<name>`` (categorical features:
        ``categories``). Others have none.
        """
        if signal.startswith("feature:"):
            return self.numeric(signal.removeprefix("feature:"))
        if signal == "outcome":
            actuals = (e.actual for e in self.events if e.actual is not None)
            return [x for a in actuals if (x := outcomes.outcome_value(task, a)) is not None]
        if signal not in _OWN_OUTPUTS:
            return []
        own = [e for e in self.of_version(model_version) if e.prediction is not None]
        if signal in ("score", "prediction", "estimated_error"):
            return _outputs(signal, own)
        return _errors(signal, own, task)

    def describe(self) -> dict[str, object]:
        """Counts for a log line: events, labeled ones, versions."""
        return {
            "source": self.source,
            "events": len(self.events),
            "labeled": sum(1 for e in self.events if e.actual is not None),
            "versions": sorted({e.model_version for e in self.events}),
        }


def _outputs(signal: str, own: list[ReferenceEvent]) -> list[float]:
    """A version's ``score``, ``prediction`` or ``estimated_error`` values."""
    if signal == "score":
        return [e.score for e in own if e.score is not None]
    if signal == "prediction":
        return [x for e in own if (x := numeric(e.prediction)) is not None]
    return [
        estimated_error(e.prediction, e.score)
        for e in own
        if e.score is not None and e.prediction is not None
    ]


def _errors(signal: str, own: list[ReferenceEvent], task: Task) -> list[float]:
    """A version's ``error``, ``miss_rate`` or ``false_positive_rate`` values."""
    out: list[float] = []
    for e in own:
        if e.actual is None or e.prediction is None:
            continue
        error = error_value(task, e.prediction, e.actual)
        if error is None:
            continue
        if signal == "error":
            out.append(error)
        elif task == Task.CLASSIFICATION:
            positive = outcomes.outcome_value(task, e.actual)
            if positive is not None and outcomes.class_signal(positive) == signal:
                out.append(error)
    return out


def parse_reference(lines: Iterable[bytes | str], source: str) -> dict[str, ModelReference]:
    """The reference events of each model in ``lines`` (JSONL); ``ReferenceError`` names
    ``source`` and the line of the first one that is not a valid prediction, outcome
    or labeled event."""
    predictions: dict[str, tuple[PredictionEvent, int]] = {}
    outcome_events: dict[str, OutcomeEvent] = {}
    ordered: list[tuple[int, str, ReferenceEvent]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            event = _decode(line)
        except EventError as exc:
            raise ReferenceError(f"{source} line {number}: {exc}") from None
        if isinstance(event, PredictionEvent):
            if event.event_id in predictions:
                raise ReferenceError(
                    f"{source} line {number}: event_id {event.event_id!r} is a duplicate"
                )
            predictions[event.event_id] = (event, number)
        elif isinstance(event, OutcomeEvent):
            outcome_events.setdefault(event.event_id, event)
        else:
            found = ReferenceEvent(
                event.model_version, event.features, event.prediction, event.score, event.actual
            )
            ordered.append((number, event.model_id, found))
    for event_id, (prediction, number) in predictions.items():
        outcome = outcome_events.get(event_id)
        found = ReferenceEvent(
            prediction.model_version,
            prediction.features,
            prediction.prediction,
            prediction.score,
            None if outcome is None else outcome.actual,
        )
        ordered.append((number, prediction.model_id, found))
    ordered.sort(key=lambda item: item[0])  # file order
    by_model: dict[str, list[ReferenceEvent]] = {}
    for _, model_id, reference_event in ordered:
        events = by_model.setdefault(model_id, [])
        if len(events) < MAX_EVENTS_PER_MODEL:
            events.append(reference_event)
    return {m: ModelReference(m, events, source) for m, events in by_model.items()}


def _decode(line: bytes | str) -> PredictionEvent | OutcomeEvent | LabeledEvent:
    try:
        obj = loads(line)
    except ValueError as exc:
        raise EventError(f"not JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise EventError("expected a JSON object")
    kind = obj.get("type")
    if kind == "labeled_event":
        # Read tolerantly, as inputs are: fields of our own only.
        known = {k: v for k, v in obj.items() if k in _LABELED_FIELDS}
        try:
            return LabeledEvent.model_validate(known)
        except ValidationError as exc:
            raise EventError(describe_validation_error(exc)) from None
    if kind not in ("prediction", "outcome"):
        raise EventError(f"type: {kind!r} is not 'prediction', 'outcome' or 'labeled_event'")
    return decode_input(line)


def read_reference_file(path: Path, field: str = "reference.file") -> dict[str, ModelReference]:
    """``parse_reference`` over a file; a file that cannot be read names ``field``."""
    try:
        with path.open("rb") as lines:
            return parse_reference(lines, str(path))
    except OSError as exc:
        raise ReferenceError(f"{field}: {path}: cannot read ({exc.strerror})") from None


def load_references(settings: Settings) -> dict[str, ModelReference]:
    """The pinned references of every model whose reference is a file, by model id.

    Each file is read once. A model with a section of its own takes its events
    from the file its settings name; a file named in ``[defaults]`` gives every
    model of its events that has no section its reference. A model section
    whose file holds none of the model's events is an error (its reference
    would silently be the stream). ``reference = "champion"`` is not read here:
    that needs the cluster (``stream_mlops.reference_window``).
    """
    files: dict[str, dict[str, ModelReference]] = {}

    def read(ref: ReferenceFile, field: str) -> dict[str, ModelReference]:
        found = files.get(ref.file)
        if found is None:
            found = files[ref.file] = read_reference_file(Path(ref.file), field)
        return found

    out: dict[str, ModelReference] = {}
    default = settings.defaults.reference
    for model_id in settings.models:
        ref = settings.model(model_id).reference
        if isinstance(ref, ReferenceFile):
            own = "reference" in settings.models[model_id].model_fields_set
            field = f"models.{model_id}.reference.file" if own else "defaults.reference.file"
            found = read(ref, field).get(model_id)
            if found is None:
                raise ReferenceError(f"{field}: {ref.file} has no events of model {model_id!r}")
            out[model_id] = found
    if isinstance(default, ReferenceFile):
        for model_id, found in read(default, "defaults.reference.file").items():
            if model_id not in settings.models:
                out[model_id] = found
    return out
