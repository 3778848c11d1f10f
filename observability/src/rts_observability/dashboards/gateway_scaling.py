"""Gateway scaling: replicas, who owns which partition, lag, rebalances, load per replica.

Made to watch `kubectl scale deployment/...-gateway --replicas=N`: the replica count
and the partitions per replica change at the next scrape, the rebalances show when the
consumer group moved partitions, and the lag shows whether the new owners caught up.
"""

from __future__ import annotations

from rts_observability.dashboards.common import (
    FPS,
    LINKS,
    NAMESPACE,
    NS,
    PER_SECOND,
    quantiles,
    rate,
    stat,
    zero_when_absent,
)
from rts_observability.grafana import Dashboard, Panel, Query, Row

# Every replica observes its event loop ten times a second: the surest sign it is up.
REPLICA = f"gateway_event_loop_lag_seconds_count{{{NS}}}"
GROUP_TOPICS = 'topic=~"(.*[.])?(playback-events|video-detections)"'


def dashboard() -> Dashboard:
    return Dashboard(
        uid="rts-gateway-scaling",
        title="Gateway scaling",
        description="Gateway replicas, partitions per replica, consumer lag per partition, "
        "rebalances and throughput per replica: watch a `kubectl scale` take effect.",
        variables=(NAMESPACE,),
        links=LINKS,
        refresh="5s",
        time_from="now-15m",
        rows=(_now(), _partitions(), _throughput(), _health()),
    )


def _now() -> Row:
    owned = f'sum(gateway_partitions_assigned{{{NS}, topic=~"(.*[.])?playback-events"}})'
    return Row(
        "Now",
        (
            stat("Replicas", f"count(count by (pod) ({REPLICA}))",
                 "Gateway pods Prometheus scrapes (one gunicorn worker each).", width=6),
            stat("Playback-events partitions owned", owned,
                 "Partitions of playback-events the consumer group has assigned, over all "
                 "replicas: the topic's partition count when the group is settled. Replicas "
                 "beyond it idle.", width=6),
            stat("Consumer lag", f"sum(gateway_consumer_lag{{{NS}}})",
                 "Records behind the end of every partition the replicas own.",
                 thresholds=((None, "green"), (1000, "orange"), (10000, "red")), width=6),
            stat("Rebalances in the last hour",
                 f"sum(increase(gateway_rebalances_total{{{NS}}}[1h]))",
                 "Partition assignments, revocations and losses over all replicas: each "
                 "scale up or down causes a few.", width=6),
        ),
    )  # fmt: skip


def _partitions() -> Row:
    return Row(
        "Partitions and lag",
        (
            Panel(
                "Partitions per replica",
                [
                    Query(
                        f"sum by (pod, topic) (gateway_partitions_assigned{{{NS}, "
                        f"{GROUP_TOPICS}}})",
                        "{{pod}} {{topic}}",
                    )
                ],
                stacked=True,
                description="Consumer-group partitions each replica owns (cooperative-sticky "
                "assignment). After a scale the group hands partitions over within a "
                "rebalance; the total stays the topic's partition count.",
            ),
            Panel(
                "Consumer lag per partition (owner in the legend)",
                [
                    Query(
                        f"max by (topic, partition, pod) (gateway_consumer_lag{{{NS}}})",
                        "{{topic}}[{{partition}}] on {{pod}}",
                    )
                ],
                description="Records behind the partition's end, measured by the replica "
                "that owns it, once a second. A partition changing owner ends one series "
                "and starts another.",
            ),
            Panel(
                "Rebalances per replica",
                [
                    Query(
                        "sum by (pod, kind) "
                        f"(increase(gateway_rebalances_total{{{NS}}}[$__rate_interval]))",
                        "{{pod}} {{kind}}",
                    )
                ],
                decimals=0,
                description="Consumer-group changes seen by each replica: assigned, revoked, "
                "lost (the group gave its partitions away after a missed heartbeat).",
            ),
            Panel(
                "Cameras read per replica",
                [Query(f"sum by (pod) (gateway_camera_reads{{{NS}}})", "{{pod}}")],
                description="Cameras each replica reads from Kafka right now: only those its "
                "own viewers watch (fan-out on demand, no consumer group for video).",
            ),
        ),
    )


def _throughput() -> Row:
    return Row(
        "Throughput per replica",
        (
            Panel(
                "Playback events consumed per replica",
                [
                    Query(
                        f"sum by (pod) ({rate(f'gateway_playback_events_total{{{NS}}}')})",
                        "{{pod}}",
                    )
                ],
                unit=PER_SECOND,
                stacked=True,
                description="Valid events each replica processed from its partitions.",
            ),
            Panel(
                "Frames sent to viewers per replica",
                [
                    Query(
                        f"sum by (pod) ({rate(f'gateway_frames_sent_total{{{NS}}}')})",
                        "{{pod}}",
                    )
                ],
                unit=FPS,
                stacked=True,
                description="MJPEG frames written, over all of a replica's viewers.",
            ),
            Panel(
                "Video bytes sent per replica",
                [
                    Query(
                        f"sum by (pod) ({rate(f'gateway_frame_bytes_sent_total{{{NS}}}')})",
                        "{{pod}}",
                    )
                ],
                unit="Bps",
                stacked=True,
            ),
            Panel(
                "Connections per replica",
                [
                    Query(f"sum by (pod) (gateway_socketio_clients{{{NS}}})", "{{pod}} Socket.IO"),
                    Query(f"sum by (pod) (gateway_mjpeg_viewers{{{NS}}})", "{{pod}} MJPEG"),
                ],
                description="Socket.IO clients and MJPEG viewers each replica serves.",
            ),
        ),
    )


def _health() -> Row:
    errors = [
        Query(
            zero_when_absent(f"sum by (pod) ({rate(f'{metric}{{{NS}}}')})", "pod", REPLICA),
            f"{{{{pod}}}} {what}",
        )
        for metric, what in (
            ("gateway_kafka_errors_total", "Kafka client errors"),
            ("gateway_bad_messages_total", "bad records"),
        )
    ]
    return Row(
        "Replica health",
        (
            Panel(
                "Event loop lag p99 per replica",
                quantiles("gateway_event_loop_lag_seconds", NS, by=("pod",), qs=(0.99,)),
                unit="s",
                width=8,
                description="How late the app's 100 ms timer fires: how long something "
                "blocked every green thread (eventlet) or starved the dispatcher. Measured "
                "on one host: no clock synchronization involved.",
            ),
            Panel(
                "CPU per replica",
                [
                    Query(
                        f"sum by (pod) ({rate(f'process_cpu_seconds_total{{{NS}}}')} "
                        f"and on (namespace, pod) {REPLICA})",
                        "{{pod}}",
                    )
                ],
                unit="suffix: cores",
                width=8,
                description="CPU seconds per second of the gunicorn worker.",
            ),
            Panel(
                "Memory per replica",
                [
                    Query(
                        f"sum by (pod) (process_resident_memory_bytes{{{NS}}} "
                        f"and on (namespace, pod) {REPLICA})",
                        "{{pod}}",
                    )
                ],
                unit="bytes",
                width=8,
            ),
            Panel(
                "Kafka errors and bad records per replica",
                errors,
                unit=PER_SECOND,
                width=8,
                description="Errors the Kafka client reported and records skipped for "
                "breaking their topic's contract (the gateway logs which).",
            ),
            Panel(
                "Broadcast messages published per replica",
                [
                    Query(
                        f"sum by (pod) ({rate(f'gateway_broadcast_published_total{{{NS}}}')})",
                        "{{pod}}",
                    )
                ],
                unit=PER_SECOND,
                width=8,
                description="Socket.IO emits a replica publishes on dashboard-broadcast so "
                "that every replica's browsers receive them.",
            ),
            Panel(
                "Dispatch backlog per replica",
                [Query(f"max by (pod) (gateway_dispatch_backlog{{{NS}}})", "{{pod}}")],
                width=8,
                description="Kafka batches handed from the consumer threads and not yet "
                "processed by the server's loop: growing means the loop cannot keep up.",
            ),
        ),
    )
