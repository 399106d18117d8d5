"""Fetch the pinned Apache Kafka release from Maven Central, once, into a cache outside the repository.

The version is stated once, in `kafka.env` next to this module (compose reads the same file through the
repository's `.env`). Maven resolves the broker's jars with the committed `pom.xml`; the result lands in
`$XDG_CACHE_HOME/streamrec/kafka-<version>/libs` by an atomic rename, under a file lock, so parallel test
processes fetch it once. A class-data-sharing archive made from one broker run sits next to the jars: it cuts
the JVM's start-up, and a JVM that cannot use it (another Java) starts without it.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from streamrec.errors import StackError

log = logging.getLogger(__name__)

COMPLETE_MARKER = ".complete"
FETCH_TIMEOUT_S = 900
INSTALL_HINT = "install a Java 17+ runtime and Maven (Debian: apt-get install openjdk-17-jre-headless maven)"


def kafka_version() -> str:
    """The pinned release, from kafka.env (`KAFKA_VERSION=x.y.z`)."""
    text = resources.files(__package__).joinpath("kafka.env").read_text()
    for line in text.splitlines():
        name, _, value = line.partition("=")
        if name.strip() == "KAFKA_VERSION":
            return value.strip()
    raise StackError("streamrec/devstack/kafka.env states no KAFKA_VERSION")


def broker_label() -> str:
    """How benchmarks name the broker they ran on."""
    return f"apache-kafka {kafka_version()}"


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "streamrec"


@dataclass(frozen=True)
class KafkaDist:
    """A fetched release: its jars, and the class-data archive when one has been made."""

    version: str
    home: Path

    @property
    def libs(self) -> Path:
        return self.home / "libs"

    @property
    def class_archive(self) -> Path:
        return self.home / "kafka.jsa"

    def classpath(self) -> str:
        return str(self.libs / "*")

    @property
    def log_config(self) -> Path:
        return Path(str(resources.files(__package__).joinpath("log4j2.yaml")))


def java_binary() -> str:
    java = shutil.which("java")
    if java is None:
        raise StackError(f"Apache Kafka needs `java`, which is not on PATH: {INSTALL_HINT}")
    return java


def ensure_kafka(version: str | None = None) -> KafkaDist:
    """The release's jars, fetched on first use; a missing `java` or `mvn` is a StackError saying what to install."""
    version = version or kafka_version()
    java_binary()
    home = cache_root() / f"kafka-{version}"
    dist = KafkaDist(version, home)
    if (home / COMPLETE_MARKER).is_file():
        return dist
    home.mkdir(parents=True, exist_ok=True)
    with _locked(home / ".lock"):
        if not (home / COMPLETE_MARKER).is_file():  # another process may have fetched it while we waited
            _fetch(version, dist)
    return dist


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _fetch(version: str, dist: KafkaDist) -> None:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise StackError(f"fetching Apache Kafka {version} from Maven Central needs `mvn`, not on PATH: {INSTALL_HINT}")
    log.warning("fetching Apache Kafka %s from Maven Central into %s (once)", version, dist.home)
    pom = Path(str(resources.files(__package__).joinpath("pom.xml")))
    staging = Path(tempfile.mkdtemp(prefix="libs-", dir=dist.home))
    staging.chmod(0o755)
    argv = [
        mvn,
        "-q",
        "-B",
        "-f",
        str(pom),
        f"-Dkafka.version={version}",
        "dependency:copy-dependencies",
        f"-DoutputDirectory={staging}",
    ]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=FETCH_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise StackError(f"mvn did not fetch Apache Kafka {version} within {FETCH_TIMEOUT_S}s") from exc
    if done.returncode != 0 or not any(staging.glob("kafka_2.13-*.jar")):
        shutil.rmtree(staging, ignore_errors=True)
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-20:])
        raise StackError(f"mvn could not fetch Apache Kafka {version} (exit {done.returncode}):\n{tail}")
    shutil.rmtree(dist.libs, ignore_errors=True)
    staging.rename(dist.libs)
    (dist.home / COMPLETE_MARKER).write_text(version + "\n")


def main() -> int:
    """`python -m streamrec.devstack.kafka_dist`: fetch the release and make its class archive (set-up)."""
    from streamrec.devstack.kraft import make_class_archive

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    dist = ensure_kafka()
    make_class_archive(dist)
    print(f"apache-kafka {dist.version}: {dist.libs}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
