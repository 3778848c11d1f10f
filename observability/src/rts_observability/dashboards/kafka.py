"""Kafka: broker and topic throughput, partition health, and the gateway's consumer lag.

Broker series come from Prometheus's JMX exporter with helm/streaming/files/kafka-metrics.yaml
(Strimzi's metricsConfig in the cluster, the same agent on the local broker). Consumer
lag is the gateway's own measurement per partition it owns (gateway_consumer_lag):
kafka-exporter's kafka_consumergroup_lag would be the broker-side view, but no build of
it can be had where the dashboards are tested, and a panel nothing proves is not
shipped.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import Dashboard
from grafana_foundation_sdk.builders.prometheus import Dataquery

from rts_observability.dashboards.common import NS, PER_SECOND, namespace_variable, rate
from rts_observability.dashboards.panels import (
    Row,
    graph,
    platform_dashboard,
    query,
    stacked_graph,
    stat_panel,
)

# Per-topic series, without Kafka's internal topics (__consumer_offsets and the like).
TOPICS = f'{NS}, topic=~"[^_].*"'
# The broker-wide series of a BrokerTopicMetrics meter are the ones without a topic.
BROKER = f'{NS}, topic=""'
# JVM series of broker pods only (operators and other JVMs may share the namespace).
BROKER_POD = f"on (namespace, pod) kafka_server_replicamanager_leadercount{{{NS}}}"


def _per_topic(meter: str) -> Dataquery:
    metric = f"kafka_server_brokertopicmetrics_{meter}_total"
    return query(f"sum by (topic) ({rate(f'{metric}{{{TOPICS}}}')})", "{{topic}}")


def _per_broker(meter: str, what: str) -> Dataquery:
    metric = f"kafka_server_brokertopicmetrics_{meter}_total"
    return query(f"sum by (pod) ({rate(f'{metric}{{{BROKER}}}')})", f"{{{{pod}}}} {what}")


def dashboard() -> Dashboard:
    return platform_dashboard(
        "rts-kafka",
        "Kafka",
        "Broker and topic throughput, partition health and request time from the brokers' "
        "JMX exporter; consumer lag of the gateway's consumer groups.",
        variables=(namespace_variable(),),
        rows=(_now(), _topics(), _brokers(), _consumers()),
    )


def _now() -> Row:
    bad = ((None, "green"), (1, "red"))
    messages_in = rate(f"kafka_server_brokertopicmetrics_messagesin_total{{{BROKER}}}")
    return (
        "Now",
        [
            stat_panel(
                "Brokers",
                f"count(kafka_server_replicamanager_leadercount{{{NS}}})",
                "Broker nodes exporting metrics.",
            ),
            stat_panel(
                "Active controllers",
                f"sum(kafka_controller_kafkacontroller_activecontrollercount{{{NS}}})",
                "Exactly one in a healthy KRaft quorum.",
                steps=((None, "red"), (1, "green"), (2, "red")),
            ),
            stat_panel(
                "Under-replicated partitions",
                f"sum(kafka_server_replicamanager_underreplicatedpartitions{{{NS}}})",
                "Partitions with fewer in-sync replicas than replicas, summed over their leaders.",
                steps=bad,
            ),
            stat_panel(
                "Offline partitions",
                f"max(kafka_controller_kafkacontroller_offlinepartitionscount{{{NS}}})",
                "Partitions without a leader: nobody can produce to or consume from them.",
                steps=bad,
            ),
            stat_panel(
                "Messages in",
                f"sum({messages_in})",
                "Records appended per second, all topics.",
                PER_SECOND,
            ),
            stat_panel(
                "Consumer lag",
                f"sum(gateway_consumer_lag{{{NS}}})",
                "Records the gateway's consumer groups are behind, over all partitions.",
                steps=((None, "green"), (1000, "orange"), (10000, "red")),
            ),
        ],
    )


def _topics() -> Row:
    return (
        "Topics",
        [
            stacked_graph("Messages in per topic", _per_topic("messagesin")).unit(PER_SECOND),
            stacked_graph("Bytes in per topic", _per_topic("bytesin"))
            .unit("Bps")
            .description("What producers write: video-frames dominates (JPEG frames)."),
            stacked_graph("Bytes out per topic", _per_topic("bytesout"))
            .unit("Bps")
            .description(
                "What consumers read (replication to followers not included). video-frames "
                "is read only while someone watches."
            ),
            stacked_graph(
                "Log size per topic",
                query(f"sum by (topic) (kafka_log_log_size{{{TOPICS}}})", "{{topic}}"),
            )
            .unit("bytes")
            .description(
                "Bytes on disk over all partitions and replicas. Frames keep minutes of "
                "retention, events longer."
            ),
        ],
    )


def _brokers() -> Row:
    idle = [
        query(f"clamp_max(avg by (pod) ({metric}{{{NS}}}), 1)", f"{{{{pod}}}} {what}")
        for metric, what in (
            ("kafka_server_kafkarequesthandlerpool_requesthandleravgidle_percent", "handlers"),
            ("kafka_network_socketserver_networkprocessoravgidle_percent", "network threads"),
        )
    ]
    produce_time = [
        query(
            f"max by (pod) (kafka_network_requestmetrics_totaltimems{{{NS}, "
            f'request="Produce", quantile="{q}"}})',
            f"{{{{pod}}}} p{q[2:]}",
        )
        for q in ("0.50", "0.99")
    ]
    isr_changes = [
        query(
            f"sum by (pod) ({rate(f'kafka_server_replicamanager_{m}_total{{{NS}}}')})",
            f"{{{{pod}}}} {m}",
        )
        for m in ("isrshrinks", "isrexpands")
    ]
    return (
        "Brokers",
        [
            graph(
                "Bytes in / out per broker",
                _per_broker("bytesin", "in"),
                _per_broker("bytesout", "out"),
            )
            .unit("Bps")
            .span(8),
            graph(
                "Requests per broker",
                _per_broker("totalproducerequests", "produce"),
                _per_broker("totalfetchrequests", "fetch"),
            )
            .unit(PER_SECOND)
            .span(8),
            graph("Produce request time per broker", *produce_time)
            .unit("ms")
            .span(8)
            .description(
                "Time a produce request spends in the broker: queued, appended, waiting for "
                "the in-sync replicas (acks=all), answered. The broker's own percentiles over "
                "its recent requests; one host's clock."
            ),
            graph(
                "Partitions and leaders per broker",
                query(
                    f"sum by (pod) (kafka_server_replicamanager_partitioncount{{{NS}}})",
                    "{{pod}} partitions",
                ),
                query(
                    f"sum by (pod) (kafka_server_replicamanager_leadercount{{{NS}}})",
                    "{{pod}} leaders",
                ),
            ).span(8),
            graph("Idle capacity per broker", *idle)
            .unit("percentunit")
            .span(8)
            .description(
                "Share of time the request handler and network threads are idle: below 0.3 "
                "the broker is close to saturation."
            ),
            graph("ISR shrinks and expands per broker", *isr_changes)
            .unit(PER_SECOND)
            .span(8)
            .description(
                "Replicas falling out of and back into sync: flapping means slow followers "
                "or an overloaded broker."
            ),
            graph(
                "Broker JVM heap used",
                query(
                    f'sum by (pod) (jvm_memory_used_bytes{{{NS}, area="heap"}} and {BROKER_POD})',
                    "{{pod}}",
                ),
            ).unit("bytes"),
            graph(
                "Broker GC time",
                query(
                    f"sum by (pod) ({rate(f'jvm_gc_collection_seconds_sum{{{NS}}}')} "
                    f"and {BROKER_POD})",
                    "{{pod}}",
                ),
            )
            .unit("percentunit")
            .description("Share of time the broker's JVM spends in garbage collection."),
        ],
    )


def _consumers() -> Row:
    return (
        "Consumer lag (the gateway's consumer groups)",
        [
            graph(
                "Consumer lag per topic",
                query(f"sum by (topic) (gateway_consumer_lag{{{NS}}})", "{{topic}}"),
            ).description(
                "Records behind the end of the partitions the gateway's consumer groups own "
                "(playback-events, video-detections), as the owning replicas measure it once "
                "a second."
            ),
            graph(
                "Consumer lag per partition",
                query(
                    f"max by (topic, partition) (gateway_consumer_lag{{{NS}}})",
                    "{{topic}}[{{partition}}]",
                ),
            ),
        ],
    )
