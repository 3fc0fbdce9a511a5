"""Configuration: one TOML file, validated at start, errors name the field.

An example (every key optional; these are not the defaults)::

    unknown_models = "reject"        # or "accept": unknown models run on [defaults]

    [join]
    ttl_seconds = 86400              # event time a prediction waits for its outcome
    max_pending = 1000000            # predictions + outcomes waiting; oldest evicted
    max_ahead_of_watermark_seconds = 86400   # later events are refused (inf: no bound)
    max_ahead_of_wall_clock_seconds = 3600   # when the edge passes a wall clock
    jump_after_events = 50           # ... unless this many in a row agree: a real gap

    [limits]                         # beyond them an event is refused (a dead letter)
    max_models_per_task = 200        # model versions with state in one engine
    max_features_per_event = 500
    max_features_per_model = 50      # more are counted, not tracked
    max_name_length = 128            # feature names, model_version, event_id
    max_string_length = 256          # string features and labels
    max_slices_per_model = 200       # len(slices) * (slice_top_k + 1), per model

    [defaults]
    min_observations = 500
    cooldown_observations = 1000
    retrain_on = ["error"]
    retrain_interval_seconds = 3600
    false_alarm_budget = 1e-8        # false drift alarms per prediction, all signals

    retrain_budget_share = 0.5       # of the budget, for the retrain_on signals
    distribution_checks = true       # variance, shape, category frequencies too
    slices = ["country", "merchant_category"]   # error and score per value of these features
    slice_top_k = 20                 # values tracked per slice feature; the rest pooled
    reference = {file = "ref.jsonl"} # pinned; or "champion", or "stream" (the default)
    rebase_after_alert = false       # keep comparing with the reference after an alert
    quality_checks = true            # missing, wrong-type, out-of-range, unseen values, schema
                                     # (or a list of those: ["missing", "type", "range"])
    quality_range_margin = 0.5       # range: reference [q0.001, q0.999] +- 0.5 x width
    estimate_calibration_events = 1000   # labeled events that calibrate the scores
    estimate_window = 1000           # predictions per performance_estimate event
    track_unwatched = true           # false: no work on signals without a detector
                                     # (alerts' shifts then list watched signals only)

    [defaults.detectors]
    error = [{name = "glr"}]         # the model is chosen per signal (docs/detection.md)
    estimated_error = [{name = "glr", direction = "up"}]   # from calibrated scores
    score = [{name = "adwin", delta = 0.0002, warning_delta = 0.002}]
    "feature:*" = [{name = "glr"}]

    [models.fraud]
    task = "classification"

    [models.fraud.detectors]
    error = [{name = "hddm_a"}]
    "feature:amount" = [{name = "page_hinkley", warmup = 1000, threshold = 20}]
    score = []                       # no detector on the score

    # On a secured cluster (docs/security.md), for every client of every command:
    # [kafka.security]
    # protocol = "SASL_SSL"          # PLAINTEXT (default), SSL, SASL_PLAINTEXT, SASL_SSL
    # sasl_mechanism = "SCRAM-SHA-512"             # PLAIN, SCRAM-SHA-256, SCRAM-SHA-512
    # username = "engine"
    # password_file = "/run/secrets/kafka-engine"  # or $KAFKA_SASL_PASSWORD; never a literal
    # ca_file = "/etc/stream-mlops/ca.pem"         # unset: the system's trust store

    [notify]                         # stream-mlops notify: alerts and promotions to webhooks
    max_attempts = 8                 # per webhook and notification, then a dead letter

    [[notify.webhooks]]
    url_env = "SLACK_WEBHOOK_URL"    # the URL (a secret) from the environment; or url = "..."
    name = "fraud-oncall"            # how logs name it (default: scheme and host only)
    models = ["fraud*"]              # fnmatch patterns of model ids
    min_severity = "drift"           # no warnings

    [metrics]                        # /metrics, /healthz, /readyz of run, retrainer, notify
    enabled = true                   # off by default (or --metrics-port / --metrics-address)
    host = "127.0.0.1"               # loopback: nothing else reaches it
    port = 9464                      # default: engine 8471, retrainer 8472, notifier 8473
    liveness_timeout_seconds = 60    # /healthz is 503 after this long without a poll

>>> settings = load_settings(None)
>>> settings.join.ttl_seconds, settings.model("fraud").min_observations
(86400.0, 500)
>>> [spec.name for spec in settings.model("fraud").detectors_for("feature:amount")]
['glr']
>>> parse_settings({"models": {"fraud": {"detectors": {"error": [{"name": "adwin", "delta": 0}]}}}})
Traceback (most recent call last):
...
stream_mlops.config.ConfigError: models.fraud.detectors.error[0].delta: must be in (0, 1)
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Final, Literal, get_args
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from stream_mlops import detectors
from stream_mlops.events import describe_validation_error
from stream_mlops.model_task import Task

__all__ = [
    "SERVICE_METRICS_PORTS",
    "ConfigError",
    "DetectorSpec",
    "JoinSettings",
    "KafkaSecurity",
    "KafkaSettings",
    "KafkaTopics",
    "LimitSettings",
    "MetricsSettings",
    "ModelSettings",
    "NotifySettings",
    "PromotionSettings",
    "ReferenceFile",
    "ReferenceSource",
    "RetrainerSettings",
    "Settings",
    "UiSettings",
    "WebhookSettings",
    "check_webhook_url",
    "load_settings",
    "parse_settings",
    "resolve_security",
]

BOOTSTRAP_ENV: Final = "KAFKA_BOOTSTRAP_SERVERS"
#: Environment overrides of ``[kafka.security]``, by field: the names the Kafka
#: tooling and container images commonly use, like ``KAFKA_BOOTSTRAP_SERVERS``.
SECURITY_ENV: Final = {
    "protocol": "KAFKA_SECURITY_PROTOCOL",
    "sasl_mechanism": "KAFKA_SASL_MECHANISM",
    "username": "KAFKA_SASL_USERNAME",
    "password_file": "KAFKA_SASL_PASSWORD_FILE",
    "ca_file": "KAFKA_SSL_CAFILE",
    "cert_file": "KAFKA_SSL_CERTFILE",
    "key_file": "KAFKA_SSL_KEYFILE",
    "key_password_file": "KAFKA_SSL_KEY_PASSWORD_FILE",
    "check_hostname": "KAFKA_SSL_CHECK_HOSTNAME",
}
#: The secrets themselves, which only the environment or a file may give.
PASSWORD_ENV: Final = "KAFKA_SASL_PASSWORD"
KEY_PASSWORD_ENV: Final = "KAFKA_SSL_KEY_PASSWORD"
# Signal names a detector or retrain_on can name: the fixed signals, one feature,
# or every feature.
_SIGNAL = re.compile(r"error|estimated_error|score|prediction|feature:\*|feature:.+|quality:.+")
# Signals of the outcomes themselves and of the errors per actual class.
_LABEL_SIGNALS: Final = ("outcome", "miss_rate", "false_positive_rate")


class ConfigError(ValueError):
    """Bad configuration; the message names the field."""


class _Section(BaseModel):
    # Strict: TOML has types, so `checkpoint_interval_ms = true` or `ttl_seconds =
    # "60"` is a mistake to name, not a value to coerce (a float field still takes
    # an integer).
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def _topic_name(value: str) -> str:
    if value in (".", ".."):
        raise ValueError("'.' and '..' are not topic names")
    return value


# Kafka's own rule for topic names (legal characters, at most 249 of them).
TopicName = Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,249}$"), AfterValidator(_topic_name)]
#: Group and transactional ids: any string Kafka accepts, but not an empty one.
ClientId = Annotated[str, Field(min_length=1)]


class JoinSettings(_Section):
    #: How long, in event time, a prediction waits for its outcome (and an outcome
    #: for its prediction) before it counts as expired.
    ttl_seconds: Annotated[float, Field(gt=0)] = 86400.0
    #: Pending predictions plus outcomes; beyond it the oldest is evicted (counted).
    max_pending: Annotated[int, Field(gt=0)] = 1_000_000
    #: An event further ahead of the watermark (the latest event time seen) is
    #: refused, a dead letter: one record cannot move event time for everyone
    #: (stream_mlops.event_time). A week: more than any label delay or quiet
    #: spell of a live stream, far less than a mistyped year. inf: no bound.
    max_ahead_of_watermark_seconds: Annotated[float, Field(gt=0)] = 7 * 86400.0
    #: An event further ahead of the wall clock is refused, when the edge passes
    #: one (the engine on Kafka: its host's clock; replay: --wall-clock).
    #: A day: clock skew and time-zone mistakes, not more. inf: no bound.
    max_ahead_of_wall_clock_seconds: Annotated[float, Field(gt=0)] = 86400.0
    #: After this many events in a row beyond max_ahead_of_watermark_seconds the
    #: stream is taken to have jumped (a gap, not one bad record): the last of
    #: them is accepted and moves the watermark.
    jump_after_events: Annotated[int, Field(gt=0)] = 100


class LimitSettings(_Section):
    """``[limits]``: what one engine (one partition) keeps, whatever the records say.

    What exceeds a limit is refused (a dead letter naming the setting), except
    features beyond ``max_features_per_model``: the prediction is kept and the
    extra features are counted, not tracked (``stream_mlops.limits``). Memory
    per tracked feature is about 20 KB (40 KB while its first reference fills),
    so the defaults bound one engine's signal state near 1000 x 100 x 20 KB = 2 GB
    in the worst case; size them to the deployment.
    """

    #: Model versions with state in one engine; a new one beyond it is refused
    #: once the idle ones (no prediction for the join's TTL) are retired.
    max_models_per_task: Annotated[int, Field(gt=0)] = 1000
    #: Features one event may carry.
    max_features_per_event: Annotated[int, Field(gt=0)] = 1000
    #: Features tracked (with detectors) per model version; more are counted.
    max_features_per_model: Annotated[int, Field(gt=0)] = 100
    #: Characters of a feature name, a model_version, an event_id.
    max_name_length: Annotated[int, Field(gt=0)] = 256
    #: Characters of a string feature value or a string label.
    max_string_length: Annotated[int, Field(gt=0)] = 1024
    #: Slices one model version may track, ``*other*`` included: each model's
    #: ``len(slices) * (slice_top_k + 1)`` must stay within it (a slice costs
    #: about what a tracked feature costs, per signal).
    max_slices_per_model: Annotated[int, Field(gt=0)] = 200


class DetectorSpec(BaseModel):
    """``{name = "adwin", delta = 0.0002}``: a detector name and its parameters."""

    model_config = ConfigDict(extra="allow", frozen=True)

    name: str

    @field_validator("name")
    @classmethod
    def _known(cls, value: str) -> str:
        try:
            return detectors.canonical_name(value)
        except detectors.ParamError as exc:
            raise ValueError(exc.message) from None

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    def build(self) -> detectors.Detector:
        return detectors.build(self.name, self.params)


def _glr() -> list[DetectorSpec]:
    return [DetectorSpec(name="glr")]


def _default_detectors() -> dict[str, list[DetectorSpec]]:
    # The GLR CUSUM bank on the error, the score, every feature and the error
    # estimated from calibrated scores: nearest to the optimal delay at the
    # budget on benchmarks/detection.py (docs/detection.md). Its model (0/1
    # rate, normal scores of ranks, half-normal scores, categories) follows the
    # signal (stream_mlops.engine).
    return {
        "error": _glr(),
        # The outcomes themselves and the errors per actual class
        # (stream_mlops.outcomes); not in retrain_on by default (docs/detection.md).
        "outcome": _glr(),
        "miss_rate": _glr(),
        "false_positive_rate": _glr(),
        "estimated_error": _glr(),
        "score": _glr(),
        "feature:*": _glr(),
    }


class ReferenceFile(_Section):
    """``reference = {file = "ref.jsonl"}``: a model's pinned reference, from a file."""

    #: A JSONL file of prediction, outcome and labeled events (docs/detection.md,
    #: "A pinned reference"); relative to the configuration file's directory.
    file: Annotated[str, Field(min_length=1)]


#: Where a model's reference comes from: the stream's first values ("stream"),
#: the champion's recorded training window in the registry ("champion"), or a
#: file (``ReferenceFile``).
ReferenceSource = Literal["stream", "champion"] | ReferenceFile

_REFERENCE_CHOICES: Final = 'must be "stream", "champion" or {file = "path.jsonl"}'


#: The signals a slice of the traffic gets of its own.
SliceSignal = Literal["error", "score"]
#: The data-quality problems (stream_mlops.quality.KINDS, and the schema).
QualityKind = Literal["missing", "type", "range", "unseen", "schema"]


def _slice_signals() -> list[SliceSignal]:
    return ["error", "score"]


class ModelSettings(_Section):
    """One model's policy; ``[models.<id>]`` overrides ``[defaults]`` key by key."""

    #: None: inferred from the first prediction (a float prediction without a
    #: score means regression, anything else classification).
    # Lax for this one field: TOML gives the task's name as a string, which
    # strict mode would refuse for an enum (unknown names are still errors).
    task: Annotated[Task, Field(strict=False)] | None = None
    #: Detectors per signal: "error", "estimated_error" (a classifier's
    #: probability of being wrong, from its calibrated score, see
    #: docs/detection.md), "score",
    #: "prediction", "outcome" (the actual label's positive rate or a regression
    #: target), "miss_rate" and "false_positive_rate" (a classifier's error on
    #: actual positives, on actual negatives), "feature:<name>", or "feature:*"
    #: for every numeric feature without its own entry. [] disables. Quality
    #: signals take no entry (quality_checks).
    detectors: dict[str, list[DetectorSpec]] = Field(default_factory=_default_detectors)
    #: A detector's observations before it may alert (its first values are noise).
    min_observations: Annotated[int, Field(ge=0)] = 500
    #: After a drift alert on a signal, that many further observations of the signal
    #: before it may alert again (any detector): one alert per change, not a burst.
    cooldown_observations: Annotated[int, Field(ge=0)] = 1000
    #: Drift on these signals asks for retraining.
    retrain_on: list[str] = Field(default_factory=lambda: ["error"])
    #: At most one retrain request per model per this many seconds of event time.
    retrain_interval_seconds: Annotated[float, Field(ge=0)] = 3600.0
    #: False drift alarms per prediction this model may raise, across all its
    #: signals and detectors (1e-7: one per ten million predictions). Split
    #: across the model's detectors (``retrain_budget_share``), each calibrated to
    #: its share (stream_mlops.calibration); parameters set explicitly are kept.
    #: None: no calibration, every detector keeps its own defaults.
    false_alarm_budget: Annotated[float, Field(gt=0, lt=1)] | None = 1e-7
    #: The share of the budget that goes to the detectors of the ``retrain_on``
    #: signals (split equally among them); the rest is split equally among the
    #: other detectors. None: every detector gets an equal share (Bonferroni).
    #: Either way the shares add up to the budget.
    retrain_budget_share: Annotated[float, Field(gt=0, lt=1)] | None = 0.5
    #: Also watch whole distributions, not only means: the "distribution"
    #: detector on the score and every numeric feature (variance, shape) and on
    #: every categorical (string) feature's category frequencies.
    distribution_checks: bool = True
    #: Observations that form a signal's reference for effect sizes in alert stats
    #: (and, for unbounded signals, the sample their ranks are taken against).
    reference_observations: Annotated[int, Field(ge=2)] = 1000
    #: Span (in observations) of the recent mean compared with the reference.
    recent_span: Annotated[int, Field(ge=1)] = 200
    #: Features whose values slice the traffic: each tracked value gets the
    #: ``slice_signals`` of its own, ``slice:<feature>=<value>:<signal>``
    #: (stream_mlops.slices). String, bool and integer values are sliced;
    #: other numbers are not (counted).
    slices: Annotated[list[str], Field(max_length=16), AfterValidator(_slice_fields)] = Field(
        default_factory=list
    )
    #: Values tracked per slice feature (the most frequent); the others are
    #: pooled as ``*other*``.
    slice_top_k: Annotated[int, Field(ge=1, le=1000)] = 20
    #: Which signals each slice gets.
    slice_signals: Annotated[list[SliceSignal], Field(min_length=1)] = Field(
        default_factory=_slice_signals
    )
    #: The share of ``false_alarm_budget`` that all slice detectors of the model
    #: share (the rest is split as without slices), whatever the number of
    #: slice values: the budget is split over the most slices there can be.
    slice_budget_share: Annotated[float, Field(gt=0, lt=1)] = 0.2
    #: Where the reference comes from (effect sizes, ranks, distribution tests,
    #: the GLR's pre-change estimates, the quality ranges and known categories):
    #: "stream" (the first ``reference_observations`` values of each signal),
    #: "champion" (the champion's recorded training window in the registry), or
    #: ``{file = "ref.jsonl"}`` (stream_mlops.reference).
    reference: ReferenceSource = "stream"
    #: After a drift alert on a signal, form a new reference from the values
    #: that follow (true), or keep comparing with the same one (false). Unset:
    #: true with the stream's reference, false with a pinned one (a pinned
    #: reference is what the stream should look like, before and after).
    rebase_after_alert: bool | None = None
    #: Data quality per feature (stream_mlops.quality): the rates of missing
    #: values, wrong types, values out of the reference's range, unseen
    #: categories, and schema changes, each a signal ``quality:<feature>:<kind>``
    #: or ``quality:schema`` watched by a rising-rate GLR bank within the budget.
    #: true: every kind; false or []: none; or a list of the kinds to watch
    #: (``"missing"``, ``"type"``, ``"range"``, ``"unseen"``, ``"schema"``). A
    #: kind not listed is neither counted nor watched, and takes no budget.
    quality_checks: bool | list[QualityKind] = True
    #: Out of range: beyond the reference's [q0.001, q0.999] widened on each side
    #: by this many times its width.
    quality_range_margin: Annotated[float, Field(ge=0)] = 0.5
    #: Label-free performance estimation (stream_mlops.estimation), for a
    #: classifier with scores and 0/1 (or bool) labels while ``estimated_error``
    #: has a detector: the first this many labeled events of a model version
    #: calibrate its scores (isotonic regression of the label on the score).
    estimate_calibration_events: Annotated[int, Field(ge=50, le=100_000)] = 1000
    #: Predictions per published ``performance_estimate`` event, once calibrated.
    estimate_window: Annotated[int, Field(ge=10)] = 1000
    #: Track the label-free signals no detector watches (the score, the
    #: prediction, a feature whose detectors are ``[]``) for the ``shifts`` an
    #: alert ranks. False skips them, which saves their work on every
    #: prediction: alerts then list the shifts of watched signals only (none
    #: where only the error is watched), and ``clamped_values`` and
    #: ``untracked_feature_values`` count over watched signals only.
    track_unwatched: bool = True

    def watched_features(self) -> tuple[dict[str, bool], bool]:
        """Which features have a detector: those with an entry of their own
        (name -> watched), and whether ``feature:*`` watches the others."""
        own = {
            signal.removeprefix("feature:"): bool(specs)
            for signal, specs in self.detectors.items()
            if signal.startswith("feature:") and signal != "feature:*"
        }
        return own, bool(self.detectors.get("feature:*"))

    @field_validator("detectors")
    @classmethod
    def _signals(cls, value: dict[str, list[DetectorSpec]]) -> dict[str, list[DetectorSpec]]:
        for signal in value:
            _check_signal(signal)
            if signal.startswith("quality:"):
                raise ValueError(
                    f"{signal}: quality signals take no detectors here; they are "
                    "on with quality_checks (docs/detection.md)"
                )
        return value

    @field_validator("reference", mode="before")
    @classmethod
    def _reference_source(cls, value: object) -> object:
        # One message instead of one per member of the union.
        if isinstance(value, str):
            if value not in ("stream", "champion"):
                raise ValueError(_REFERENCE_CHOICES)
            return value
        if isinstance(value, dict):
            return ReferenceFile.model_validate(value)
        if isinstance(value, ReferenceFile):
            return value
        raise ValueError(_REFERENCE_CHOICES)

    @field_validator("retrain_on")
    @classmethod
    def _retrain_signals(cls, value: list[str]) -> list[str]:
        for signal in value:
            _check_signal(signal)
        return value

    def detectors_for(self, signal: str) -> list[DetectorSpec]:
        """The detector specs of one signal (``feature:*`` covers features)."""
        specs = self.detectors.get(signal)
        if specs is None and signal.startswith("feature:"):
            specs = self.detectors.get("feature:*")
        return specs or []

    def quality_kinds(self) -> frozenset[str]:
        """The data-quality kinds this model watches (``quality_checks``)."""
        if self.quality_checks is True:
            return frozenset(get_args(QualityKind))
        if self.quality_checks is False:
            return frozenset()
        return frozenset(self.quality_checks)

    def retrains_on(self, signal: str) -> bool:
        return signal in self.retrain_on or (
            signal.startswith("feature:") and "feature:*" in self.retrain_on
        )

    @property
    def pinned(self) -> bool:
        """The reference is pinned (a file or the champion's window), not the stream's."""
        return self.reference != "stream"

    @property
    def rebases(self) -> bool:
        """``rebase_after_alert``, its default following the reference."""
        if self.rebase_after_alert is None:
            return not self.pinned
        return self.rebase_after_alert

    def merged(self, override: ModelSettings) -> ModelSettings:
        """These settings with the keys ``override`` sets explicitly replaced."""
        changes: dict[str, Any] = {key: getattr(override, key) for key in override.model_fields_set}
        if "detectors" in changes:
            changes["detectors"] = {**self.detectors, **override.detectors}
        return self.model_copy(update=changes)


def _slice_fields(value: list[str]) -> list[str]:
    if len(set(value)) != len(value):
        raise ValueError("each feature may be named once")
    if any(not name for name in value):
        raise ValueError("feature names must not be empty")
    return value


def _check_slices(where: str, model: ModelSettings, limits: LimitSettings) -> None:
    tracked = len(model.slices) * (model.slice_top_k + 1)
    if tracked > limits.max_slices_per_model:
        raise ConfigError(
            f"{where}.slices: {len(model.slices)} features x (slice_top_k {model.slice_top_k}"
            f" + 1) = {tracked} slices, more than [limits] max_slices_per_model"
            f" = {limits.max_slices_per_model}"
        )


def _check_signal(signal: str) -> None:
    if not _SIGNAL.fullmatch(signal) and signal not in _LABEL_SIGNALS:
        raise ValueError(
            f"unknown signal {signal!r}; use error, estimated_error, score, prediction, "
            "outcome, miss_rate, false_positive_rate, feature:<name>, feature:* "
            "or quality:<feature>:<kind>"
        )


class KafkaTopics(_Section):
    predictions: TopicName = "predictions"
    outcomes: TopicName = "outcomes"
    drift_alerts: TopicName = "drift-alerts"
    retrain_requests: TopicName = "retrain-requests"
    model_updates: TopicName = "model-updates"
    labeled_events: TopicName = "labeled-events"
    dead_letters: TopicName = "dead-letters"
    performance_estimates: TopicName = "performance-estimates"
    state: TopicName = "stream-mlops-state"


SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
# TOML has no path type: a path is a string, which strict validation would refuse.
FilePath = Annotated[Path, Field(strict=False)]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
_SECRET_SOURCES: Final = {
    "password": f"{PASSWORD_ENV} or kafka.security.password_file",
    "key_password": f"{KEY_PASSWORD_ENV} or kafka.security.key_password_file",
}


class KafkaSecurity(_Section):
    """``[kafka.security]``: how every client authenticates and encrypts.

    The secrets (``password``, ``key_password``) are never read from the TOML file,
    which is committed, copied into images and pasted into bug reports: a literal
    one there is refused, not merely discouraged. They come from the environment
    (``KAFKA_SASL_PASSWORD``, ``KAFKA_SSL_KEY_PASSWORD``) or from a file the TOML
    names (``password_file``: a mounted secret, readable by the service alone), are
    ``SecretStr`` (``'**********'`` in every repr) and left out of every dump.
    Relative paths are relative to the working directory, like ``[retrainer] registry``.

    >>> s = parse_settings({"kafka": {"security": {"protocol": "SASL_SSL"}}})
    Traceback (most recent call last):
    ...
    stream_mlops.config.ConfigError: kafka.security.sasl_mechanism: protocol SASL_SSL needs \
a SASL mechanism (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)
    """

    protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism | None = None
    username: Annotated[str, Field(min_length=1)] | None = None
    #: A file holding the SASL password (one line; a final newline is dropped).
    password_file: FilePath | None = None
    #: PEM CA certificates to trust; None: the system's trust store.
    ca_file: FilePath | None = None
    #: Mutual TLS: the client's PEM certificate (chain) and its private key.
    cert_file: FilePath | None = None
    key_file: FilePath | None = None
    #: A file holding the password of an encrypted ``key_file``.
    key_password_file: FilePath | None = None
    #: Check that the broker's certificate names the host connected to.
    check_hostname: bool = True
    # Resolved by load_settings from the environment or the files above; a value
    # given in the TOML is refused by _not_from_the_file.
    password: SecretStr | None = Field(default=None, exclude=True)
    key_password: SecretStr | None = Field(default=None, exclude=True)

    @field_validator("password", "key_password", mode="before")
    @classmethod
    def _not_from_the_file(cls, _value: object, info: ValidationInfo) -> None:
        field = str(info.field_name)
        raise ValueError(f"a secret is not read from the config file; use {_SECRET_SOURCES[field]}")

    @property
    def uses_sasl(self) -> bool:
        return self.protocol in ("SASL_PLAINTEXT", "SASL_SSL")

    @property
    def uses_tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    def redacted(self) -> dict[str, str | bool]:
        """The settings as a log line shows them: what is set, each secret as stars.

        >>> KafkaSecurity().redacted()
        {'protocol': 'PLAINTEXT'}
        >>> KafkaSecurity(protocol="SASL_SSL", sasl_mechanism="PLAIN", username="svc").with_secrets(
        ...     password=SecretStr("s3cret")).redacted()  # doctest: +NORMALIZE_WHITESPACE
        {'protocol': 'SASL_SSL', 'sasl_mechanism': 'PLAIN', 'username': 'svc',
         'check_hostname': True, 'password': '**********'}
        """
        shown: dict[str, str | bool] = {
            name: value if isinstance(value, bool) else str(value)
            for name, value in self.model_dump(exclude_none=True).items()
            if name != "check_hostname" or self.uses_tls
        }
        for name in ("password", "key_password"):
            if getattr(self, name) is not None:
                shown[name] = "**********"
        return shown

    def with_secrets(
        self, password: SecretStr | None = None, key_password: SecretStr | None = None
    ) -> KafkaSecurity:
        """These settings holding the given secrets (None keeps the current one)."""
        update = {
            key: value
            for key, value in (("password", password), ("key_password", key_password))
            if value is not None
        }
        return self.model_copy(update=update)


#: ``[kafka] dead_letter_max_payload_bytes``' default: bad records up to this
#: size keep every byte in their dead letter.
DEAD_LETTER_PAYLOAD_BYTES = 256 * 1024
#: Its ceiling: base64 of the payload, the error and the envelope stay well
#: under the smallest client record limit (librdkafka's 1,000,000 bytes).
MAX_DEAD_LETTER_PAYLOAD_BYTES = 512 * 1024


class KafkaSettings(_Section):
    bootstrap_servers: ClientId = "127.0.0.1:9092"
    client: Literal["kafka-python", "confluent-kafka"] = "kafka-python"
    group_id: ClientId = "stream-mlops-engine"
    transactional_id_prefix: ClientId = "stream-mlops-engine"
    partitions: Annotated[int, Field(gt=0)] = 3
    checkpoint_interval_ms: Annotated[int, Field(gt=0)] = 200
    checkpoint_max_events: Annotated[int, Field(gt=0)] = 10000
    #: A poll's records are processed in batches of at most this many; after
    #: each the runtime commits if a checkpoint is due. An alert or retrain
    #: request asks for one, so it waits for at most this many more records
    #: before its commit rather than for the rest of the poll (up to 2,000).
    batch_max_records: Annotated[int, Field(gt=0)] = 250
    max_record_bytes: Annotated[int, Field(gt=0)] = 1_000_000
    #: A dead letter keeps this much of the bad record's value (with the whole
    #: value's length and sha256), so that it always fits in a Kafka record.
    dead_letter_max_payload_bytes: Annotated[int, Field(ge=0, le=MAX_DEAD_LETTER_PAYLOAD_BYTES)] = (
        DEAD_LETTER_PAYLOAD_BYTES
    )
    #: A task snapshot larger than this is written as several records of at
    #: most this size, in one transaction (``stream_mlops.kafka.state``); the
    #: default fits a record under every producer's, broker's and topic's
    #: default limit (1 MiB).
    snapshot_chunk_bytes: Annotated[int, Field(ge=1024)] = 900_000
    #: One labeled event per join on ``topics.labeled_events``: what the
    #: retrainer learns from. Without a retrainer, false saves that traffic.
    publish_labeled_events: bool = True
    #: The engine and the retrainer join their groups as static members, the
    #: instance id as ``group.instance.id``: a process restarted with the same
    #: id takes its partitions back at once instead of after the dead member's
    #: session timeout. False: dynamic members, which leave the group on a
    #: clean stop (docs/runtime.md, "Membership").
    static_membership: bool = True
    #: How long the group waits for an engine that stopped heartbeating (killed,
    #: or, as a static member, stopped and not restarted) before its partitions
    #: move; None keeps the client's default (45 s). The broker accepts 6000
    #: and up (group.min.session.timeout.ms).
    session_timeout_ms: Annotated[int, Field(gt=0)] | None = None
    topics: KafkaTopics = Field(default_factory=KafkaTopics)
    security: KafkaSecurity = Field(default_factory=KafkaSecurity)


class PromotionSettings(_Section):
    """``[retrainer.promotion]``: the promotion test's parameters.

    Unset fields keep ``stream_mlops.retrain.PromotionPolicy``'s defaults (whose
    docstring says where each number comes from); the retrainer checks the
    combination at start.
    """

    alpha: float | None = None
    min_events: int | None = None
    check_every: int | None = None
    max_events: int | None = None
    min_relative_improvement: float | None = None
    warmup_events: int | None = None

    def overrides(self) -> dict[str, float | int]:
        return {k: v for k, v in self.model_dump().items() if v is not None}


class RetrainerSettings(_Section):
    """``[retrainer]``: the retraining service (``stream-mlops retrainer``)."""

    #: Its own consumer group and transactional ids, apart from the engine's.
    group_id: ClientId = "stream-mlops-retrainer"
    transactional_id_prefix: ClientId = "stream-mlops-retrainer"
    #: Registry directory; ``--registry`` wins, then this, then
    #: ``$STREAM_MLOPS_REGISTRY``, else ``./registry``.
    registry: str | None = None
    #: Labeled-events records kept per partition, so that a request can train on
    #: the post-drift events that went by before the drift was detected. The
    #: engine's ADWIN on the error signal needs some hundreds to a few thousand
    #: post-drift labels to fire (its minimum observations are 500 by default);
    #: 20000 covers that several times at about 1 KB per event.
    buffer_events: Annotated[int, Field(ge=0)] = 20_000
    #: How long the group waits for a member that stopped heartbeating (a killed
    #: retrainer) before its partitions move; None keeps the client's default
    #: (45 s). The broker accepts 6000 and up (group.min.session.timeout.ms).
    session_timeout_ms: Annotated[int, Field(gt=0)] | None = None
    #: True: challengers start from a fresh model instead of the champion's artifact.
    fresh_challenger: bool = False
    promotion: PromotionSettings = Field(default_factory=PromotionSettings)


#: The events the notifier forwards, by their ``type``.
NotifiedEvent = Literal["drift_alert", "model_update"]
NOTIFIED_EVENTS: Final[tuple[NotifiedEvent, ...]] = ("drift_alert", "model_update")


def check_webhook_url(url: str) -> str:
    """``url`` if it is an absolute http(s) URL; the error never repeats it (it may hold a token).

    >>> check_webhook_url("https://hooks.example.com/services/T0/B0/secret")
    'https://hooks.example.com/services/T0/B0/secret'
    >>> check_webhook_url("hooks.example.com/secret")
    Traceback (most recent call last):
    ...
    ValueError: must be an http:// or https:// URL with a host
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:  # e.g. a bad port or bracketed host
        host = None
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not host:
        raise ValueError("must be an http:// or https:// URL with a host")
    if any(ch.isspace() or not ch.isprintable() for ch in url):
        raise ValueError("must not contain spaces or control characters")
    return url


class WebhookSettings(_Section):
    """``[[notify.webhooks]]``: one HTTP endpoint and what it receives."""

    #: The endpoint. Webhook URLs usually carry a token: it is kept out of
    #: reprs and logs (``url_env`` keeps it out of the file as well).
    url: SecretStr | None = None
    #: The environment variable that holds the URL, read when the notifier starts.
    url_env: str | None = None
    #: How logs and dead letters name the webhook (default: the URL's scheme and host).
    name: str | None = None
    #: "slack": a Slack-compatible body ({"text": ..., "blocks": [...]});
    #: "json": the event itself, as on its topic.
    format: Literal["slack", "json"] = "slack"
    #: Which events: drift alerts, promotions (model updates), or both.
    events: list[NotifiedEvent] = Field(default_factory=lambda: list(NOTIFIED_EVENTS), min_length=1)
    #: Model ids, as fnmatch patterns ("fraud*"); default: every model.
    models: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    #: Alerts below this severity are not sent ("warning": all of them).
    min_severity: Literal["warning", "drift"] = "warning"

    @field_validator("url")
    @classmethod
    def _url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            check_webhook_url(value.get_secret_value())
        return value

    @model_validator(mode="after")
    def _one_source(self) -> WebhookSettings:
        if (self.url is None) == (self.url_env is None):
            raise ValueError("give exactly one of url and url_env")
        return self


class NotifySettings(_Section):
    """``[notify]``: the notifier (``stream-mlops notify``), docs/notify.md."""

    #: Its own consumer group: it commits its offsets after each delivery.
    group_id: str = "stream-mlops-notifier"
    webhooks: list[WebhookSettings] = Field(default_factory=list)
    #: HTTP attempts per webhook and notification (the first included) before
    #: the notification becomes a dead letter. 8 attempts with the default
    #: backoff span about two minutes: a webhook service's restart or a short
    #: outage, not a long one (that is what the dead letters are for).
    max_attempts: Annotated[int, Field(ge=1)] = 8
    #: The wait after the first failure; each further failure multiplies it by
    #: ``backoff_multiplier``, up to ``backoff_max_seconds``.
    backoff_initial_seconds: Annotated[float, Field(gt=0)] = 1.0
    backoff_multiplier: Annotated[float, Field(ge=1)] = 2.0
    backoff_max_seconds: Annotated[float, Field(gt=0)] = 60.0
    #: Each wait is shortened by a random fraction up to this (0: none, 1: "full
    #: jitter"), so notifiers retrying the same endpoint do not retry in step.
    backoff_jitter: Annotated[float, Field(ge=0, le=1)] = 0.5
    #: One HTTP request's timeout (connect and response).
    timeout_seconds: Annotated[float, Field(gt=0)] = 10.0
    #: Records read but not yet settled (delivered or dead-lettered) at most;
    #: beyond, the notifier stops fetching until deliveries catch up.
    max_in_flight: Annotated[int, Field(ge=1)] = 1000
    #: How long the group waits for a silent notifier (a killed one) before its
    #: partitions move; None keeps the client's default (45 s). The broker
    #: accepts 6000 and up (group.min.session.timeout.ms).
    session_timeout_ms: Annotated[int, Field(gt=0)] | None = None

    @model_validator(mode="after")
    def _backoff_bounds(self) -> NotifySettings:
        if self.backoff_max_seconds < self.backoff_initial_seconds:
            raise ValueError("backoff_max_seconds must be at least backoff_initial_seconds")
        return self


class UiSettings(_Section):
    """``[ui]``: the operator page (``stream-mlops ui``)."""

    #: The address it listens on. Loopback by default: the page has no login,
    #: so only this machine (or an SSH tunnel) reaches it.
    host: str = "127.0.0.1"
    #: Its port; 0 picks a free one (the address is logged as ``ui.started``).
    port: Annotated[int, Field(ge=0, le=65535)] = 8470
    #: How often the page re-reads offsets, the registry and a sample of
    #: labeled events, and how often an open page asks for fresh panels.
    refresh_seconds: Annotated[float, Field(ge=0.2, le=60)] = 2.0
    #: Newest alerts kept for the timeline and the alert table.
    alerts_kept: Annotated[int, Field(gt=0, le=10_000)] = 200
    #: Labeled events read per partition per refresh (the newest since the
    #: last one) for the signals' recent values: bounds the page's reading
    #: whatever the stream's rate.
    sample_events: Annotated[int, Field(gt=0, le=100_000)] = 200


#: The port each service serves its metrics and probes on when ``[metrics] port``
#: is unset, next to the operator page's 8470: one configuration for all three
#: services on one host.
SERVICE_METRICS_PORTS: Final = {"engine": 8471, "retrainer": 8472, "notifier": 8473}


class MetricsSettings(_Section):
    """``[metrics]``: ``/metrics``, ``/healthz`` and ``/readyz`` of a service (docs/operators.md).

    Applies to the engine, the retrainer and the notifier; the operator page
    serves them on its own address (``[ui]``).
    """

    #: Off unless asked for (here, or a ``--metrics-port``/``--metrics-address``
    #: flag): services that share a host need a port each.
    enabled: bool = False
    #: The address it listens on. Loopback by default: nothing outside this
    #: machine (or pod) reaches it unless told to.
    host: str = "127.0.0.1"
    #: Its port; 0 picks a free one (logged as ``metrics.started``). Unset: the
    #: service's own (engine 8471, retrainer 8472, notifier 8473), so that one
    #: configuration serves all three on one host.
    port: Annotated[int, Field(ge=0, le=65535)] | None = None
    #: ``/healthz`` answers 503 once the service's loop has not polled Kafka for
    #: this long. A loop also stays away from its poll while it restores state
    #: or replays a retrain request's buffer: keep this above the longest of
    #: those (``stream_mlops_restore_duration_seconds`` shows what restores take).
    liveness_timeout_seconds: Annotated[float, Field(gt=0)] = 60.0

    def port_for(self, service: str) -> int:
        """The port ``service`` listens on: ``port``, else its own default.

        >>> MetricsSettings().port_for("retrainer"), MetricsSettings(port=9000).port_for("engine")
        (8472, 9000)
        """
        return SERVICE_METRICS_PORTS[service] if self.port is None else self.port


class Settings(_Section):
    join: JoinSettings = Field(default_factory=JoinSettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    defaults: ModelSettings = Field(default_factory=ModelSettings)
    models: dict[Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,128}$")], ModelSettings] = Field(
        default_factory=dict
    )
    #: "accept": unknown models run on [defaults]; "reject": their events are errors.
    unknown_models: Literal["accept", "reject"] = "accept"
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    retrainer: RetrainerSettings = Field(default_factory=RetrainerSettings)
    notify: NotifySettings = Field(default_factory=NotifySettings)
    ui: UiSettings = Field(default_factory=UiSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)

    def model(self, model_id: str) -> ModelSettings:
        """The effective settings of one model: [defaults] merged with its section."""
        own = self.models.get(model_id)
        return self.defaults if own is None else self.defaults.merged(own)

    def with_reference(self, reference: ReferenceSource) -> Settings:
        """These settings with every model's reference replaced (``--reference``)."""
        models = {
            model_id: section.model_copy(update={"reference": reference})
            if "reference" in section.model_fields_set
            else section
            for model_id, section in self.models.items()
        }
        defaults = self.defaults.model_copy(update={"reference": reference})
        return self.model_copy(update={"defaults": defaults, "models": models})

    def references_relative_to(self, directory: Path) -> Settings:
        """Reference files named relative to ``directory`` (the configuration file's)."""

        def resolved(section: ModelSettings) -> ModelSettings:
            ref = section.reference
            if isinstance(ref, ReferenceFile) and not Path(ref.file).is_absolute():
                absolute = ReferenceFile(file=str(directory / ref.file))
                return section.model_copy(update={"reference": absolute})
            return section

        return self.model_copy(
            update={
                "defaults": resolved(self.defaults),
                "models": {m: resolved(section) for m, section in self.models.items()},
            }
        )


def parse_settings(data: Mapping[str, Any]) -> Settings:
    """Validate a parsed TOML document; ConfigError names the first bad fields."""
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc)) from None
    _check_detectors("defaults", settings.defaults)
    for model_id, section in settings.models.items():
        _check_detectors(f"models.{model_id}", section)
        _check_detectors(f"models.{model_id}", settings.model(model_id))
    _check_security(settings.kafka.security)
    _check_slices("defaults", settings.defaults, settings.limits)
    for model_id in settings.models:
        _check_slices(f"models.{model_id}", settings.model(model_id), settings.limits)
    return settings


def _check_security(security: KafkaSecurity) -> None:
    # Settings that the chosen protocol would ignore are refused: a forgotten
    # `protocol` would otherwise connect in plain text while the file looks secured.
    where = "kafka.security"
    sasl_fields = ("sasl_mechanism", "username", "password_file")
    tls_fields = ("ca_file", "cert_file", "key_file", "key_password_file")
    for name in (*sasl_fields, *tls_fields):
        given = getattr(security, name) is not None
        needed = security.uses_sasl if name in sasl_fields else security.uses_tls
        if given and not needed:
            kind = "SASL_PLAINTEXT or SASL_SSL" if name in sasl_fields else "SSL or SASL_SSL"
            raise ConfigError(
                f"{where}.{name}: only used with protocol {kind}, not {security.protocol}"
            )
    if security.uses_sasl:
        if security.sasl_mechanism is None:
            raise ConfigError(
                f"{where}.sasl_mechanism: protocol {security.protocol} needs a SASL mechanism "
                "(PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)"
            )
        if security.username is None:
            raise ConfigError(f"{where}.username: protocol {security.protocol} needs a user name")
    if (security.cert_file is None) != (security.key_file is None):
        raise ConfigError(
            f"{where}.{'key_file' if security.key_file is None else 'cert_file'}: "
            "mutual TLS needs both cert_file and key_file"
        )
    if security.key_password_file is not None and security.key_file is None:
        raise ConfigError(f"{where}.key_password_file: given without a key_file")


def _check_detectors(where: str, section: ModelSettings) -> None:
    # Building each detector once checks its parameters with the detector's own
    # rules, so a bad value fails at start rather than at the first event.
    for signal, specs in section.detectors.items():
        for index, spec in enumerate(specs):
            path = f"{where}.detectors.{signal}[{index}]"
            try:
                spec.build()
            except detectors.ParamError as exc:
                field = f"{path}.{exc.field}" if exc.field else path
                raise ConfigError(f"{field}: {exc.message}") from None
            if detectors.is_binary(spec.name) and (
                signal != "error" or section.task == "regression"
            ):
                raise ConfigError(
                    f"{path}.name: {spec.name} takes only 0/1 values; use it on the error "
                    "signal of a classifier"
                )


def load_settings(path: Path | None, environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from a TOML file (None: defaults), with environment overrides.

    Only connection settings come from the environment: ``KAFKA_BOOTSTRAP_SERVERS``,
    the ``[kafka.security]`` fields named in ``SECURITY_ENV``, and the secrets
    (``KAFKA_SASL_PASSWORD``, ``KAFKA_SSL_KEY_PASSWORD``, or the files the settings
    name), which are read here.
    """
    env = os.environ if environ is None else environ
    data: dict[str, Any] = {}
    if path is not None:
        try:
            with path.open("rb") as handle:
                data = tomllib.load(handle)
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    overrides: dict[str, str | bool] = {
        field: _from_environment(field, value.strip())
        for field, name in SECURITY_ENV.items()
        if (value := env.get(name, "")).strip()
    }
    if overrides:
        data = _with_security_overrides(data, overrides)
    try:
        settings = parse_settings(data)
    except ConfigError as exc:
        raise ConfigError(_name_the_variables(str(exc), overrides)) from None
    if path is not None:
        settings = settings.references_relative_to(path.parent)
    security = resolve_security(settings.kafka.security, env)
    kafka = settings.kafka.model_copy(update={"security": security})
    bootstrap = env.get(BOOTSTRAP_ENV)
    if bootstrap:
        kafka = kafka.model_copy(update={"bootstrap_servers": bootstrap})
    return settings.model_copy(update={"kafka": kafka})


def _from_environment(field: str, value: str) -> str | bool:
    """An environment variable's text as its field's type: TOML has booleans, the
    environment only text, and the settings are strict."""
    if field == "check_hostname" and value.lower() in ("true", "1", "false", "0"):
        return value.lower() in ("true", "1")
    return value


def _with_security_overrides(
    data: dict[str, Any], overrides: Mapping[str, str | bool]
) -> dict[str, Any]:
    kafka = data.get("kafka", {})
    if not isinstance(kafka, Mapping) or not isinstance(kafka.get("security", {}), Mapping):
        return data  # not tables: validation names the field
    security = {**kafka.get("security", {}), **overrides}
    return {**data, "kafka": {**kafka, "security": security}}


def _name_the_variables(message: str, overrides: Mapping[str, str | bool]) -> str:
    """``kafka.security.protocol (KAFKA_SECURITY_PROTOCOL): ...`` where the environment set it."""
    for field in overrides:
        message = message.replace(
            f"kafka.security.{field}:", f"kafka.security.{field} ({SECURITY_ENV[field]}):"
        )
    return message


def resolve_security(
    security: KafkaSecurity, environ: Mapping[str, str] | None = None
) -> KafkaSecurity:
    """``security`` holding its password and key password, from the environment or files.

    This is where the files of ``[kafka.security]`` are checked and read, so that
    ``parse_settings`` stays free of I/O. The environment wins over a file. SASL
    without a password is refused here, where both sources are known.
    """
    env = os.environ if environ is None else environ
    for name in ("ca_file", "cert_file", "key_file", "password_file", "key_password_file"):
        path = getattr(security, name)
        if path is not None and not path.is_file():
            raise ConfigError(f"kafka.security.{name}: no such file: {path}")
    password = _secret(env, PASSWORD_ENV, security.password_file, "password_file")
    key_password = _secret(env, KEY_PASSWORD_ENV, security.key_password_file, "key_password_file")
    if security.uses_sasl and password is None and security.password is None:
        raise ConfigError(
            f"kafka.security.password_file: protocol {security.protocol} needs a password: "
            f"set {_SECRET_SOURCES['password']}"
        )
    if key_password is not None and security.key_file is None:
        raise ConfigError(f"kafka.security.key_file: {KEY_PASSWORD_ENV} is set without a key_file")
    if password is not None and not security.uses_sasl:
        raise ConfigError(
            f"kafka.security.protocol: {PASSWORD_ENV} is set but protocol "
            f"{security.protocol} does not use SASL"
        )
    return security.with_secrets(password, key_password)


def _secret(
    env: Mapping[str, str], variable: str, file: Path | None, field: str
) -> SecretStr | None:
    value = env.get(variable)
    if value:
        return SecretStr(value)
    if file is None:
        return None
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"kafka.security.{field}: cannot read {file} ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"kafka.security.{field}: {file} is not UTF-8 text") from None
    # One line; editors and `echo` add a final newline that is no part of the secret.
    secret = text.removesuffix("\n").removesuffix("\r")
    if not secret:
        raise ConfigError(f"kafka.security.{field}: {file} is empty")
    return SecretStr(secret)
