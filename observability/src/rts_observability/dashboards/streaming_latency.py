"""Streaming latency: how fast frames and events travel, and what viewers receive."""

from __future__ import annotations

from rts_observability.dashboards.common import (
    CLOCK_NOTE,
    FPS,
    LINKS,
    NAMESPACE,
    NS,
    PER_SECOND,
    quantiles,
    rate,
    stat,
)
from rts_observability.grafana import Dashboard, Panel, Query, Row, Variable

CAM = f'{NS}, camera=~"$camera"'
LATENCY_STEPS = ((None, "green"), (0.5, "orange"), (1.0, "red"))


def dashboard() -> Dashboard:
    camera = Variable(
        "camera", "Camera", f"label_values(capture_frames_total{{{NS}}}, camera)", multi=True
    )
    return Dashboard(
        uid="rts-streaming-latency",
        title="Streaming latency",
        description="Capture to viewer frame latency, event to dashboard latency, frame "
        "rates, skipped and dropped frames, viewers and Socket.IO clients.",
        variables=(NAMESPACE, camera),
        links=LINKS,
        rows=(_now(), _frames(), _frame_rates(), _events(), _viewers()),
    )


def _now() -> Row:
    frame_p99 = quantiles("gateway_frame_latency_seconds", CAM, qs=(0.99,))[0].expr
    event_p99 = quantiles("gateway_event_latency_seconds", NS, qs=(0.99,))[0].expr
    replicas = f"count(count by (pod) (gateway_event_loop_lag_seconds_count{{{NS}}}))"
    return Row(
        "Now",
        (
            stat("Frame latency p99", frame_p99,
                 "Capture to viewer, all selected cameras. " + CLOCK_NOTE, "s", LATENCY_STEPS),
            stat("Event latency p99", event_p99,
                 "Playback event time to its emit on Socket.IO. " + CLOCK_NOTE, "s",
                 LATENCY_STEPS),
            stat("Cameras delivering", f"sum(capture_source_up{{{CAM}}})",
                 "Capture processes whose source delivers frames."),
            stat("MJPEG viewers", f"sum(gateway_mjpeg_viewers{{{CAM}}})",
                 "Open /stream connections, over every gateway replica."),
            stat("Socket.IO clients", f"sum(gateway_socketio_clients{{{NS}}})",
                 "Dashboard browsers connected, over every gateway replica."),
            stat("Gateway replicas", replicas, "Gateway pods Prometheus scrapes."),
        ),
    )  # fmt: skip


def _frames() -> Row:
    return Row(
        "Frames: capture → Kafka → gateway → viewer",
        (
            Panel(
                "Frame latency per camera (capture → viewer)",
                quantiles("gateway_frame_latency_seconds", CAM, by=("camera",)),
                unit="s",
                description="From the capture time in the frame's `ts` header to the frame "
                "written to a viewer's socket, p50/p95/p99 per camera. " + CLOCK_NOTE,
            ),
            Panel(
                "Frame latency distribution",
                [
                    Query(
                        "sum by (le) (increase(gateway_frame_latency_seconds_bucket"
                        f"{{{CAM}}}[$__rate_interval]))",
                        "{{le}}",
                        heatmap=True,
                    )
                ],
                unit="s",
                kind="heatmap",
                description="Frames written to viewers per latency bucket, all selected "
                "cameras: a second mode or a long tail shows here before p99 moves. " + CLOCK_NOTE,
            ),
            Panel(
                "Capture → Kafka acknowledgement per camera",
                quantiles("capture_delivery_seconds", CAM, by=("camera",), qs=(0.5, 0.99)),
                unit="s",
                description="From the capture time to the broker's acknowledgement of the "
                "frame, measured by the capture process. Both ends use the capture host's "
                "clock, so this part needs no clock synchronization; the rest of the frame "
                "latency is Kafka to the gateway and the viewer.",
            ),
        ),
    )


def _frame_rates() -> Row:
    return Row(
        "Frame rates",
        (
            Panel(
                "Captured vs delivered fps per camera",
                [
                    Query(
                        f"sum by (camera) ({rate(f'capture_frames_total{{{CAM}}}')})",
                        "{{camera}} captured",
                    ),
                    Query(
                        f"sum by (camera) ({rate(f'gateway_frames_sent_total{{{CAM}}}')}) "
                        f"/ sum by (camera) (gateway_mjpeg_viewers{{{CAM}}} > 0)",
                        "{{camera}} delivered per viewer",
                    ),
                ],
                unit=FPS,
                description="Frames the capture process sent to Kafka, and frames each "
                "MJPEG viewer received on average. A viewer below the captured rate is "
                "slow (skipped frames) or capped by `?fps=`.",
            ),
            Panel(
                "Skipped frames per camera (gateway)",
                [
                    Query(
                        "sum by (camera, reason) "
                        f"({rate(f'gateway_frames_skipped_total{{{CAM}}}')})",
                        "{{camera}} {{reason}}",
                    )
                ],
                unit=FPS,
                width=6,
                description="Frames a viewer did not get: slow_client (a newer frame "
                "replaced it before the viewer took it), fps_cap (the viewer asked for "
                "fewer). Each viewer holds at most one frame, so a slow one skips.",
            ),
            Panel(
                "Dropped frames per camera (capture)",
                [
                    Query(
                        "sum by (camera, reason) "
                        f"({rate(f'capture_frames_dropped_total{{{CAM}}}')})",
                        "{{camera}} {{reason}}",
                    )
                ],
                unit=FPS,
                width=6,
                description="Frames captured and never sent to Kafka: behind (encoding "
                "could not keep up), queue_full (the producer's queue), too_large, "
                "encode_error, produce_error.",
            ),
        ),
    )


def _events() -> Row:
    return Row(
        "Playback events: event-sim → Kafka → gateway → Socket.IO",
        (
            Panel(
                "Event latency (event time → emitted to Socket.IO)",
                quantiles("gateway_event_latency_seconds", NS),
                unit="s",
                description="From a playback event's `ts` to the gateway emitting it as "
                "`new_event`, p50/p95/p99 (the events sampled for emission). " + CLOCK_NOTE,
            ),
            Panel(
                "Events per second: produced, consumed, emitted",
                [
                    Query(
                        f"sum({rate(f'eventsim_events_total{{{NS}}}')})",
                        "produced (event-sim, acknowledged)",
                    ),
                    Query(
                        f"sum({rate(f'gateway_playback_events_total{{{NS}}}')})",
                        "consumed (gateway)",
                    ),
                    Query(
                        f"sum({rate(f'gateway_events_emitted_total{{{NS}}}')})",
                        "emitted one by one (sample)",
                    ),
                ],
                unit=PER_SECOND,
                description="Consumed below produced for long means the gateway's "
                "consumer group falls behind (see the consumer lag). Emission is a sample "
                "(GATEWAY_EVENT_SAMPLE_RATE per replica); every event feeds the aggregates.",
            ),
        ),
    )


def _viewers() -> Row:
    return Row(
        "Viewers",
        (
            Panel(
                "MJPEG viewers per camera",
                [Query(f"sum by (camera) (gateway_mjpeg_viewers{{{CAM}}})", "{{camera}}")],
                stacked=True,
                description="Open /stream connections per camera, over every replica.",
            ),
            Panel(
                "Socket.IO clients per replica",
                [Query(f"sum by (pod) (gateway_socketio_clients{{{NS}}})", "{{pod}}")],
                stacked=True,
                description="Dashboard browsers per gateway replica (sticky sessions keep "
                "a browser on one replica).",
            ),
        ),
    )
