"""A service (``stream-mlops run``, ``retrainer``) of a test as a real child process.

``stream_mlops.service_process.ServiceProcess`` does the work (start, wait for a
log event, SIGTERM then SIGKILL, pid tracked); this only spells a test's usual
command line: a config file and an instance id.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from stream_mlops.service_process import ServiceProcess

REPO = Path(__file__).resolve().parents[2]


class EngineProcess(ServiceProcess):
    """``stream-mlops COMMAND --config CONFIG --instance-id ID``; stopped on leaving ``with``."""

    def __init__(
        self,
        config: Path,
        instance_id: str,
        log_path: Path,
        command: str = "run",
        extra_args: Sequence[str] = (),
    ) -> None:
        super().__init__(
            command,
            [command, "--config", str(config), "--instance-id", instance_id, *extra_args],
            log_path,
            cwd=REPO,
        )
