"""The few admin requests the broker commands make: is it up, how many nodes, grant ACLs.

All go through the transport's admin role (``open_transport``), like every other
client of the project, with the security settings of the user they connect as.
The transport is imported inside each function, so ``broker status`` and ``--help``
do not pay for a Kafka client.
"""

from __future__ import annotations

from collections.abc import Iterable

from stream_mlops.config import KafkaSecurity, KafkaSettings
from stream_mlops.kafka.acls import AclRule
from stream_mlops.kafka.broker.exceptions import BrokerError

__all__ = ["grant", "live_brokers", "metadata_answers"]

# The broker check's client id, as the broker's logs show it.
_CHECK_CLIENT_ID = "stream-mlops-broker-check"


def _connection(bootstrap_servers: str, security: KafkaSecurity | None) -> KafkaSettings:
    return KafkaSettings(bootstrap_servers=bootstrap_servers, security=security or KafkaSecurity())


def live_brokers(
    bootstrap_servers: str, timeout_s: float = 5.0, security: KafkaSecurity | None = None
) -> int:
    """How many brokers the cluster's metadata lists; 0 if it does not answer in time.

    ``security``: how to connect (None: PLAINTEXT), with its secrets resolved.
    """
    from stream_mlops.kafka.backends import open_transport
    from stream_mlops.kafka.transport import TransportError

    transport = open_transport(
        _connection(bootstrap_servers, security),
        client_id=_CHECK_CLIENT_ID,
        connect_timeout_s=timeout_s,
    )
    try:
        admin = transport.admin()
    except (TransportError, OSError):
        return 0
    try:
        return admin.broker_count()
    except (TransportError, OSError):
        return 0
    finally:
        admin.close()


def metadata_answers(
    bootstrap_servers: str, timeout_s: float = 5.0, security: KafkaSecurity | None = None
) -> bool:
    """True if the cluster answers a metadata request listing at least one broker."""
    return live_brokers(bootstrap_servers, timeout_s, security) > 0


def grant(rules: Iterable[AclRule], bootstrap_servers: str, security: KafkaSecurity) -> int:
    """Create the ALLOW bindings of ``rules`` (existing ones stay); how many were asked for.

    ``security`` must be a super user's (the broker's ``admin``).
    """
    from stream_mlops.kafka.backends import open_transport
    from stream_mlops.kafka.transport import TransportError

    wanted = list(rules)
    transport = open_transport(
        _connection(bootstrap_servers, security), client_id="stream-mlops-broker-acls"
    )
    try:
        admin = transport.admin()
    except TransportError as exc:
        raise BrokerError(f"cannot connect as admin to grant the services' ACLs: {exc}") from None
    try:
        admin.create_acls(wanted)
    except TransportError as exc:
        raise BrokerError(f"granting the services' ACLs failed: {exc}") from None
    finally:
        admin.close()
    return len(wanted)
