"""What a local Kafka broker or cluster is: its nodes, ports and folders, how clients
reach it, and each node's server.properties (rts_devstack.broker runs them).

Each node is one JVM with the combined broker+controller roles (KRaft), its own client
and controller ports and its own data folder, so the same layout serves the developer's
broker on 9092, a test's broker on reserved ports, and a 3-node cluster for fault tests.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rts_devstack.distribution import KafkaDistribution, repo_root

# The secured mode's super user: the brokers talk to each other and to the controllers as
# this user, and tests and the devstack create topics, users and ACLs with it.
ADMIN_USER = "admin"
SCRAM_MECHANISM = "SCRAM-SHA-512"
# The JMX exporter's rules: the same file the Helm chart hands to Strimzi's
# metricsConfig, so the broker's series have the same names here and in the cluster.
KAFKA_METRICS_RULES = Path("helm") / "streaming" / "files" / "kafka-metrics.yaml"


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


def ports_needed(nodes: int = 1, *, proxied: bool = False) -> int:
    """How many ports `BrokerLayout.on_ports` lays out: per node a client and a controller
    port, and with `proxied` a proxied listener and the port its proxy listens on."""
    return (4 if proxied else 2) * nodes


class BrokerLayout:
    """One or more KRaft nodes (broker+controller each) on 127.0.0.1: their ports, folders,
    client settings and server.properties.

    Node i listens on `ports[i]` for clients and `controller_ports[i]` for the quorum; by
    default node i uses `port + 2*i` and `port + 2*i + 1` (9092/9093 for a single node).
    With `metrics_ports`, node i also runs Prometheus's JMX exporter agent serving
    `/metrics` on `metrics_ports[i]`, with the chart's rules (KAFKA_METRICS_RULES).

    With `admin_password`, the nodes run secured as the chart's cluster does: clients
    authenticate with SASL/SCRAM-SHA-512 (no TLS: loopback only), KRaft's
    StandardAuthorizer enforces ACLs and denies whatever no ACL allows, and `admin`
    (that password) is the only super user.

    `proxied_ports`: per node, (listen, advertise): a second client listener on `listen`
    that tells clients to connect to `advertise`, where a fault test puts a proxy it
    controls (rts_devstack.faults.TcpProxy): clients bootstrapped through
    `proxied_bootstrap` then reach the node only through the proxy, others directly.
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
        admin_password: str | None = None,
        proxied_ports: Sequence[tuple[int, int]] | None = None,
    ) -> None:
        if nodes < 1:
            raise ValueError("nodes must be at least 1")
        ports = list(ports) if ports else [port + 2 * i for i in range(nodes)]
        controllers = list(controller_ports) if controller_ports else [p + 1 for p in ports]
        if len(ports) != nodes or len(controllers) != nodes:
            raise ValueError("need one client port and one controller port per node")
        if metrics_ports is not None and len(metrics_ports) != nodes:
            raise ValueError("need one metrics port per node")
        if proxied_ports is not None and len(proxied_ports) != nodes:
            raise ValueError("need one (listen, advertise) pair of proxied ports per node")
        if proxied_ports and admin_password is not None:
            raise ValueError("a proxied listener and the secured mode are not combined")
        self.metrics_ports = list(metrics_ports) if metrics_ports else []
        self._metrics_rules = metrics_rules
        self.data_root = Path(data_root)
        self.host = host
        self.admin_password = admin_password
        self.proxied_ports = list(proxied_ports or [])
        self.nodes = [
            NodeSpec(i + 1, ports[i], controllers[i], self.data_root / f"node-{i + 1}")
            for i in range(nodes)
        ]

    @classmethod
    def port_layout(
        cls, ports: Sequence[int], nodes: int = 1, *, proxied: bool = False
    ) -> dict[str, Any]:
        """The port arguments for `nodes` nodes from `ports_needed(nodes, proxied)` ports
        (reserved ones: rts_devstack.ports)."""
        if len(ports) != ports_needed(nodes, proxied=proxied):
            raise ValueError(f"need {ports_needed(nodes, proxied=proxied)} ports")
        n = nodes
        layout: dict[str, Any] = {
            "nodes": n,
            "ports": list(ports[:n]),
            "controller_ports": list(ports[n : 2 * n]),
        }
        if proxied:
            layout["proxied_ports"] = list(zip(ports[2 * n : 3 * n], ports[3 * n :], strict=True))
        return layout

    # -- how clients reach it

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

    def node(self, node_id: int) -> NodeSpec:
        return self.nodes[node_id - 1]

    @property
    def metrics_targets(self) -> list[str]:
        """`host:port` of each node's JMX exporter (empty without metrics ports)."""
        return [f"{self.host}:{port}" for port in self.metrics_ports]

    def node_ports(self, node: NodeSpec) -> list[int]:
        """Every port the node binds."""
        ports = [node.port, node.controller_port]
        if self.metrics_ports:
            ports.append(self.metrics_ports[node.node_id - 1])
        if self.proxied_ports:
            ports.append(self.proxied_ports[node.node_id - 1][0])
        return ports

    # -- the nodes' configuration

    def jvm_options(self, node: NodeSpec, dist: KafkaDistribution) -> list[str]:
        if not self.metrics_ports:
            return []
        rules = self._metrics_rules or repo_root() / KAFKA_METRICS_RULES
        port = self.metrics_ports[node.node_id - 1]
        return [f"-javaagent:{dist.jmx_exporter}={self.host}:{port}:{rules}"]

    def cluster_id(self) -> str:
        """The cluster's id, made once and kept in the data folder."""
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

    def write_properties(self, node: NodeSpec) -> None:
        node.properties_file.write_text(
            "".join(f"{k}={v}\n" for k, v in self.properties(node).items())
        )

    def properties(self, node: NodeSpec) -> dict[str, Any]:
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
        return {
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
            **self._liveness_properties(),
        }

    def _liveness_properties(self) -> dict[str, Any]:
        """How soon the controllers fence a node that stops heartbeating."""
        if len(self.nodes) == 1:
            # Nobody to fail over to: fencing its only broker makes the cluster
            # unavailable, which a starved CPU (a loaded machine, a paused JVM) would
            # otherwise do within 3 s. Kafka's defaults.
            return {"broker.heartbeat.interval.ms": 2000, "broker.session.timeout.ms": 9000}
        # Notice a dead node in seconds: fault tests kill nodes on purpose.
        return {"broker.heartbeat.interval.ms": 500, "broker.session.timeout.ms": 3000}

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


def _jaas(module: str, **options: str) -> str:
    values = " ".join(f'{key}="{value}"' for key, value in options.items())
    return f"{module} required {values};"
