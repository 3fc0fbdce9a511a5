"""The few admin requests the broker commands make: is it up, how many nodes, grant ACLs.

kafka-python is imported inside each function, so ``broker status`` and ``--help``
do not pay for it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from stream_mlops.kafka.acls import AclRule
from stream_mlops.kafka.broker.exceptions import BrokerError


def live_brokers(
    bootstrap_servers: str, timeout_s: float = 5.0, options: Mapping[str, Any] | None = None
) -> int:
    """How many brokers the cluster's metadata lists; 0 if it does not answer.

    ``options`` are extra kafka-python settings (``stream_mlops.kafka.security``'s).
    """
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    timeout_ms = int(timeout_s * 1000)
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap_servers,
            client_id="stream-mlops-broker-check",
            bootstrap_timeout_ms=timeout_ms,
            request_timeout_ms=timeout_ms,
            **(options or {}),
        )
    except (KafkaError, OSError):
        return 0
    try:
        return len(admin.describe_cluster().get("brokers") or ())
    except (KafkaError, OSError):
        return 0
    finally:
        admin.close()


def metadata_answers(
    bootstrap_servers: str, timeout_s: float = 5.0, options: Mapping[str, Any] | None = None
) -> bool:
    """True if the cluster answers a metadata request listing at least one broker."""
    return live_brokers(bootstrap_servers, timeout_s, options) > 0


def grant(rules: Iterable[AclRule], bootstrap_servers: str, options: Mapping[str, Any]) -> int:
    """Create the ALLOW bindings of ``rules`` (existing ones stay); how many were asked for."""
    from kafka import KafkaAdminClient
    from kafka.admin import (
        ACL,
        ACLOperation,
        ACLPermissionType,
        ACLResourcePatternType,
        ResourcePattern,
        ResourceType,
    )
    from kafka.errors import KafkaError

    acls = [
        ACL(
            principal=rule.principal,
            host="*",
            operation=ACLOperation[rule.operation],
            permission_type=ACLPermissionType.ALLOW,
            resource_pattern=ResourcePattern(
                ResourceType[rule.resource], rule.name, ACLResourcePatternType[rule.pattern]
            ),
        )
        for rule in rules
    ]
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap_servers, client_id="stream-mlops-broker-acls", **options
        )
    except KafkaError as exc:
        raise BrokerError(f"cannot connect as admin to grant the services' ACLs: {exc}") from exc
    try:
        result = admin.create_acls(acls)
    except KafkaError as exc:
        raise BrokerError(f"granting the services' ACLs failed: {exc}") from exc
    finally:
        admin.close()
    failed = result.get("failed") or []
    if failed:
        raise BrokerError(f"{len(failed)} of the services' ACLs were refused: {failed[0]}")
    return len(acls)
