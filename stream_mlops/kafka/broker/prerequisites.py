"""The external programs the local broker needs (a JVM, and Maven for the first start)."""

from __future__ import annotations

import shutil

from stream_mlops.kafka.broker.exceptions import BrokerError

JAVA_HINT = "a Java 17+ runtime (Debian: apt-get install openjdk-17-jre-headless)"
MAVEN_HINT = "Apache Maven 3 (Debian: apt-get install maven)"


def require_tool(name: str, what_to_install: str) -> str:
    """The path of ``name`` on PATH, or a one-line BrokerError naming what to install.

    >>> try:
    ...     require_tool("no-such-tool-xyz", "the xyz suite")
    ... except BrokerError as exc:
    ...     print(exc)
    no-such-tool-xyz not found on PATH: install the xyz suite
    """
    path = shutil.which(name)
    if path is None:
        raise BrokerError(f"{name} not found on PATH: install {what_to_install}")
    return path
