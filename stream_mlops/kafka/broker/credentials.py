"""The secured broker's SCRAM users, their passwords, and the files clients connect with.

Every user gets a random password at the first ``broker start --secure`` of a data
dir, kept in ``secrets/<user>.password`` (a 0700 directory, 0600 files), and its
SCRAM-SHA-512 credential is written into the cluster metadata when the storage is
formatted (``StorageTool format --add-scram``), so it exists before any node
listens. The users:

* ``broker``: what the nodes replicate as; a super user.
* ``admin``: a super user, for operators and the tools (``client/admin.properties``).
* ``engine``, ``retrainer``, ``operator``, ``scorer``: the services, with the ACLs of
  ``stream_mlops.kafka.acls`` and nothing more.

``client/`` holds, per service user, a TOML file with ``[kafka.security]`` for our
own commands (the password stays in its file), plus the admin's properties for the
Java tools and a librdkafka config for kcat, which carry the password itself and
are 0600 too.

The passwords appear on the storage tool's command line while it formats (a few
seconds, once): the managed broker guards against the network and other Kafka
principals, not against other accounts of the same machine.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from stream_mlops.config import KafkaSecurity
from stream_mlops.kafka.broker.settings import INTER_BROKER_USER, SASL_MECHANISM, BrokerSettings
from stream_mlops.kafka.broker.tls import write_private

ADMIN_USER = "admin"
SERVICE_USERS = ("engine", "retrainer", "operator", "scorer")
USERS = (INTER_BROKER_USER, ADMIN_USER, *SERVICE_USERS)
# 32 bytes of randomness, URL-safe: nothing to quote in JAAS or properties files.
_PASSWORD_BYTES = 32


@dataclass(frozen=True)
class BrokerCredentials:
    """The users of one secured data dir."""

    settings: BrokerSettings

    def password_file(self, user: str) -> Path:
        return self.settings.secrets_dir / f"{user}.password"

    def exist(self) -> bool:
        return all(self.password_file(user).is_file() for user in USERS)

    def ensure(self) -> bool:
        """Give every user without one a new random password; True if any was made."""
        directory = self.settings.secrets_dir
        directory.mkdir(parents=True, exist_ok=True)
        directory.chmod(0o700)
        made = False
        for user in USERS:
            if not self.password_file(user).is_file():
                token = secrets.token_urlsafe(_PASSWORD_BYTES)
                write_private(self.password_file(user), token.encode("ascii"))
                made = True
        return made

    def password(self, user: str) -> SecretStr:
        return SecretStr(self.password_file(user).read_text(encoding="ascii").strip())

    def scram_format_arguments(self) -> list[str]:
        """``--add-scram`` arguments for ``StorageTool format``: every user's credential."""
        arguments = []
        for user in USERS:
            secret = self.password(user).get_secret_value()
            arguments += ["--add-scram", f"{SASL_MECHANISM}=[name={user},password={secret}]"]
        return arguments

    def security(self, user: str) -> KafkaSecurity:
        """``[kafka.security]`` of ``user`` against this broker, with the password loaded."""
        return KafkaSecurity(
            protocol="SASL_SSL",
            sasl_mechanism=SASL_MECHANISM,
            username=user,
            password_file=self.password_file(user).resolve(),
            ca_file=self.settings.certificates.ca_file.resolve(),
        ).with_secrets(password=self.password(user))

    def client_config(self, user: str) -> Path:
        return self.settings.client_dir / f"{user}.toml"

    def write_client_files(self) -> None:
        """``client/<user>.toml`` per service user and admin; admin.properties; admin-kcat.conf."""
        directory = self.settings.client_dir
        directory.mkdir(parents=True, exist_ok=True)
        ca = self.settings.certificates.ca_file.resolve()
        servers = self.settings.bootstrap_servers
        for user in (ADMIN_USER, *SERVICE_USERS):
            self.client_config(user).write_text(
                "\n".join(
                    [
                        f"# Written by `stream-mlops broker start --secure`: connects as {user}.",
                        "# Use it as --config, or copy its [kafka.security] into yours.",
                        "[kafka]",
                        f'bootstrap_servers = "{servers}"',
                        "",
                        "[kafka.security]",
                        'protocol = "SASL_SSL"',
                        f'sasl_mechanism = "{SASL_MECHANISM}"',
                        f'username = "{user}"',
                        f'password_file = "{self.password_file(user).resolve()}"',
                        f'ca_file = "{ca}"',
                        "",
                    ]
                ),
                encoding="utf-8",
            )
        admin = self.password(ADMIN_USER).get_secret_value()
        jaas = (
            "org.apache.kafka.common.security.scram.ScramLoginModule required "
            f'username="{ADMIN_USER}" password="{admin}";'
        )
        java = [
            "# The Java tools as admin: kafka-topics.sh --command-config <this file> ...",
            "security.protocol=SASL_SSL",
            f"sasl.mechanism={SASL_MECHANISM}",
            f"sasl.jaas.config={jaas}",
            "ssl.truststore.type=PEM",
            f"ssl.truststore.location={ca}",
            "",
        ]
        write_private(directory / "admin.properties", "\n".join(java).encode("utf-8"))
        kcat = [
            f"# kcat as admin: kcat -F <this file> -b {servers} -L",
            "security.protocol=sasl_ssl",
            f"sasl.mechanisms={SASL_MECHANISM}",
            f"sasl.username={ADMIN_USER}",
            f"sasl.password={admin}",
            f"ssl.ca.location={ca}",
            # Keys land on the partitions the Java client and kafka-python pick.
            "topic.partitioner=murmur2_random",
            "",
        ]
        write_private(directory / "admin-kcat.conf", "\n".join(kcat).encode("utf-8"))
