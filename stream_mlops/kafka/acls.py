"""The ACLs each service's principal needs, derived from the configuration (pure).

What a service does decides what it may do, so the rules follow the topic names,
group ids and transactional-id prefixes of ``[kafka]`` and ``[retrainer]``:

* the engine reads the input topics, writes the alerts, retrain requests, labeled
  events and dead letters, reads and writes the state topic, commits offsets as its
  consumer group, and runs transactions under its transactional-id prefix;
* the retrainer reads retrain requests and labeled events, writes model updates,
  reads and writes the state topic, with its own group and prefix;
* an operator (``tail``) only reads the outputs;
* the notifier reads the alerts and model updates as its consumer group
  (``[notify] group_id``) and writes the webhooks' failures as dead letters;
* a scoring service writes predictions and outcomes and reads model updates.

Only the engine and the retrainer may write the state topic: a restored snapshot
becomes their detectors' and sessions' state, so whoever can write a record there
decides what the engine believes (silenced detectors, forged sessions). The write
ACL is what authenticates those records. ``docs/security.md`` explains each rule.

>>> from stream_mlops.config import Settings
>>> rules = service_acls(Settings())
>>> [r.describe() for r in rules if r.name == "stream-mlops-state" and r.operation == "WRITE"]
['User:engine WRITE TOPIC stream-mlops-state', 'User:retrainer WRITE TOPIC stream-mlops-state']
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from stream_mlops.config import KafkaSettings, NotifySettings, RetrainerSettings, Settings

__all__ = ["DEFAULT_PRINCIPALS", "AclRule", "command", "kafka_acls_commands", "service_acls"]

Resource = Literal["TOPIC", "GROUP", "TRANSACTIONAL_ID"]
Operation = Literal["READ", "WRITE"]
Pattern = Literal["LITERAL", "PREFIXED"]

#: Role -> principal; the secured local broker creates SCRAM users of these names.
DEFAULT_PRINCIPALS: Mapping[str, str] = {
    "engine": "User:engine",
    "retrainer": "User:retrainer",
    "operator": "User:operator",
    "scorer": "User:scorer",
    "notifier": "User:notifier",
}


@dataclass(frozen=True)
class AclRule:
    """One ALLOW binding. READ and WRITE each imply DESCRIBE in Kafka's authorizer."""

    principal: str
    resource: Resource
    name: str
    operation: Operation
    pattern: Pattern = "LITERAL"

    def describe(self) -> str:
        prefix = " (prefix)" if self.pattern == "PREFIXED" else ""
        return f"{self.principal} {self.operation} {self.resource} {self.name}{prefix}"


def service_acls(
    settings: Settings, principals: Mapping[str, str] = DEFAULT_PRINCIPALS
) -> list[AclRule]:
    """Every rule of every role in ``principals`` (engine, retrainer, operator, scorer,
    notifier)."""
    kafka = settings.kafka
    by_role: dict[str, Callable[[str], list[AclRule]]] = {
        "engine": lambda principal: _engine(principal, kafka),
        "retrainer": lambda principal: _retrainer(principal, kafka, settings.retrainer),
        "operator": lambda principal: _operator(principal, kafka),
        "scorer": lambda principal: _scorer(principal, kafka),
        "notifier": lambda principal: _notifier(principal, kafka, settings.notify),
    }
    rules: list[AclRule] = []
    for role, principal in principals.items():
        if role not in by_role:
            raise ValueError(f"unknown role {role!r}; roles are {', '.join(by_role)}")
        rules += by_role[role](principal)
    return rules


def _topics(principal: str, operation: Operation, names: Iterable[str]) -> list[AclRule]:
    return [AclRule(principal, "TOPIC", name, operation) for name in names]


def _engine(principal: str, kafka: KafkaSettings) -> list[AclRule]:
    t = kafka.topics
    return [
        *_topics(principal, "READ", (t.predictions, t.outcomes, t.state)),
        *_topics(
            principal,
            "WRITE",
            (
                t.drift_alerts,
                t.retrain_requests,
                t.labeled_events,
                t.dead_letters,
                t.performance_estimates,
                t.state,
            ),
        ),
        AclRule(principal, "GROUP", kafka.group_id, "READ"),
        AclRule(principal, "TRANSACTIONAL_ID", kafka.transactional_id_prefix, "WRITE", "PREFIXED"),
    ]


def _retrainer(principal: str, kafka: KafkaSettings, retrainer: RetrainerSettings) -> list[AclRule]:
    t = kafka.topics
    return [
        *_topics(principal, "READ", (t.retrain_requests, t.labeled_events, t.state)),
        *_topics(principal, "WRITE", (t.model_updates, t.state)),
        AclRule(principal, "GROUP", retrainer.group_id, "READ"),
        AclRule(
            principal, "TRANSACTIONAL_ID", retrainer.transactional_id_prefix, "WRITE", "PREFIXED"
        ),
    ]


def _operator(principal: str, kafka: KafkaSettings) -> list[AclRule]:
    t = kafka.topics
    return _topics(
        principal,
        "READ",
        (
            t.drift_alerts,
            t.retrain_requests,
            t.model_updates,
            t.labeled_events,
            t.dead_letters,
            t.performance_estimates,
        ),
    )


def _scorer(principal: str, kafka: KafkaSettings) -> list[AclRule]:
    t = kafka.topics
    return [
        *_topics(principal, "WRITE", (t.predictions, t.outcomes)),
        *_topics(principal, "READ", (t.model_updates,)),
    ]


def _notifier(principal: str, kafka: KafkaSettings, notify: NotifySettings) -> list[AclRule]:
    t = kafka.topics
    return [
        *_topics(principal, "READ", (t.drift_alerts, t.model_updates)),
        *_topics(principal, "WRITE", (t.dead_letters,)),
        AclRule(principal, "GROUP", notify.group_id, "READ"),
    ]


def kafka_acls_commands(rules: Iterable[AclRule], bootstrap: str, command_config: str) -> list[str]:
    """The same rules as ``kafka-acls.sh`` command lines (for clusters we do not manage).

    >>> rule = AclRule("User:engine", "TRANSACTIONAL_ID", "stream-mlops", "WRITE", "PREFIXED")
    >>> print(kafka_acls_commands([rule], "kafka:9093", "admin.properties")[0])
    kafka-acls.sh --bootstrap-server kafka:9093 --command-config admin.properties --add \
--allow-principal User:engine --operation Write --transactional-id stream-mlops \
--resource-pattern-type prefixed
    """
    option = {"TOPIC": "--topic", "GROUP": "--group", "TRANSACTIONAL_ID": "--transactional-id"}
    lines = []
    for rule in rules:
        line = (
            f"kafka-acls.sh --bootstrap-server {bootstrap} --command-config {command_config} "
            f"--add --allow-principal {rule.principal} "
            f"--operation {rule.operation.capitalize()} {option[rule.resource]} {rule.name}"
        )
        if rule.pattern == "PREFIXED":
            line += " --resource-pattern-type prefixed"
        lines.append(line)
    return lines


def command(
    config_path: Path | None,
    bootstrap: str,
    command_config: str,
    roles: Sequence[str] | None = None,
    principals: Sequence[str] = (),
) -> int:
    """``stream-mlops acls``: print the ``kafka-acls.sh`` lines that grant ``roles`` their ACLs.

    ``principals`` are ``ROLE=PRINCIPAL`` overrides (default ``User:<role>``).
    """
    from stream_mlops.config import ConfigError, load_settings

    try:
        settings = load_settings(config_path)
    except ConfigError as exc:
        print(f"stream-mlops acls: {exc}", file=sys.stderr)
        return 2
    chosen = {role: DEFAULT_PRINCIPALS[role] for role in roles or DEFAULT_PRINCIPALS}
    for item in principals:
        role, sep, principal = item.partition("=")
        if not sep or role not in chosen or ":" not in principal:
            print(
                f"stream-mlops acls: --principal {item!r}: use ROLE=TYPE:NAME for a chosen "
                f"role ({', '.join(chosen)}), e.g. engine=User:svc-engine",
                file=sys.stderr,
            )
            return 2
        chosen[role] = principal
    for line in kafka_acls_commands(service_acls(settings, chosen), bootstrap, command_config):
        print(line)
    return 0
