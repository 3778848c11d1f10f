"""The Kafka broker's distribution: its jars from Maven Central, the `java` that runs
them, and a class-data archive that makes every JVM start faster.

tools/kafka/pom.xml pins the version; the jars are cached under .cache/kafka/<version>.
A broker JVM loads some ten thousand classes before it answers, which costs seconds of
CPU at every start (tests start dozens of brokers). `make kafka-fetch` records them once
in an AppCDS archive (`train_archive`, a JDK 13+ dynamic archive, per JDK build), which
later JVMs map instead of loading and verifying each class again. With `fast_start` the
JVM also compiles with C1 only: a short-lived broker spends less CPU compiling than C2's
faster code would save it. Together they roughly halve a test broker's start (seconds
and CPU); the benchmarks run the broker with C2 as a long-lived one runs.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import logging
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

MIN_JAVA = 17


class BrokerError(RuntimeError):
    """The broker can't be fetched or started; the message says what to do."""


def repo_root() -> Path:
    """The repository this package was installed from (editable) or the working directory."""
    override = os.environ.get("RTS_HOME")
    if override:
        return Path(override).resolve()
    for start in (Path(__file__).resolve(), Path.cwd().resolve()):
        for folder in (start, *start.parents):
            if (folder / "tools" / "kafka" / "pom.xml").is_file():
                return folder
    raise BrokerError("cannot find the repository (tools/kafka/pom.xml); set RTS_HOME")


@dataclass(frozen=True)
class KafkaDistribution:
    version: str
    libs: Path
    log_config: Path
    agents: Path  # Java agents (the Prometheus JMX exporter), kept off the classpath

    @classmethod
    def fetch(cls, root: Path | None = None, cache: Path | None = None) -> KafkaDistribution:
        """The cached jars, fetched by Maven first if the pom changed or nothing is cached."""
        root = root or repo_root()
        pom = root / "tools" / "kafka" / "pom.xml"
        text = pom.read_text()
        match = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", text)
        if not match:
            raise BrokerError(f"{pom} has no <kafka.version>")
        version = match.group(1)
        home = (cache or root / ".cache" / "kafka") / version
        libs, agents, marker = home / "libs", home / "agents", home / ".fetched"
        digest = hashlib.sha256(text.encode()).hexdigest()
        dist = cls(version, libs, root / "tools" / "kafka" / "log4j2.properties", agents)
        fetched = marker.is_file() and marker.read_text() == digest
        if fetched and any(libs.glob("kafka_2.13-*.jar")) and any(agents.glob("*.jar")):
            return dist
        mvn = shutil.which("mvn")
        if not mvn:
            raise BrokerError(
                "Maven is needed once to fetch the Kafka broker jars: "
                "install it (Debian/Ubuntu: apt-get install maven; macOS: brew install maven)"
            )
        home.mkdir(parents=True, exist_ok=True)
        log.info("fetching Kafka jars from Maven Central", extra={"version": version})
        # `provided` holds the Java agents: copied on their own, never onto the classpath.
        for scope, folder in (("runtime", libs), ("provided", agents)):
            _maven_copy(mvn, pom, scope, folder, version)
        marker.write_text(digest)
        return dist

    @property
    def jmx_exporter(self) -> Path:
        """The Prometheus JMX exporter's agent jar."""
        found = sorted(self.agents.glob("jmx_prometheus_javaagent-*.jar"))
        if not found:
            raise BrokerError(f"no JMX exporter agent in {self.agents}: rerun `make kafka-fetch`")
        return found[-1]

    @property
    def class_archive(self) -> Path:
        """The AppCDS archive of the broker's classes, for this JDK build (a JVM refuses an
        archive of another build or classpath, and then starts without it)."""
        build = re.sub(r"[^A-Za-z0-9.+-]", "_", java_build())
        return self.libs.parent / f"broker-classes-{build}.jsa"

    def java(
        self,
        main_class: str,
        *args: str,
        heap: str = "512m",
        jvm: Sequence[str] = (),
        fast_start: bool = False,
    ) -> list[str]:
        """The command line running `main_class`; `fast_start`: C1 only and the class
        archive (when trained), for JVMs that live seconds to minutes."""
        quick = ["-XX:TieredStopAtLevel=1"] if fast_start else []
        if fast_start and self.class_archive.is_file():
            quick.append(f"-XX:SharedArchiveFile={self.class_archive}")
        return [
            java_executable(),
            f"-Xmx{heap}",
            "-Xms128m",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-XX:+ExitOnOutOfMemoryError",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.log_config}",
            *quick,
            *jvm,
            "-cp",
            f"{self.libs}/*",
            main_class,
            *args,
        ]

    def archiving(self) -> tuple[list[str], Path] | None:
        """JVM options that record the classes a run loads into a new archive (written when
        the JVM exits), and where it goes; None when an archive exists or another process
        is recording one. `adopt_archive` moves it into place."""
        if self.class_archive.is_file():
            return None
        lock = os.open(self.libs.parent / ".archive.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(lock)
            return None
        _ARCHIVE_LOCKS.append(lock)  # held until this process adopts it or exits
        staging = Path(tempfile.mkdtemp(prefix="cds-", dir=self.libs.parent)) / "classes.jsa"
        return [f"-XX:ArchiveClassesAtExit={staging}"], staging

    def adopt_archive(self, staging: Path) -> bool:
        """Move a recorded archive into place (False if the JVM wrote none)."""
        try:
            if staging.is_file() and staging.stat().st_size > 0:
                staging.rename(self.class_archive)
                return True
            return False
        finally:
            shutil.rmtree(staging.parent, ignore_errors=True)
            while _ARCHIVE_LOCKS:
                os.close(_ARCHIVE_LOCKS.pop())


_ARCHIVE_LOCKS: list[int] = []


def _maven_copy(mvn: str, pom: Path, scope: str, folder: Path, version: str) -> None:
    """Copy the pom's dependencies of one scope into `folder` (replacing it whole)."""
    staging = Path(tempfile.mkdtemp(prefix=f"{folder.name}-", dir=folder.parent))
    result = subprocess.run(
        [
            mvn,
            *"-q -B -f".split(),
            str(pom),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={staging}",
            f"-DincludeScope={scope}",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        raise BrokerError(f"Maven could not fetch Kafka {version}:\n{result.stdout[-3000:]}")
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)


def java_executable() -> str:
    """The `java` to run, checked to be new enough for Kafka 4 (Java 17)."""
    return _java()[0]


def java_build() -> str:
    """The JDK's full version ("17.0.15+6-Debian-1deb12u1")."""
    return _java()[1]


@functools.cache
def _java() -> tuple[str, str]:
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    if not java or not Path(java).exists():
        raise BrokerError(
            f"Java {MIN_JAVA}+ is needed to run the Kafka broker and was not found: install "
            "it (Debian/Ubuntu: apt-get install openjdk-17-jre-headless; macOS: brew install "
            "openjdk@17) or set JAVA_HOME"
        )
    out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False).stderr
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    major = int(match.group(1)) if match else 0
    if major == 1 and match and match.group(2):  # "1.8.0" is Java 8
        major = int(match.group(2))
    if major < MIN_JAVA:
        raise BrokerError(f"Kafka 4 needs Java {MIN_JAVA}+, but {java} is Java {major}")
    build = re.search(r"\(build ([^)]+)\)", out)
    return java, build.group(1) if build else str(major)
