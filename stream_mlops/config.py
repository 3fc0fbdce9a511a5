"""Configuration: one TOML file, validated at start, errors name the field.

An example (every key optional; these are not the defaults)::

    unknown_models = "reject"        # or "accept": unknown models run on [defaults]

    [join]
    ttl_seconds = 86400              # event time a prediction waits for its outcome
    max_pending = 1000000            # predictions + outcomes waiting; oldest evicted

    [defaults]
    min_observations = 500
    cooldown_observations = 1000
    retrain_on = ["error"]
    retrain_interval_seconds = 3600
    false_alarm_budget = 1e-8        # false drift alarms per prediction, all signals
    distribution_checks = true       # variance, shape, category frequencies too

    [defaults.detectors]
    error = [{name = "adwin", delta = 0.0002, warning_delta = 0.002}]
    estimated_error = [{name = "adwin"}]   # from calibrated scores, before labels
    score = [{name = "adwin"}]
    "feature:*" = [{name = "adwin"}]

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

>>> settings = load_settings(None)
>>> settings.join.ttl_seconds, settings.model("fraud").min_observations
(86400.0, 500)
>>> [spec.name for spec in settings.model("fraud").detectors_for("feature:amount")]
['adwin']
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

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from stream_mlops import detectors
from stream_mlops.events import describe_validation_error
from stream_mlops.model_task import Task

__all__ = [
    "ConfigError",
    "DetectorSpec",
    "JoinSettings",
    "KafkaSecurity",
    "KafkaSettings",
    "KafkaTopics",
    "ModelSettings",
    "PromotionSettings",
    "RetrainerSettings",
    "Settings",
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
_SIGNAL = re.compile(r"^(error|estimated_error|score|prediction|feature:\*|feature:.+)$")


class ConfigError(ValueError):
    """Bad configuration; the message names the field."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class JoinSettings(_Section):
    #: How long, in event time, a prediction waits for its outcome (and an outcome
    #: for its prediction) before it counts as expired.
    ttl_seconds: Annotated[float, Field(gt=0)] = 86400.0
    #: Pending predictions plus outcomes; beyond it the oldest is evicted (counted).
    max_pending: Annotated[int, Field(gt=0)] = 1_000_000


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


def _adwin() -> list[DetectorSpec]:
    return [DetectorSpec(name="adwin")]


def _default_detectors() -> dict[str, list[DetectorSpec]]:
    # The defaults: ADWIN on the error, the score and every numeric feature;
    # and on the error estimated from calibrated scores, before labels arrive.
    return {
        "error": _adwin(),
        "estimated_error": _adwin(),
        "score": _adwin(),
        "feature:*": _adwin(),
    }


class ModelSettings(_Section):
    """One model's policy; ``[models.<id>]`` overrides ``[defaults]`` key by key."""

    #: None: inferred from the first prediction (a float prediction without a
    #: score means regression, anything else classification).
    task: Task | None = None
    #: Detectors per signal: "error", "estimated_error" (min(score, 1 - score) of a
    #: classifier's calibrated score, see docs/detection.md), "score",
    #: "prediction", "feature:<name>", or "feature:*" for every numeric feature
    #: without its own entry. [] disables.
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
    #: equally across the model's detectors, each calibrated to its share
    #: (stream_mlops.calibration); parameters set explicitly are kept. None: no
    #: calibration, every detector keeps its own defaults.
    false_alarm_budget: Annotated[float, Field(gt=0, lt=1)] | None = 1e-7
    #: Also watch whole distributions, not only means: the "distribution"
    #: detector on the score and every numeric feature (variance, shape) and on
    #: every categorical (string) feature's category frequencies.
    distribution_checks: bool = True
    #: Observations that form a signal's reference for effect sizes in alert stats
    #: (and, for unbounded signals, the sample their ranks are taken against).
    reference_observations: Annotated[int, Field(ge=2)] = 1000
    #: Span (in observations) of the recent mean compared with the reference.
    recent_span: Annotated[int, Field(ge=1)] = 200

    @field_validator("detectors")
    @classmethod
    def _signals(cls, value: dict[str, list[DetectorSpec]]) -> dict[str, list[DetectorSpec]]:
        for signal in value:
            _check_signal(signal)
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
    if not _SIGNAL.match(signal):
        raise ValueError(
            f"unknown signal {signal!r}; use error, score, prediction, feature:<name> or feature:*"
        )


class KafkaTopics(_Section):
    predictions: str = "predictions"
    outcomes: str = "outcomes"
    drift_alerts: str = "drift-alerts"
    retrain_requests: str = "retrain-requests"
    model_updates: str = "model-updates"
    labeled_events: str = "labeled-events"
    dead_letters: str = "dead-letters"
    state: str = "stream-mlops-state"


SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
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
    password_file: Path | None = None
    #: PEM CA certificates to trust; None: the system's trust store.
    ca_file: Path | None = None
    #: Mutual TLS: the client's PEM certificate (chain) and its private key.
    cert_file: Path | None = None
    key_file: Path | None = None
    #: A file holding the password of an encrypted ``key_file``.
    key_password_file: Path | None = None
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


class KafkaSettings(_Section):
    bootstrap_servers: str = "127.0.0.1:9092"
    client: Literal["kafka-python", "confluent-kafka"] = "kafka-python"
    group_id: str = "stream-mlops-engine"
    transactional_id_prefix: str = "stream-mlops-engine"
    partitions: Annotated[int, Field(gt=0)] = 3
    checkpoint_interval_ms: Annotated[int, Field(gt=0)] = 200
    checkpoint_max_events: Annotated[int, Field(gt=0)] = 10000
    max_record_bytes: Annotated[int, Field(gt=0)] = 1_000_000
    #: One labeled event per join on ``topics.labeled_events``: what the
    #: retrainer learns from. Without a retrainer, false saves that traffic.
    publish_labeled_events: bool = True
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
    group_id: str = "stream-mlops-retrainer"
    transactional_id_prefix: str = "stream-mlops-retrainer"
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


class Settings(_Section):
    join: JoinSettings = Field(default_factory=JoinSettings)
    defaults: ModelSettings = Field(default_factory=ModelSettings)
    models: dict[Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,128}$")], ModelSettings] = Field(
        default_factory=dict
    )
    #: "accept": unknown models run on [defaults]; "reject": their events are errors.
    unknown_models: Literal["accept", "reject"] = "accept"
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    retrainer: RetrainerSettings = Field(default_factory=RetrainerSettings)

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
    _check_security(settings.kafka.security)
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
    overrides = {
        field: value.strip()
        for field, name in SECURITY_ENV.items()
        if (value := env.get(name, "")).strip()
    }
    if overrides:
        data = _with_security_overrides(data, overrides)
    try:
        settings = parse_settings(data)
    except ConfigError as exc:
        raise ConfigError(_name_the_variables(str(exc), overrides)) from None
    security = resolve_security(settings.kafka.security, env)
    kafka = settings.kafka.model_copy(update={"security": security})
    bootstrap = env.get(BOOTSTRAP_ENV)
    if bootstrap:
        kafka = kafka.model_copy(update={"bootstrap_servers": bootstrap})
    return settings.model_copy(update={"kafka": kafka})


def _with_security_overrides(data: dict[str, Any], overrides: dict[str, str]) -> dict[str, Any]:
    kafka = data.get("kafka", {})
    if not isinstance(kafka, Mapping) or not isinstance(kafka.get("security", {}), Mapping):
        return data  # not tables: validation names the field
    security = {**kafka.get("security", {}), **overrides}
    return {**data, "kafka": {**kafka, "security": security}}


def _name_the_variables(message: str, overrides: Mapping[str, str]) -> str:
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
