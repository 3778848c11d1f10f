"""A real Apache Kafka broker, or a small cluster, on this machine, in KRaft mode.

The jars come from Maven Central (tools/kafka/pom.xml pins the version) and are cached
under .cache/kafka/<version>. Each node is one JVM with the combined broker+controller
roles, its own ports and its own data folder, so the same code runs the developer's
broker on 9092, a test session's broker on free ports, and a 3-node cluster for fault
tests.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)
from rts_common.acls import Acl
from rts_common.contracts import TOPICS, TopicSpec
from rts_common.kafka import admin_client, ensure_topics, set_topic_configs, wait_for_brokers
from rts_common.lifecycle import die_with_parent
from rts_common.net import port_in_use

log = logging.getLogger(__name__)

MIN_JAVA = 17
# The secured mode's super user: the brokers talk to each other and to the controllers as
# this user, and tests and the devstack create topics, users and ACLs with it.
ADMIN_USER = "admin"
SCRAM_MECHANISM = "SCRAM-SHA-512"
SCRAM_ITERATIONS = 8192
# The JMX exporter's rules: the same file the Helm chart hands to Strimzi's
# metricsConfig, so the broker's series have the same names here and in the cluster.
KAFKA_METRICS_RULES = Path("helm") / "streaming" / "files" / "kafka-metrics.yaml"


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


# ---------------------------------------------------------------------------------------
# The distribution: jars from Maven Central


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

    def java(
        self, main_class: str, *args: str, heap: str = "512m", jvm: Sequence[str] = ()
    ) -> list[str]:
        return [
            java_executable(),
            f"-Xmx{heap}",
            "-Xms128m",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-XX:+ExitOnOutOfMemoryError",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.log_config}",
            *jvm,
            "-cp",
            f"{self.libs}/*",
            main_class,
            *args,
        ]


def _maven_copy(mvn: str, pom: Path, scope: str, folder: Path, version: str) -> None:
    """Copy the pom's dependencies of one scope into `folder` (replacing it whole)."""
    staging = Path(tempfile.mkdtemp(prefix=f"{folder.name}-", dir=folder.parent))
    result = subprocess.run(
        [
            mvn,
            "-q",
            "-B",
            "-f",
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
    return java


# ---------------------------------------------------------------------------------------
# Nodes and the cluster


@dataclass(frozen=True)
class NodeSpec:
    node_id: int
    port: int
    controller_port: int
    data_dir: Path

    @property
    def properties_file(self) -> Path:
        return self.data_dir / "server.properties"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "server.log"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "broker.pid"


class LocalKafka:
    """One or more KRaft nodes (broker+controller each) on 127.0.0.1.

    Node i listens on `ports[i]` for clients and `controller_ports[i]` for the quorum; by
    default node i uses `port + 2*i` and `port + 2*i + 1` (9092/9093 for a single node).
    With `metrics_ports`, node i also runs Prometheus's JMX exporter agent serving
    `/metrics` on `metrics_ports[i]`, with the chart's rules (KAFKA_METRICS_RULES).

    With `admin_password`, the nodes run secured as the chart's cluster does: clients
    authenticate with SASL/SCRAM-SHA-512 (no TLS: loopback only), KRaft's
    StandardAuthorizer enforces ACLs and denies whatever no ACL allows, and `admin`
    (that password) is the only super user. `add_user` and `allow` create the services'
    users and ACLs.
    """

    def __init__(
        self,
        data_root: Path,
        *,
        nodes: int = 1,
        port: int = 9092,
        ports: Sequence[int] | None = None,
        controller_ports: Sequence[int] | None = None,
        metrics_ports: Sequence[int] | None = None,
        metrics_rules: Path | None = None,
        host: str = "127.0.0.1",
        heap: str = "512m",
        dist: KafkaDistribution | None = None,
        detach: bool = False,
        admin_password: str | None = None,
        proxied_ports: Sequence[tuple[int, int]] | None = None,
    ) -> None:
        """`detach=True` lets the nodes outlive this process (`kafka start` in a shell).

        `proxied_ports`: per node, (listen, advertise): a second client listener on
        `listen` that tells clients to connect to `advertise`, where a fault test puts a
        proxy it controls (rts_devstack.faults.TcpProxy): clients bootstrapped through
        `proxied_bootstrap` then reach the node only through the proxy, others directly.
        """
        if nodes < 1:
            raise ValueError("nodes must be at least 1")
        ports = list(ports) if ports else [port + 2 * i for i in range(nodes)]
        controllers = list(controller_ports) if controller_ports else [p + 1 for p in ports]
        if len(ports) != nodes or len(controllers) != nodes:
            raise ValueError("need one client port and one controller port per node")
        if metrics_ports is not None and len(metrics_ports) != nodes:
            raise ValueError("need one metrics port per node")
        self.metrics_ports = list(metrics_ports) if metrics_ports else []
        self._metrics_rules = metrics_rules
        self.data_root = Path(data_root)
        self.host = host
        self.heap = heap
        self._dist = dist
        self.detach = detach
        self.admin_password = admin_password
        self.nodes = [
            NodeSpec(i + 1, ports[i], controllers[i], self.data_root / f"node-{i + 1}")
            for i in range(nodes)
        ]
        self._procs: dict[int, subprocess.Popen[bytes]] = {}
        if proxied_ports is not None and len(proxied_ports) != nodes:
            raise ValueError("need one (listen, advertise) pair of proxied ports per node")
        if proxied_ports and admin_password is not None:
            raise ValueError("a proxied listener and the secured mode are not combined")
        self.proxied_ports = list(proxied_ports or [])

    # -- properties

    @property
    def bootstrap(self) -> str:
        return ",".join(f"{self.host}:{n.port}" for n in self.nodes)

    @property
    def secured(self) -> bool:
        return self.admin_password is not None

    def client_config(self, user: str | None = None, password: str | None = None) -> dict[str, Any]:
        """librdkafka settings to reach the nodes: as `user`, or as the super user."""
        config: dict[str, Any] = {"bootstrap.servers": self.bootstrap}
        if self.admin_password is not None:
            config |= {
                "security.protocol": "SASL_PLAINTEXT",
                "sasl.mechanism": SCRAM_MECHANISM,
                "sasl.username": user or ADMIN_USER,
                "sasl.password": password if user else self.admin_password,
            }
        return config

    def client_env(self, user: str, password: str) -> dict[str, str]:
        """The KAFKA_* variables that connect a service as `user` (rts_common.kafka)."""
        env = {"KAFKA_BOOTSTRAP": self.bootstrap}
        if self.admin_password is not None:
            env |= {
                "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                "KAFKA_SASL_MECHANISM": SCRAM_MECHANISM,
                "KAFKA_USERNAME": user,
                "KAFKA_PASSWORD": password,
            }
        return env

    @property
    def proxied_bootstrap(self) -> str:
        return ",".join(f"{self.host}:{advertise}" for _listen, advertise in self.proxied_ports)

    @property
    def replication_factor(self) -> int:
        return min(3, len(self.nodes))

    @property
    def dist(self) -> KafkaDistribution:
        if self._dist is None:
            self._dist = KafkaDistribution.fetch()
        return self._dist

    def node(self, node_id: int) -> NodeSpec:
        return self.nodes[node_id - 1]

    @property
    def metrics_targets(self) -> list[str]:
        """`host:port` of each node's JMX exporter (empty without metrics ports)."""
        return [f"{self.host}:{port}" for port in self.metrics_ports]

    def _jvm_options(self, node: NodeSpec) -> list[str]:
        if not self.metrics_ports:
            return []
        rules = self._metrics_rules or repo_root() / KAFKA_METRICS_RULES
        port = self.metrics_ports[node.node_id - 1]
        agent = self.dist.jmx_exporter
        return [f"-javaagent:{agent}={self.host}:{port}:{rules}"]

    # -- lifecycle

    def start(self, timeout: float = 90.0) -> Self:
        """Format storage if new, start every node, and wait until all brokers answer."""
        self._check_ports()
        self._format()
        for node in self.nodes:
            self.start_node(node.node_id)
        try:
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def start_node(self, node_id: int) -> None:
        """Start (or restart after `stop_node`) one node; fault tests use it alone."""
        node = self.node(node_id)
        self._write_properties(node)
        log_handle = node.log_file.open("ab")
        proc = subprocess.Popen(
            self.dist.java(
                "kafka.Kafka",
                str(node.properties_file),
                heap=self.heap,
                jvm=self._jvm_options(node),
            ),
            stdout=log_handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            # Own session: a Ctrl-C in the terminal reaches the supervisor, which stops
            # the services before the broker, instead of reaching everything at once.
            start_new_session=True,
            preexec_fn=None if self.detach else die_with_parent,  # noqa: PLW1509 - prctl only
        )
        log_handle.close()
        node.pid_file.write_text(str(proc.pid))
        self._procs[node_id] = proc

    def wait_ready(self, timeout: float = 90.0) -> None:
        admin = admin_client(self.client_config(), quiet=True)
        deadline = time.monotonic() + timeout
        while True:
            self._raise_if_exited()
            try:
                wait_for_brokers(admin, len(self.nodes), timeout=min(2.0, timeout))
                return
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise BrokerError(
                        f"Kafka did not answer on {self.bootstrap} within {timeout:.0f}s; "
                        f"see {self.nodes[0].log_file}"
                    ) from None

    def create_topics(
        self, specs: Iterable[TopicSpec[Any]] = TOPICS, *, prefix: str = "", local: bool = True
    ) -> list[str]:
        admin = admin_client(self.client_config())
        return ensure_topics(
            admin, specs, local=local, replication_factor=self.replication_factor, prefix=prefix
        )

    def add_user(self, name: str, password: str, timeout: float = 30.0) -> None:
        """Create (or change the password of) a SCRAM user (secured mode only)."""
        self._require_secured()
        upsert = UserScramCredentialUpsertion(
            name,
            ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, SCRAM_ITERATIONS),
            password.encode(),
        )
        admin = admin_client(self.client_config())
        for future in admin.alter_user_scram_credentials([upsert]).values():
            future.result(timeout)

    def allow(self, user: str, acls: Iterable[Acl], timeout: float = 30.0) -> None:
        """Grant `user` these ACLs, from any host (secured mode only)."""
        self._require_secured()
        bindings = [
            AclBinding(
                _RESOURCE_TYPES[acl.resource],
                acl.name,
                _PATTERN_TYPES[acl.pattern],
                f"User:{user}",
                "*",
                _OPERATIONS[operation],
                AclPermissionType.ALLOW,
            )
            for acl in acls
            for operation in acl.operations
        ]
        admin = admin_client(self.client_config())
        for future in admin.create_acls(bindings, request_timeout=timeout).values():
            future.result(timeout)

    def _require_secured(self) -> None:
        if self.admin_password is None:
            raise BrokerError("users and ACLs need the secured mode (admin_password)")

    def set_topic_configs(self, topic: str, configs: Mapping[str, str]) -> None:
        set_topic_configs(admin_client(self.client_config()), topic, configs)

    def stop_node(self, node_id: int, timeout: float = 30.0, *, kill: bool = False) -> None:
        """Stop one node: SIGTERM for a controlled shutdown (or SIGKILL for a crash)."""
        node = self.node(node_id)
        pid = self._pid(node_id)
        proc = self._procs.pop(node_id, None)
        if pid is None:
            return
        _signal(pid, signal.SIGCONT)  # a paused node could not act on SIGTERM
        _signal(pid, signal.SIGKILL if kill else signal.SIGTERM)
        if not _wait_exit(pid, proc, timeout):
            log.warning("broker ignored SIGTERM; killing", extra={"node": node_id, "pid": pid})
            _signal(pid, signal.SIGKILL)
            _wait_exit(pid, proc, 10.0)
        node.pid_file.unlink(missing_ok=True)

    def pause_node(self, node_id: int) -> None:
        """Freeze one node (SIGSTOP): it keeps its connections open and answers nothing, as
        a broker in a long GC pause or on a hung host does."""
        pid = self._pid(node_id)
        if pid is not None:
            _signal(pid, signal.SIGSTOP)

    def resume_node(self, node_id: int) -> None:
        pid = self._pid(node_id)
        if pid is not None:
            _signal(pid, signal.SIGCONT)

    def _pid(self, node_id: int) -> int | None:
        proc = self._procs.get(node_id)
        return proc.pid if proc else _pid_of(self.node(node_id))

    def stop(self, timeout: float = 30.0) -> None:
        """Stop every node, also ones a previous process started from the same data folder."""
        # All at once: stopped one by one, the last nodes of a cluster lose their quorum
        # and wait out controlled-shutdown retries.
        pids = {}
        for node in self.nodes:
            proc = self._procs.get(node.node_id)
            pid = proc.pid if proc else _pid_of(node)
            if pid is not None:
                pids[node.node_id] = pid
                _signal(pid, signal.SIGCONT)
                _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for node_id, pid in pids.items():
            proc = self._procs.get(node_id)
            if not _wait_exit(pid, proc, max(0.1, deadline - time.monotonic())):
                log.warning("broker ignored SIGTERM; killing", extra={"node": node_id, "pid": pid})
                _signal(pid, signal.SIGKILL)
                _wait_exit(pid, proc, 10.0)
        for node in self.nodes:
            node.pid_file.unlink(missing_ok=True)
        self._procs.clear()

    def running(self) -> list[int]:
        return [n.node_id for n in self.nodes if _pid_of(n) is not None]

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- internals

    def _check_ports(self) -> None:
        stale = self.running()
        if stale:
            raise BrokerError(
                f"a broker from {self.data_root} is still running (nodes {stale}); stop it "
                "first: `make kafka-stop` (or python -m rts_devstack kafka stop)"
            )
        for node in self.nodes:
            ports = [node.port, node.controller_port]
            if self.metrics_ports:
                ports.append(self.metrics_ports[node.node_id - 1])
            for port in ports:
                if port_in_use(port, self.host):
                    raise BrokerError(
                        f"port {port} on {self.host} is already in use, probably by another "
                        "Kafka. Stop it, or pick other ports: KAFKA_PORT=19092 make run"
                    )

    def _cluster_id(self) -> str:
        path = self.data_root / "cluster.id"
        if path.is_file():
            return path.read_text().strip()
        # Kafka's own format: 16 random bytes, URL-safe base64 without padding, not
        # starting with '-' (which its command line tools would read as a flag).
        while True:
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
            if not cluster_id.startswith("-"):
                break
        self.data_root.mkdir(parents=True, exist_ok=True)
        path.write_text(cluster_id)
        return cluster_id

    def _format(self) -> None:
        cluster_id = self._cluster_id()
        for node in self.nodes:
            node.data_dir.mkdir(parents=True, exist_ok=True)
            self._write_properties(node)
            if (node.data_dir / "logs" / "meta.properties").is_file():
                continue
            # The super user's SCRAM credential must exist before any broker can sign in to
            # another, so it goes into the metadata at format time (KIP-900).
            scram = (
                [
                    "--add-scram",
                    f"{SCRAM_MECHANISM}=[name={ADMIN_USER},password={self.admin_password}]",
                ]
                if self.admin_password is not None
                else []
            )
            result = subprocess.run(
                self.dist.java(
                    *"kafka.tools.StorageTool format --ignore-formatted -t".split(),
                    cluster_id,
                    "-c",
                    str(node.properties_file),
                    *scram,
                    heap="256m",
                ),
                capture_output=True,
                text=True,
                check=False,
            )
            if result.returncode != 0:
                raise BrokerError(f"formatting node {node.node_id} failed:\n{result.stdout}")

    def _write_properties(self, node: NodeSpec) -> None:
        n = len(self.nodes)
        voters = ",".join(f"{x.node_id}@{self.host}:{x.controller_port}" for x in self.nodes)
        clients = "CLIENTS" if self.secured else "PLAINTEXT"
        protocol = "SASL_PLAINTEXT" if self.secured else "PLAINTEXT"
        listeners = [f"{clients}://{self.host}:{node.port}"]
        advertised = [f"{clients}://{self.host}:{node.port}"]
        protocols = [f"{clients}:{protocol}", f"CONTROLLER:{protocol}"]
        if self.proxied_ports:
            listen, advertise = self.proxied_ports[node.node_id - 1]
            listeners.append(f"PROXIED://{self.host}:{listen}")
            advertised.append(f"PROXIED://{self.host}:{advertise}")
            protocols.append("PROXIED:PLAINTEXT")
        props = {
            "process.roles": "broker,controller",
            "node.id": node.node_id,
            "controller.quorum.voters": voters,
            "listeners": ",".join([*listeners, f"CONTROLLER://{self.host}:{node.controller_port}"]),
            "advertised.listeners": ",".join(advertised),
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": clients,
            "listener.security.protocol.map": ",".join(protocols),
            "log.dirs": node.data_dir / "logs",
            "num.partitions": 3,
            # Topics come from the contracts, created explicitly: a typo must not
            # silently create a topic nobody reads.
            "auto.create.topics.enable": "false",
            "default.replication.factor": self.replication_factor,
            "min.insync.replicas": min(2, n),
            "offsets.topic.replication.factor": self.replication_factor,
            "offsets.topic.num.partitions": 10,
            "transaction.state.log.replication.factor": self.replication_factor,
            "transaction.state.log.min.isr": min(2, n),
            "share.coordinator.state.topic.replication.factor": self.replication_factor,
            "share.coordinator.state.topic.min.isr": min(2, n),
            **self._security_properties(),
            # Tests and `make run` start consumer groups right away; don't wait 3 s.
            "group.initial.rebalance.delay.ms": 0,
            "log.retention.check.interval.ms": 30000,
            # Notice a dead node in seconds: fault tests kill nodes on purpose.
            "broker.heartbeat.interval.ms": 500,
            "broker.session.timeout.ms": 3000,
        }
        node.properties_file.write_text("".join(f"{k}={v}\n" for k, v in props.items()))

    def _security_properties(self) -> dict[str, Any]:
        """Listener settings: plaintext, or SASL/SCRAM with ACLs in the secured mode."""
        if self.admin_password is None:
            return {}
        login = _jaas(
            "org.apache.kafka.common.security.scram.ScramLoginModule",
            username=ADMIN_USER,
            password=self.admin_password,
        )
        # Controllers read SCRAM credentials from the metadata they serve, so their own
        # listener authenticates with PLAIN against this one static user instead.
        controller = _jaas(
            "org.apache.kafka.common.security.plain.PlainLoginModule",
            username=ADMIN_USER,
            password=self.admin_password,
            **{f"user_{ADMIN_USER}": self.admin_password},
        )
        return {
            "listener.name.clients.sasl.enabled.mechanisms": SCRAM_MECHANISM,
            f"listener.name.clients.{SCRAM_MECHANISM.lower()}.sasl.jaas.config": login,
            "sasl.mechanism.inter.broker.protocol": SCRAM_MECHANISM,
            "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
            "listener.name.controller.plain.sasl.jaas.config": controller,
            "sasl.mechanism.controller.protocol": "PLAIN",
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users": f"User:{ADMIN_USER}",
            "allow.everyone.if.no.acl.found": "false",
        }

    def _raise_if_exited(self) -> None:
        for node_id, proc in self._procs.items():
            if proc.poll() is not None:
                tail = self.node(node_id).log_file.read_text(errors="replace")[-3000:]
                raise BrokerError(f"Kafka node {node_id} exited with {proc.returncode}:\n{tail}")


def _jaas(module: str, **options: str) -> str:
    values = " ".join(f'{key}="{value}"' for key, value in options.items())
    return f"{module} required {values};"


_RESOURCE_TYPES = {"topic": ResourceType.TOPIC, "group": ResourceType.GROUP}
_PATTERN_TYPES = {"literal": ResourcePatternType.LITERAL, "prefix": ResourcePatternType.PREFIXED}
_OPERATIONS = {
    "Read": AclOperation.READ,
    "Write": AclOperation.WRITE,
    "Describe": AclOperation.DESCRIBE,
}


def _pid_of(node: NodeSpec) -> int | None:
    """The pid in the node's pid file, if that process is alive and is this node's JVM."""
    try:
        pid = int(node.pid_file.read_text())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    if str(node.properties_file).encode() not in cmdline:
        return None  # the pid was reused by an unrelated process
    return pid


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _wait_exit(pid: int, proc: subprocess.Popen[bytes] | None, timeout: float) -> bool:
    if proc is not None:
        try:
            proc.wait(timeout)
            return True
        except subprocess.TimeoutExpired:
            return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not Path(f"/proc/{pid}").exists() or _is_zombie(pid):
            return True
        time.sleep(0.05)
    return False


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except (OSError, IndexError):
        return True
