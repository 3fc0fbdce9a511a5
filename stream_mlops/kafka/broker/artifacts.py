"""The broker's jars: fetched once from Maven through the checked-in ``pom.xml``.

The jar directory carries a stamp with the pom's SHA-256. A matching stamp means
the jars are complete (it is written last), so a second start runs no Maven at
all; an edited pom (a new Kafka version) re-fetches on the next start.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path

from stream_mlops.kafka.broker.exceptions import BrokerError
from stream_mlops.kafka.broker.prerequisites import MAVEN_HINT, require_tool
from stream_mlops.kafka.broker.settings import BrokerSettings

STAMP_NAME = ".pom-sha256"
_RESOURCES = "stream_mlops.kafka.broker"
# A cold fetch of the ~43 MB of jars took 15 s here; ten minutes covers a slow mirror.
MAVEN_TIMEOUT_S = 600.0
_MAVEN_OUTPUT_TAIL = 20


def pom_text() -> str:
    return resources.files(_RESOURCES).joinpath("pom.xml").read_text(encoding="utf-8")


def log4j_config_text() -> str:
    return resources.files(_RESOURCES).joinpath("log4j2.properties").read_text(encoding="utf-8")


def pom_digest() -> str:
    return hashlib.sha256(pom_text().encode("utf-8")).hexdigest()


def jars_ready(lib_dir: Path) -> bool:
    stamp = lib_dir / STAMP_NAME
    return stamp.is_file() and stamp.read_text(encoding="utf-8").strip() == pom_digest()


def ensure_jars(lib_dir: Path) -> bool:
    """Make ``lib_dir`` hold exactly the pom's runtime jars; True if Maven had to run.

    Maven writes into a sibling staging directory that replaces ``lib_dir`` only
    once complete, so an interrupted fetch never leaves a half-filled cache behind.
    """
    if jars_ready(lib_dir):
        return False
    lib_dir = lib_dir.resolve()
    mvn = require_tool("mvn", MAVEN_HINT)
    staging = lib_dir.with_name(lib_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    # Maven runs on a copy, so an installed (possibly read-only) package stays untouched.
    pom = staging / "pom.xml"
    pom.write_text(pom_text(), encoding="utf-8")
    jars = staging / "jars"
    command = [
        mvn,
        "--batch-mode",
        "--quiet",
        "-Dstyle.color=never",
        "--file",
        str(pom),
        "dependency:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={jars}",
    ]
    try:
        result = subprocess.run(
            command,
            cwd=staging,
            capture_output=True,
            text=True,
            timeout=MAVEN_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise BrokerError(
            f"mvn did not finish fetching the Kafka jars in {MAVEN_TIMEOUT_S:.0f} s"
        ) from exc
    if result.returncode != 0 or not any(jars.glob("kafka_2.13-*.jar")):
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-_MAVEN_OUTPUT_TAIL:])
        raise BrokerError(f"mvn could not fetch the Kafka jars (exit {result.returncode}):\n{tail}")
    shutil.rmtree(lib_dir, ignore_errors=True)
    lib_dir.parent.mkdir(parents=True, exist_ok=True)
    jars.rename(lib_dir)
    (lib_dir / STAMP_NAME).write_text(pom_digest() + "\n", encoding="utf-8")
    shutil.rmtree(staging, ignore_errors=True)
    return True


def main() -> int:
    """Fetch the jars ahead of a start (``make jars``); returns the exit code."""
    lib_dir = BrokerSettings.from_env().lib_dir
    try:
        fetched = ensure_jars(lib_dir)
    except BrokerError as exc:
        print(f"stream-mlops broker jars: {exc}", file=sys.stderr)
        return 1
    print(f"broker jars {'fetched into' if fetched else 'already cached in'} {lib_dir}")
    return 0
