"""Gateway scaling: replicas, who owns which partition, lag, rebalances, load per replica.

Made to watch `kubectl scale deployment/...-gateway --replicas=N`: the replica count
and the partitions per replica change at the next scrape, the rebalances show when the
consumer group moved partitions, and the lag shows whether the new owners caught up.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import Dashboard

from rts_observability.dashboards.common import (
    FPS,
    NS,
    PER_SECOND,
    namespace_variable,
    quantiles,
    rate,
    zero_when_absent,
)
from rts_observability.dashboards.panels import (
    Row,
    graph,
    platform_dashboard,
    query,
    stacked_graph,
    stat_panel,
)

# Every replica observes its event loop ten times a second: the surest sign it is up.
REPLICA = f"gateway_event_loop_lag_seconds_count{{{NS}}}"
GROUP_TOPICS = 'topic=~"(.*[.])?(playback-events|video-detections)"'


def dashboard() -> Dashboard:
    return platform_dashboard(
        "rts-gateway-scaling",
        "Gateway scaling",
        "Gateway replicas, partitions per replica, consumer lag per partition, rebalances "
        "and throughput per replica: watch a `kubectl scale` take effect.",
        variables=(namespace_variable(),),
        refresh="5s",
        time_from="now-15m",
        rows=(_now(), _partitions(), _throughput(), _health()),
    )


def _now() -> Row:
    owned = f'sum(gateway_partitions_assigned{{{NS}, topic=~"(.*[.])?playback-events"}})'
    return (
        "Now",
        [
            stat_panel(
                "Replicas",
                f"count(count by (pod) ({REPLICA}))",
                "Gateway pods Prometheus scrapes (one gunicorn worker each).",
                width=6,
            ),
            stat_panel(
                "Playback-events partitions owned",
                owned,
                "Partitions of playback-events the consumer group has assigned, over "
                "all replicas: the topic's partition count when the group is settled. "
                "Replicas beyond it idle.",
                width=6,
            ),
            stat_panel(
                "Consumer lag",
                f"sum(gateway_consumer_lag{{{NS}}})",
                "Records behind the end of every partition the replicas own.",
                steps=((None, "green"), (1000, "orange"), (10000, "red")),
                width=6,
            ),
            stat_panel(
                "Rebalances in the last hour",
                f"sum(increase(gateway_rebalances_total{{{NS}}}[1h]))",
                "Partition assignments, revocations and losses over all replicas: "
                "each scale up or down causes a few.",
                width=6,
            ),
        ],
    )


def _partitions() -> Row:
    return (
        "Partitions and lag",
        [
            stacked_graph(
                "Partitions per replica",
                query(
                    f"sum by (pod, topic) (gateway_partitions_assigned{{{NS}, {GROUP_TOPICS}}})",
                    "{{pod}} {{topic}}",
                ),
            ).description(
                "Consumer-group partitions each replica owns (cooperative-sticky assignment). "
                "After a scale the group hands partitions over within a rebalance; the total "
                "stays the topic's partition count."
            ),
            graph(
                "Consumer lag per partition (owner in the legend)",
                query(
                    f"max by (topic, partition, pod) (gateway_consumer_lag{{{NS}}})",
                    "{{topic}}[{{partition}}] on {{pod}}",
                ),
            ).description(
                "Records behind the partition's end, measured by the replica that owns it, "
                "once a second. A partition changing owner ends one series and starts another."
            ),
            graph(
                "Rebalances per replica",
                query(
                    "sum by (pod, kind) "
                    f"(increase(gateway_rebalances_total{{{NS}}}[$__rate_interval]))",
                    "{{pod}} {{kind}}",
                ),
            )
            .decimals(0)
            .description(
                "Consumer-group changes seen by each replica: assigned, revoked, lost (the "
                "group gave its partitions away after a missed heartbeat)."
            ),
            graph(
                "Cameras read per replica",
                query(f"sum by (pod) (gateway_camera_reads{{{NS}}})", "{{pod}}"),
            ).description(
                "Cameras each replica reads from Kafka right now: only those its own viewers "
                "watch (fan-out on demand, no consumer group for video)."
            ),
        ],
    )


def _per_pod(metric: str) -> str:
    return f"sum by (pod) ({rate(f'{metric}{{{NS}}}')})"


def _throughput() -> Row:
    return (
        "Throughput per replica",
        [
            stacked_graph(
                "Playback events consumed per replica",
                query(_per_pod("gateway_playback_events_total"), "{{pod}}"),
            )
            .unit(PER_SECOND)
            .description("Valid events each replica processed from its partitions."),
            stacked_graph(
                "Frames sent to viewers per replica",
                query(_per_pod("gateway_frames_sent_total"), "{{pod}}"),
            )
            .unit(FPS)
            .description("MJPEG frames written, over all of a replica's viewers."),
            stacked_graph(
                "Video bytes sent per replica",
                query(_per_pod("gateway_frame_bytes_sent_total"), "{{pod}}"),
            ).unit("Bps"),
            graph(
                "Connections per replica",
                query(f"sum by (pod) (gateway_socketio_clients{{{NS}}})", "{{pod}} Socket.IO"),
                query(f"sum by (pod) (gateway_mjpeg_viewers{{{NS}}})", "{{pod}} MJPEG"),
            ).description("Socket.IO clients and MJPEG viewers each replica serves."),
        ],
    )


def _health() -> Row:
    errors = [
        query(zero_when_absent(_per_pod(metric), "pod", REPLICA), f"{{{{pod}}}} {what}")
        for metric, what in (
            ("gateway_kafka_errors_total", "Kafka client errors"),
            ("gateway_bad_messages_total", "bad records"),
        )
    ]
    return (
        "Replica health",
        [
            graph(
                "Event loop lag p99 per replica",
                *quantiles("gateway_event_loop_lag_seconds", NS, by=("pod",), qs=(0.99,)),
            )
            .unit("s")
            .span(8)
            .description(
                "How late the app's 100 ms timer fires: how long something blocked every "
                "green thread (eventlet) or starved the dispatcher. Measured on one host: no "
                "clock synchronization involved."
            ),
            graph(
                "CPU per replica",
                query(
                    f"sum by (pod) ({rate(f'process_cpu_seconds_total{{{NS}}}')} "
                    f"and on (namespace, pod) {REPLICA})",
                    "{{pod}}",
                ),
            )
            .unit("suffix: cores")
            .span(8)
            .description("CPU seconds per second of the gunicorn worker."),
            graph(
                "Memory per replica",
                query(
                    f"sum by (pod) (process_resident_memory_bytes{{{NS}}} "
                    f"and on (namespace, pod) {REPLICA})",
                    "{{pod}}",
                ),
            )
            .unit("bytes")
            .span(8),
            graph("Kafka errors and bad records per replica", *errors)
            .unit(PER_SECOND)
            .span(8)
            .description(
                "Errors the Kafka client reported and records skipped for breaking their "
                "topic's contract (the gateway logs which)."
            ),
            graph(
                "Broadcast messages published per replica",
                query(_per_pod("gateway_broadcast_published_total"), "{{pod}}"),
            )
            .unit(PER_SECOND)
            .span(8)
            .description(
                "Socket.IO emits a replica publishes on dashboard-broadcast so that every "
                "replica's browsers receive them."
            ),
            graph(
                "Dispatch backlog per replica",
                query(f"max by (pod) (gateway_dispatch_backlog{{{NS}}})", "{{pod}}"),
            )
            .span(8)
            .description(
                "Kafka batches handed from the consumer threads and not yet processed by the "
                "server's loop: growing means the loop cannot keep up."
            ),
        ],
    )
