"""Kafka: broker and topic throughput, partition health, and the gateway's consumer lag.

Broker series come from Prometheus's JMX exporter with helm/streaming/files/kafka-metrics.yaml
(Strimzi's metricsConfig in the cluster, the same agent on the local broker). Consumer
lag is the gateway's own measurement per partition it owns (gateway_consumer_lag):
kafka-exporter's kafka_consumergroup_lag would be the broker-side view, but no build of
it can be had where the dashboards are tested, and a panel nothing proves is not
shipped.
"""

from __future__ import annotations

from rts_observability.dashboards.common import LINKS, NAMESPACE, NS, PER_SECOND, rate, stat
from rts_observability.grafana import Dashboard, Panel, Query, Row

# Per-topic series, without Kafka's internal topics (__consumer_offsets and the like).
TOPICS = f'{NS}, topic=~"[^_].*"'
# The broker-wide series of a BrokerTopicMetrics meter are the ones without a topic.
BROKER = f'{NS}, topic=""'
# JVM series of broker pods only (operators and other JVMs may share the namespace).
BROKER_POD = f"on (namespace, pod) kafka_server_replicamanager_leadercount{{{NS}}}"


def _per_topic(meter: str) -> Query:
    metric = f"kafka_server_brokertopicmetrics_{meter}_total"
    return Query(f"sum by (topic) ({rate(f'{metric}{{{TOPICS}}}')})", "{{topic}}")


def _per_broker(meter: str, what: str) -> Query:
    metric = f"kafka_server_brokertopicmetrics_{meter}_total"
    return Query(f"sum by (pod) ({rate(f'{metric}{{{BROKER}}}')})", f"{{{{pod}}}} {what}")


def dashboard() -> Dashboard:
    return Dashboard(
        uid="rts-kafka",
        title="Kafka",
        description="Broker and topic throughput, partition health and request time from "
        "the brokers' JMX exporter; consumer lag of the gateway's consumer groups.",
        variables=(NAMESPACE,),
        links=LINKS,
        rows=(_now(), _topics(), _brokers(), _consumers()),
    )


def _now() -> Row:
    bad = ((None, "green"), (1, "red"))
    messages_in = rate(f"kafka_server_brokertopicmetrics_messagesin_total{{{BROKER}}}")
    return Row(
        "Now",
        (
            stat("Brokers", f"count(kafka_server_replicamanager_leadercount{{{NS}}})",
                 "Broker nodes exporting metrics."),
            stat("Active controllers",
                 f"sum(kafka_controller_kafkacontroller_activecontrollercount{{{NS}}})",
                 "Exactly one in a healthy KRaft quorum.",
                 thresholds=((None, "red"), (1, "green"), (2, "red"))),
            stat("Under-replicated partitions",
                 f"sum(kafka_server_replicamanager_underreplicatedpartitions{{{NS}}})",
                 "Partitions with fewer in-sync replicas than replicas, summed over their "
                 "leaders.", thresholds=bad),
            stat("Offline partitions",
                 f"max(kafka_controller_kafkacontroller_offlinepartitionscount{{{NS}}})",
                 "Partitions without a leader: nobody can produce to or consume from them.",
                 thresholds=bad),
            stat("Messages in", f"sum({messages_in})",
                 "Records appended per second, all topics.", PER_SECOND),
            stat("Consumer lag", f"sum(gateway_consumer_lag{{{NS}}})",
                 "Records the gateway's consumer groups are behind, over all partitions.",
                 thresholds=((None, "green"), (1000, "orange"), (10000, "red"))),
        ),
    )  # fmt: skip


def _topics() -> Row:
    return Row(
        "Topics",
        (
            Panel("Messages in per topic", [_per_topic("messagesin")], unit=PER_SECOND,
                  stacked=True),
            Panel("Bytes in per topic", [_per_topic("bytesin")], unit="Bps", stacked=True,
                  description="What producers write: video-frames dominates (JPEG frames)."),
            Panel("Bytes out per topic", [_per_topic("bytesout")], unit="Bps", stacked=True,
                  description="What consumers read (replication to followers not "
                  "included). video-frames is read only while someone watches."),
            Panel("Log size per topic",
                  [Query(f"sum by (topic) (kafka_log_log_size{{{TOPICS}}})", "{{topic}}")],
                  unit="bytes", stacked=True,
                  description="Bytes on disk over all partitions and replicas. Frames "
                  "keep minutes of retention, events longer."),
        ),
    )  # fmt: skip


def _brokers() -> Row:
    idle = [
        Query(
            f"clamp_max(avg by (pod) ({metric}{{{NS}}}), 1)",
            f"{{{{pod}}}} {what}",
        )
        for metric, what in (
            ("kafka_server_kafkarequesthandlerpool_requesthandleravgidle_percent", "handlers"),
            ("kafka_network_socketserver_networkprocessoravgidle_percent", "network threads"),
        )
    ]
    return Row(
        "Brokers",
        (
            Panel(
                "Bytes in / out per broker",
                [_per_broker("bytesin", "in"), _per_broker("bytesout", "out")],
                unit="Bps",
                width=8,
            ),
            Panel(
                "Requests per broker",
                [
                    _per_broker("totalproducerequests", "produce"),
                    _per_broker("totalfetchrequests", "fetch"),
                ],
                unit=PER_SECOND,
                width=8,
            ),
            Panel(
                "Produce request time per broker",
                [
                    Query(
                        f"max by (pod) (kafka_network_requestmetrics_totaltimems{{{NS}, "
                        f'request="Produce", quantile="{q}"}})',
                        f"{{{{pod}}}} p{q[2:]}",
                    )
                    for q in ("0.50", "0.99")
                ],
                unit="ms",
                width=8,
                description="Time a produce request spends in the broker: queued, appended, "
                "waiting for the in-sync replicas (acks=all), answered. The broker's own "
                "percentiles over its recent requests; one host's clock.",
            ),
            Panel(
                "Partitions and leaders per broker",
                [
                    Query(
                        f"sum by (pod) (kafka_server_replicamanager_partitioncount{{{NS}}})",
                        "{{pod}} partitions",
                    ),
                    Query(
                        f"sum by (pod) (kafka_server_replicamanager_leadercount{{{NS}}})",
                        "{{pod}} leaders",
                    ),
                ],
                width=8,
            ),
            Panel(
                "Idle capacity per broker",
                idle,
                unit="percentunit",
                width=8,
                description="Share of time the request handler and network threads are idle: "
                "below 0.3 the broker is close to saturation.",
            ),
            Panel(
                "ISR shrinks and expands per broker",
                [
                    Query(
                        f"sum by (pod) ({rate(f'kafka_server_replicamanager_{m}_total{{{NS}}}')})",
                        f"{{{{pod}}}} {m}",
                    )
                    for m in ("isrshrinks", "isrexpands")
                ],
                unit=PER_SECOND,
                width=8,
                description="Replicas falling out of and back into sync: flapping means "
                "slow followers or an overloaded broker.",
            ),
            Panel(
                "Broker JVM heap used",
                [
                    Query(
                        f'sum by (pod) (jvm_memory_used_bytes{{{NS}, area="heap"}} '
                        f"and {BROKER_POD})",
                        "{{pod}}",
                    )
                ],
                unit="bytes",
            ),
            Panel(
                "Broker GC time",
                [
                    Query(
                        f"sum by (pod) ({rate(f'jvm_gc_collection_seconds_sum{{{NS}}}')} "
                        f"and {BROKER_POD})",
                        "{{pod}}",
                    )
                ],
                unit="percentunit",
                description="Share of time the broker's JVM spends in garbage collection.",
            ),
        ),
    )


def _consumers() -> Row:
    return Row(
        "Consumer lag (the gateway's consumer groups)",
        (
            Panel(
                "Consumer lag per topic",
                [Query(f"sum by (topic) (gateway_consumer_lag{{{NS}}})", "{{topic}}")],
                description="Records behind the end of the partitions the gateway's "
                "consumer groups own (playback-events, video-detections), as the owning "
                "replicas measure it once a second.",
            ),
            Panel(
                "Consumer lag per partition",
                [
                    Query(
                        f"max by (topic, partition) (gateway_consumer_lag{{{NS}}})",
                        "{{topic}}[{{partition}}]",
                    )
                ],
            ),
        ),
    )
