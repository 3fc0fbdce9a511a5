"""What a data dir was formatted as: how many nodes, secured or not.

Both are fixed at format time (the node count is the controller quorum, the SCRAM
users exist only if added then), so a data dir remembers them in ``layout.json``:
``stop`` and ``status`` cover every node it has, ``start`` without flags restarts
what is there, and a start that asks for something else is refused with the fix.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from stream_mlops.kafka.broker.exceptions import BrokerError
from stream_mlops.kafka.broker.settings import BrokerSettings


@dataclass(frozen=True)
class Layout:
    nodes: int
    secure: bool

    def describe(self) -> str:
        kind = "secured (SASL_SSL)" if self.secure else "plain (PLAINTEXT)"
        return f"a {kind} {self.nodes}-node cluster" if self.nodes > 1 else f"a {kind} broker"

    @classmethod
    def of(cls, settings: BrokerSettings) -> Layout:
        return cls(settings.nodes, settings.secure)


def recorded_layout(settings: BrokerSettings) -> Layout | None:
    """The layout the data dir was formatted with; None if it was never formatted.

    A data dir formatted before layouts were recorded is a plain single node.
    """
    try:
        data = json.loads(settings.layout_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        if (settings.data_dir / "data" / "meta.properties").is_file():
            return Layout(1, secure=False)
        return None
    except (OSError, ValueError) as exc:
        raise BrokerError(
            f"{settings.layout_file} is unreadable ({exc}): remove the data dir"
        ) from exc
    return Layout(int(data["nodes"]), bool(data["secure"]))


def record_layout(settings: BrokerSettings) -> None:
    layout = Layout.of(settings)
    settings.layout_file.write_text(
        json.dumps({"nodes": layout.nodes, "secure": layout.secure}) + "\n", encoding="utf-8"
    )


def check_layout(settings: BrokerSettings) -> None:
    """Refuse to start a data dir as something other than what it was formatted as."""
    recorded = recorded_layout(settings)
    wanted = Layout.of(settings)
    if recorded is not None and recorded != wanted:
        raise BrokerError(
            f"the data dir {settings.data_dir} holds {recorded.describe()}, not "
            f"{wanted.describe()}: start it as it is, or pick another --data-dir"
        )
