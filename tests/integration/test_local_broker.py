"""The local broker machinery: topics as contracted, clean stops, clusters, `make run`."""

import json
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import ConfigResource, ResourceType
from rts_common.contracts import TOPICS, VIDEO_FRAMES
from rts_common.kafka import admin_client
from rts_common.net import port_in_use
from rts_devstack.broker import LocalKafka
from rts_devstack.distribution import BrokerError
from rts_devstack.stack import launch_stack

from tests.fixtures.kafka import KafkaUnderTest
from tests.fixtures.processes import ServiceGroup


def test_contract_topics_exist_with_their_partitions_and_configs(
    kafka: KafkaUnderTest, topic_prefix: str
) -> None:
    admin = kafka.admin()
    metadata = admin.list_topics(timeout=10).topics
    for spec in TOPICS:
        assert len(metadata[topic_prefix + spec.name].partitions) == spec.local_partitions
    resource = ConfigResource(ResourceType.TOPIC, topic_prefix + VIDEO_FRAMES.name)
    configs = admin.describe_configs([resource])[resource].result(10)
    for key, value in VIDEO_FRAMES.config.items():
        assert configs[key].value == value, key


def test_a_started_broker_stops_without_leaving_a_process_or_port(
    tmp_path: Path, services: ServiceGroup
) -> None:
    broker = LocalKafka.on_ports(tmp_path, services.ports(2)).start()
    node = broker.nodes[0]
    assert broker.running() == [1]
    with pytest.raises(BrokerError, match="still running"):
        LocalKafka(tmp_path, ports=[node.port], controller_ports=[node.controller_port]).start()
    broker.stop()
    assert broker.running() == []
    assert not port_in_use(node.port)
    assert not port_in_use(node.controller_port)
    # Re-starting reuses the formatted storage and keeps the cluster id.
    cluster_id = (tmp_path / "cluster.id").read_text()
    with broker:
        assert broker.running() == [1]
    assert (tmp_path / "cluster.id").read_text() == cluster_id


def test_a_taken_port_gives_a_clear_error(
    tmp_path: Path, kafka: KafkaUnderTest, services: ServiceGroup
) -> None:
    taken = int(kafka.bootstrap.split(",")[0].rsplit(":", 1)[1])
    with pytest.raises(BrokerError, match=f"port {taken} .* already in use"):
        LocalKafka(tmp_path, ports=[taken], controller_ports=[services.port()]).start()


def test_three_node_cluster_keeps_accepting_writes_when_a_node_dies(
    tmp_path: Path, services: ServiceGroup
) -> None:
    with LocalKafka.on_ports(tmp_path, services.ports(6), nodes=3) as cluster:
        cluster.create_topics()
        partitions = (
            admin_client({"bootstrap.servers": cluster.bootstrap})
            .list_topics(timeout=10)
            .topics[VIDEO_FRAMES.name]
            .partitions
        )
        assert all(len(p.replicas) == 3 for p in partitions.values())
        cluster.stop_node(3, kill=True)
        producer = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all"})
        failures = []
        for i in range(30):
            producer.produce(
                VIDEO_FRAMES.name,
                b"x",
                key=f"k{i}",
                on_delivery=lambda err, _msg: failures.append(err) if err else None,
            )
        assert producer.flush(30) == 0
        assert failures == []
        cluster.start_node(3)
        cluster.wait_ready(60)
    assert cluster.running() == []


def test_run_command_brings_up_topics_and_ctrl_c_stops_everything(
    tmp_path: Path, services: ServiceGroup
) -> None:
    spec, ports = launch_stack(tmp_path, services.ports, "--no-services")
    port = ports["kafka_port"]
    run = services.start(spec.with_env({"VIDEO_RETENTION_MINUTES": "45"}))
    run.wait_line("Ctrl-C stops everything", timeout=120)
    admin = admin_client({"bootstrap.servers": f"127.0.0.1:{port}"})
    topics = admin.list_topics(timeout=10)
    assert {t.name for t in TOPICS} <= set(topics.topics), run.log()
    frames = ConfigResource(ResourceType.TOPIC, VIDEO_FRAMES.name)
    retention = admin.describe_configs([frames])[frames].result(10)["retention.ms"].value
    assert retention == str(45 * 60_000)
    assert "video-frames keeps 45 minutes of video" in run.log(None)
    run.signal(signal.SIGINT)
    assert run.wait_exit(60) == 0, run.log()
    rest = run.log(None)
    assert "stopping services" in rest
    assert rest.index("stopping services") < rest.index("stopping Kafka")
    assert not port_in_use(port)
    assert not port_in_use(port + 1)
    assert LocalKafka(tmp_path / "kafka", port=port).running() == []


def test_an_independent_client_sees_the_topics(kafka: KafkaUnderTest, topic_prefix: str) -> None:
    """kcat (librdkafka's CLI, not our code) lists the contract topics and partitions."""
    kcat = shutil.which("kcat")
    assert kcat, "kcat is missing: run `make system-deps` (CI installs it)"
    out = subprocess.run(
        [kcat, "-L", "-J", "-b", kafka.bootstrap], capture_output=True, text=True, check=True
    ).stdout
    partitions = {t["topic"]: len(t["partitions"]) for t in json.loads(out)["topics"]}
    for spec in TOPICS:
        assert partitions[topic_prefix + spec.name] == spec.local_partitions
