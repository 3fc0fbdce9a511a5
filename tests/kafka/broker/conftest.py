"""The secured local broker the secure tests share: one start per session, not per module.

``broker start --secure`` (SASL_SSL, SCRAM-SHA-512, the users and ACLs it creates)
on free ports and a data dir of its own, stopped by pid at the end of the session,
also when tests fail. Its ACLs cover the contract's default names; a test that
needs others grants them as the broker's admin.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from stream_mlops.config import KafkaSecurity, load_settings
from stream_mlops.kafka.broker import BrokerSettings
from tests.kafka.broker.managed import cli, own_broker


@dataclass(frozen=True)
class SecureBroker:
    settings: BrokerSettings
    start_output: str

    @property
    def servers(self) -> str:
        return self.settings.bootstrap_servers

    def security(self, user: str) -> KafkaSecurity:
        """What a user's generated client config loads to (the password from its file)."""
        path = self.settings.client_dir / f"{user}.toml"
        return load_settings(path, environ={}).kafka.security

    def password(self, user: str) -> str:
        return (self.settings.secrets_dir / f"{user}.password").read_text().strip()


@pytest.fixture(scope="session")
def secure_broker() -> Iterator[SecureBroker]:
    with own_broker("secure", secure=True) as (env, settings, _pids):
        started = cli(env, "broker", "start", "--secure")
        assert started.returncode == 0, started.stderr
        yield SecureBroker(settings, started.stdout)
