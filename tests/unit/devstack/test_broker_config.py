from pathlib import Path

import pytest
from rts_devstack.broker import LocalKafka
from rts_devstack.broker_config import KAFKA_METRICS_RULES
from rts_devstack.distribution import BrokerError, KafkaDistribution, repo_root


def _fake_dist(tmp_path: Path) -> KafkaDistribution:
    return KafkaDistribution(
        "4.3.1", tmp_path / "libs", tmp_path / "log4j2.properties", tmp_path / "agents"
    )


def _props(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines())


def test_single_node_uses_the_next_port_for_its_controller(tmp_path: Path) -> None:
    kafka = LocalKafka(tmp_path, port=9092, dist=_fake_dist(tmp_path))
    assert kafka.bootstrap == "127.0.0.1:9092"
    kafka.nodes[0].data_dir.mkdir(parents=True)
    kafka.write_properties(kafka.nodes[0])
    props = _props(kafka.nodes[0].properties_file)
    assert props["controller.quorum.voters"] == "1@127.0.0.1:9093"
    assert props["process.roles"] == "broker,controller"
    assert props["offsets.topic.replication.factor"] == "1"
    assert props["auto.create.topics.enable"] == "false"
    # Its only broker is never fenced for a few seconds of a starved CPU.
    assert props["broker.session.timeout.ms"] == "9000"


def test_three_nodes_form_one_quorum_with_replicated_internal_topics(tmp_path: Path) -> None:
    kafka = LocalKafka(tmp_path, nodes=3, port=19092, dist=_fake_dist(tmp_path))
    assert kafka.bootstrap == "127.0.0.1:19092,127.0.0.1:19094,127.0.0.1:19096"
    for node in kafka.nodes:
        node.data_dir.mkdir(parents=True)
        kafka.write_properties(node)
    voters = {_props(n.properties_file)["controller.quorum.voters"] for n in kafka.nodes}
    assert voters == {"1@127.0.0.1:19093,2@127.0.0.1:19095,3@127.0.0.1:19097"}
    props = _props(kafka.nodes[2].properties_file)
    assert props["node.id"] == "3"
    assert props["min.insync.replicas"] == "2"
    assert props["offsets.topic.replication.factor"] == "3"
    assert props["log.dirs"] == str(tmp_path / "node-3" / "logs")
    assert props["broker.session.timeout.ms"] == "3000"  # a dead node noticed in seconds


def test_cluster_id_is_kafka_shaped_and_stable(tmp_path: Path) -> None:
    kafka = LocalKafka(tmp_path, dist=_fake_dist(tmp_path))
    first = kafka.cluster_id()
    assert len(first) == 22
    assert not first.startswith("-")
    assert kafka.cluster_id() == first


def test_mismatched_port_lists_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="one client port"):
        LocalKafka(tmp_path, nodes=2, ports=[1])
    with pytest.raises(ValueError, match="one metrics port"):
        LocalKafka(tmp_path, nodes=2, metrics_ports=[9404])


def test_each_node_runs_the_jmx_exporter_with_the_charts_rules_on_its_metrics_port(
    tmp_path: Path,
) -> None:
    dist = _fake_dist(tmp_path)
    dist.agents.mkdir()
    (dist.agents / "jmx_prometheus_javaagent-1.0.1.jar").touch()
    kafka = LocalKafka(tmp_path, nodes=2, port=19092, metrics_ports=[19404, 19405], dist=dist)
    assert kafka.metrics_targets == ["127.0.0.1:19404", "127.0.0.1:19405"]
    rules = repo_root() / KAFKA_METRICS_RULES
    assert rules.is_file()
    agent = dist.agents / "jmx_prometheus_javaagent-1.0.1.jar"
    assert kafka.jvm_options(kafka.node(2), dist) == [f"-javaagent:{agent}=127.0.0.1:19405:{rules}"]
    assert LocalKafka(tmp_path, dist=dist).jvm_options(kafka.node(1), dist) == []


def test_a_missing_jmx_agent_says_how_to_fetch_it(tmp_path: Path) -> None:
    with pytest.raises(BrokerError, match="make kafka-fetch"):
        _ = _fake_dist(tmp_path).jmx_exporter
