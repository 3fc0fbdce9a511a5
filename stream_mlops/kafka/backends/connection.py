"""What every client of one transport shares: the cluster, the client id, the options."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from stream_mlops.config import KafkaSecurity
from stream_mlops.kafka.transport import CONNECT_TIMEOUT_S


@dataclass(frozen=True)
class Connection:
    """Handed by ``open_transport`` to a backend, and by the backend to each client it makes."""

    bootstrap_servers: str
    client_id: str
    #: library-specific client options (kafka-python's keyword names, librdkafka's
    #: dotted ones), merged into every client under the role's own settings
    options: Mapping[str, Any] = field(default_factory=dict)
    #: how long a client waits for a first answer from the cluster
    connect_timeout_s: float = CONNECT_TIMEOUT_S
    #: the settings ``options`` were derived from: what a refusal's message names
    #: (the user, the mechanism, the CA file; never the secrets it holds)
    security: KafkaSecurity = field(default_factory=KafkaSecurity)
