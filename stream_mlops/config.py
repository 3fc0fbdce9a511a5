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

    [defaults]
    min_observations = 500
    cooldown_observations = 1000
    retrain_on = ["error"]
    retrain_interval_seconds = 3600
    false_alarm_budget = 1e-8        # false drift alarms per prediction, all signals

    retrain_budget_share = 0.5       # of the budget, for the retrain_on signals
    distribution_checks = true       # variance, shape, category frequencies too
    quality_checks = true            # missing, wrong-type, out-of-range, unseen values
    quality_range_margin = 0.5       # range: reference [q0.001, q0.999] +- 0.5 x width

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

    [notify]                         # stream-mlops notify: alerts and promotions to webhooks
    max_attempts = 8                 # per webhook and notification, then a dead letter

    [[notify.webhooks]]
    url_env = "SLACK_WEBHOOK_URL"    # the URL (a secret) from the environment; or url = "..."
    name = "fraud-oncall"            # how logs name it (default: scheme and host only)
    models = ["fraud*"]              # fnmatch patterns of model ids
    min_severity = "drift"           # no warnings

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
from typing import Annotated, Any, Final, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from stream_mlops import detectors
from stream_mlops.events import describe_validation_error
from stream_mlops.model_task import Task

__all__ = [
    "ConfigError",
    "DetectorSpec",
    "JoinSettings",
    "KafkaSettings",
    "KafkaTopics",
    "LimitSettings",
    "ModelSettings",
    "NotifySettings",
    "PromotionSettings",
    "RetrainerSettings",
    "Settings",
    "UiSettings",
    "WebhookSettings",
    "check_webhook_url",
    "load_settings",
    "parse_settings",
]

BOOTSTRAP_ENV: Final = "KAFKA_BOOTSTRAP_SERVERS"
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


class ModelSettings(_Section):
    """One model's policy; ``[models.<id>]`` overrides ``[defaults]`` key by key."""

    #: None: inferred from the first prediction (a float prediction without a
    #: score means regression, anything else classification).
    # Lax for this one field: TOML gives the task's name as a string, which
    # strict mode would refuse for an enum (unknown names are still errors).
    task: Annotated[Task, Field(strict=False)] | None = None
    #: Detectors per signal: "error", "estimated_error" (min(score, 1 - score) of a
    #: classifier's calibrated score, see docs/detection.md), "score",
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
    #: Data quality per feature (stream_mlops.quality): the rates of missing
    #: values, wrong types, values out of the reference's range, unseen
    #: categories, and schema changes, each a signal ``quality:<feature>:<kind>``
    #: or ``quality:schema`` watched by a rising-rate GLR bank within the budget.
    quality_checks: bool = True
    #: Out of range: beyond the reference's [q0.001, q0.999] widened on each side
    #: by this many times its width.
    quality_range_margin: Annotated[float, Field(ge=0)] = 0.5

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

    def retrains_on(self, signal: str) -> bool:
        return signal in self.retrain_on or (
            signal.startswith("feature:") and "feature:*" in self.retrain_on
        )

    def merged(self, override: ModelSettings) -> ModelSettings:
        """These settings with the keys ``override`` sets explicitly replaced."""
        changes: dict[str, Any] = {key: getattr(override, key) for key in override.model_fields_set}
        if "detectors" in changes:
            changes["detectors"] = {**self.detectors, **override.detectors}
        return self.model_copy(update=changes)


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
    state: TopicName = "stream-mlops-state"


class KafkaSettings(_Section):
    bootstrap_servers: ClientId = "127.0.0.1:9092"
    client: Literal["kafka-python", "confluent-kafka"] = "kafka-python"
    group_id: ClientId = "stream-mlops-engine"
    transactional_id_prefix: ClientId = "stream-mlops-engine"
    partitions: Annotated[int, Field(gt=0)] = 3
    checkpoint_interval_ms: Annotated[int, Field(gt=0)] = 200
    checkpoint_max_events: Annotated[int, Field(gt=0)] = 10000
    max_record_bytes: Annotated[int, Field(gt=0)] = 1_000_000
    #: One labeled event per join on ``topics.labeled_events``: what the
    #: retrainer learns from. Without a retrainer, false saves that traffic.
    publish_labeled_events: bool = True
    topics: KafkaTopics = Field(default_factory=KafkaTopics)


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

    def model(self, model_id: str) -> ModelSettings:
        """The effective settings of one model: [defaults] merged with its section."""
        own = self.models.get(model_id)
        return self.defaults if own is None else self.defaults.merged(own)


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
    return settings


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


def load_settings(path: Path | None) -> Settings:
    """Settings from a TOML file (None: defaults), with environment overrides.

    Only connection settings come from the environment: ``KAFKA_BOOTSTRAP_SERVERS``.
    """
    data: dict[str, Any] = {}
    if path is not None:
        try:
            with path.open("rb") as handle:
                data = tomllib.load(handle)
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    settings = parse_settings(data)
    bootstrap = os.environ.get(BOOTSTRAP_ENV)
    if bootstrap:
        kafka = settings.kafka.model_copy(update={"bootstrap_servers": bootstrap})
        settings = settings.model_copy(update={"kafka": kafka})
    return settings
