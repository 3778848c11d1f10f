"""A real Apache Kafka broker, or a small cluster, on this machine, in KRaft mode: its
processes started, watched, stopped, frozen and killed (for fault tests), and its
topics, users and ACLs. What the nodes are (ports, folders, server.properties) is
broker_config.py; the jars and the JVM, distribution.py.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
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

from rts_devstack.broker_config import ADMIN_USER, SCRAM_MECHANISM, BrokerLayout, NodeSpec
from rts_devstack.distribution import BrokerError, KafkaDistribution

log = logging.getLogger(__name__)

SCRAM_ITERATIONS = 8192


class LocalKafka(BrokerLayout):
    """The nodes of a BrokerLayout as running JVMs; `add_user` and `allow` create the
    services' users and ACLs in the secured mode."""

    def __init__(
        self,
        data_root: Path,
        *,
        heap: str = "512m",
        dist: KafkaDistribution | None = None,
        detach: bool = False,
        fast_start: bool = True,
        **layout: Any,
    ) -> None:
        """`layout`: BrokerLayout's nodes and ports; `detach=True` lets the nodes outlive
        this process (`kafka start` in a shell); `fast_start=False`: a JVM tuned for a
        long life (the benchmarks'), not for starting quickly (distribution.py)."""
        super().__init__(data_root, **layout)
        self.heap = heap
        self._dist = dist
        self.detach = detach
        self.fast_start = fast_start
        self._procs: dict[int, subprocess.Popen[bytes]] = {}

    @classmethod
    def on_ports(
        cls,
        data_root: Path,
        ports: Sequence[int],
        nodes: int = 1,
        *,
        proxied: bool = False,
        **options: Any,
    ) -> LocalKafka:
        """`nodes` nodes on reserved ports (`ports_needed(nodes, proxied=...)` of them)."""
        return cls(data_root, **cls.port_layout(ports, nodes, proxied=proxied), **options)

    @property
    def dist(self) -> KafkaDistribution:
        if self._dist is None:
            self._dist = KafkaDistribution.fetch()
        return self._dist

    def _java(self, main_class: str, *args: str, heap: str, jvm: Sequence[str] = ()) -> list[str]:
        return self.dist.java(main_class, *args, heap=heap, jvm=jvm, fast_start=self.fast_start)

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

    def start_node(self, node_id: int, jvm: Sequence[str] = ()) -> None:
        """Start (or restart after `stop_node`) one node; fault tests use it alone."""
        node = self.node(node_id)
        self.write_properties(node)
        log_handle = node.log_file.open("ab")
        proc = subprocess.Popen(
            self._java(
                "kafka.Kafka",
                str(node.properties_file),
                heap=self.heap,
                jvm=[*self.jvm_options(node, self.dist), *jvm],
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

    def pid(self, node_id: int) -> int | None:
        """The node's process, started here or by another process from this folder."""
        return self._pid(node_id)

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

    def exited(self) -> dict[int, subprocess.Popen[bytes]]:
        """The nodes this object started that have ended since (their processes, exit
        status included); they are forgotten: `start_node` starts one again."""
        ended = {i: p for i, p in self._procs.items() if p.poll() is not None}
        for node_id in ended:
            del self._procs[node_id]
            self.node(node_id).pid_file.unlink(missing_ok=True)
        return ended

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
            for port in self.node_ports(node):
                if port_in_use(port, self.host):
                    raise BrokerError(
                        f"port {port} on {self.host} is already in use, probably by another "
                        "Kafka. Stop it, or pick other ports: KAFKA_PORT=19092 make run"
                    )

    def _format(self) -> None:
        """Format the nodes' storage (all at once: one JVM each) unless already formatted."""
        cluster_id = self.cluster_id()
        # The super user's SCRAM credential must exist before any broker can sign in to
        # another, so it goes into the metadata at format time (KIP-900).
        scram = (
            ["--add-scram", f"{SCRAM_MECHANISM}=[name={ADMIN_USER},password={self.admin_password}]"]
            if self.admin_password is not None
            else []
        )
        formatting = {}
        for node in self.nodes:
            node.data_dir.mkdir(parents=True, exist_ok=True)
            self.write_properties(node)
            if (node.data_dir / "logs" / "meta.properties").is_file():
                continue
            command = self._java(
                *"kafka.tools.StorageTool format --ignore-formatted -t".split(),
                cluster_id,
                *f"-c {node.properties_file}".split(),
                *scram,
                heap="256m",
            )
            formatting[node.node_id] = subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
        for node_id, proc in formatting.items():
            out, _ = proc.communicate()
            if proc.returncode != 0:
                raise BrokerError(f"formatting node {node_id} failed:\n{out}")

    def _raise_if_exited(self) -> None:
        for node_id, proc in self._procs.items():
            if proc.poll() is not None:
                tail = self.node(node_id).log_file.read_text(errors="replace")[-3000:]
                raise BrokerError(f"Kafka node {node_id} exited with {proc.returncode}:\n{tail}")


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


def train_class_archive(dist: KafkaDistribution, data_root: Path, ports: Sequence[int]) -> bool:
    """Record the classes a broker loads (start, topics, stop) into the distribution's
    class archive, once per JDK build; False when it exists or another process records it."""
    archiving = dist.archiving()
    if archiving is None:
        return False
    options, staging = archiving
    kafka = LocalKafka.on_ports(data_root, ports, dist=dist)
    try:
        kafka._check_ports()
        kafka._format()
        kafka.start_node(1, jvm=options)
        kafka.wait_ready()
        kafka.create_topics()
    finally:
        kafka.stop(timeout=120)  # the JVM writes the archive as it exits
    return dist.adopt_archive(staging)
