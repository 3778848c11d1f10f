"""Streaming latency: how fast frames and events travel, and what viewers receive."""

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import Dashboard

from rts_observability.dashboards.common import (
    CLOCK_NOTE,
    FPS,
    NS,
    PER_SECOND,
    namespace_variable,
    quantile,
    quantiles,
    rate,
    zero_when_absent,
)
from rts_observability.dashboards.panels import (
    Row,
    graph,
    histogram_heatmap,
    platform_dashboard,
    query,
    query_variable,
    stacked_graph,
    stat_panel,
)

CAM = f'{NS}, camera=~"$camera"'
# People's viewers, without the latency probe's (it has a row of its own).
VIEWERS = f'{CAM}, viewer_kind!="probe"'
LATENCY_STEPS = ((None, "green"), (0.5, "orange"), (1.0, "red"))


def dashboard() -> Dashboard:
    camera = query_variable(
        "camera", "Camera", f"label_values(capture_frames_total{{{NS}}}, camera)", multi=True
    )
    return platform_dashboard(
        "rts-streaming-latency",
        "Streaming latency",
        "Capture to viewer frame latency, event to dashboard latency, frame rates, skipped "
        "and dropped frames, viewers and Socket.IO clients.",
        variables=(namespace_variable(), camera),
        rows=(_now(), _frames(), _probe(), _frame_rates(), _events(), _viewers()),
    )


def _now() -> Row:
    frame_p99 = quantile(0.99, "gateway_frame_latency_seconds", VIEWERS)
    event_p99 = quantile(0.99, "gateway_event_latency_seconds", NS)
    replicas = f"count(count by (pod) (gateway_event_loop_lag_seconds_count{{{NS}}}))"
    return (
        "Now",
        [
            stat_panel(
                "Frame latency p99",
                frame_p99,
                "Capture to viewer, all selected cameras. " + CLOCK_NOTE,
                "s",
                LATENCY_STEPS,
            ),
            stat_panel(
                "Event latency p99",
                event_p99,
                "Playback event time to its emit on Socket.IO. " + CLOCK_NOTE,
                "s",
                LATENCY_STEPS,
            ),
            stat_panel(
                "Cameras delivering",
                f"sum(capture_source_up{{{CAM}}})",
                "Capture processes whose source delivers frames.",
            ),
            stat_panel(
                "MJPEG viewers",
                f"sum(gateway_mjpeg_viewers{{{VIEWERS}}})",
                "Open /stream connections of people (not the latency probe), over "
                "every gateway replica.",
            ),
            stat_panel(
                "Socket.IO clients",
                f"sum(gateway_socketio_clients{{{NS}}})",
                "Dashboard browsers connected, over every gateway replica.",
            ),
            stat_panel("Gateway replicas", replicas, "Gateway pods Prometheus scrapes."),
        ],
    )


def _frames() -> Row:
    return (
        "Frames: capture → Kafka → gateway → viewer",
        [
            graph(
                "Frame latency per camera (capture → viewer)",
                *quantiles("gateway_frame_latency_seconds", VIEWERS, by=("camera",)),
            )
            .unit("s")
            .description(
                "From the capture time in the frame's `ts` header to the frame written to a "
                "viewer's socket, p50/p95/p99 per camera. " + CLOCK_NOTE
            ),
            histogram_heatmap(
                "Frame latency distribution",
                "sum by (le) (increase(gateway_frame_latency_seconds_bucket"
                f"{{{VIEWERS}}}[$__rate_interval]))",
                unit="s",
            ).description(
                "Frames written to viewers per latency bucket, all selected cameras: a second "
                "mode or a long tail shows here before p99 moves. " + CLOCK_NOTE
            ),
            graph(
                "Capture → Kafka acknowledgement per camera",
                *quantiles("capture_delivery_seconds", CAM, by=("camera",), qs=(0.5, 0.99)),
            )
            .unit("s")
            .description(
                "From the capture time to the broker's acknowledgement of the frame, measured "
                "by the capture process. Both ends use the capture host's clock, so this part "
                "needs no clock synchronization; the rest of the frame latency is Kafka to the "
                "gateway and the viewer."
            ),
        ],
    )


def _probe() -> Row:
    latency = "probe_frame_latency_seconds"
    errors = f"sum by (camera) (increase(probe_stream_errors_total{{{CAM}}}[$__rate_interval]))"
    frames = f"sum by (camera) ({rate(f'probe_frames_total{{{CAM}}}')})"
    return (
        "Latency probe: one low-rate viewer per camera, always on",
        [
            graph("Capture → probe latency per camera", *quantiles(latency, CAM, by=("camera",)))
            .unit("s")
            .description(
                "What the in-cluster latency probe measures: capture time to the frame's "
                "arrival at a viewer that is always there, through the gateway's Service, so "
                "this has data before any person watches. " + CLOCK_NOTE
            ),
            graph("Probe frames per second", query(frames, "{{camera}}"))
            .unit(FPS)
            .description("Frames the probe received per camera (it asks for a low rate)."),
            graph(
                "Probe stream errors",
                query(
                    zero_when_absent(errors, "camera", f"probe_frames_total{{{CAM}}}"), "{{camera}}"
                ),
            ).description(
                "Streams the probe had to reopen per camera (the gateway refused or closed "
                "them, or they went silent)."
            ),
            stat_panel(
                "Probe latency p99",
                quantile(0.99, latency, CAM),
                "All selected cameras. " + CLOCK_NOTE,
                "s",
                LATENCY_STEPS,
                width=12,
            ),
        ],
    )


def _frame_rates() -> Row:
    return (
        "Frame rates",
        [
            graph(
                "Captured vs delivered fps per camera",
                query(
                    f"sum by (camera) ({rate(f'capture_frames_total{{{CAM}}}')})",
                    "{{camera}} captured",
                ),
                query(
                    f"sum by (camera) ({rate(f'gateway_frames_sent_total{{{VIEWERS}}}')}) "
                    f"/ sum by (camera) (gateway_mjpeg_viewers{{{VIEWERS}}} > 0)",
                    "{{camera}} delivered per viewer",
                ),
            )
            .unit(FPS)
            .description(
                "Frames the capture process sent to Kafka, and frames each MJPEG viewer "
                "received on average. A viewer below the captured rate is slow (skipped "
                "frames) or capped by `?fps=`."
            ),
            graph(
                "Skipped frames per camera (gateway)",
                query(
                    f"sum by (camera, reason) ({rate(f'gateway_frames_skipped_total{{{CAM}}}')})",
                    "{{camera}} {{reason}}",
                ),
            )
            .unit(FPS)
            .span(6)
            .description(
                "Frames a viewer did not get: slow_client (a newer frame replaced it before "
                "the viewer took it), fps_cap (the viewer asked for fewer). Each viewer holds "
                "at most one frame, so a slow one skips."
            ),
            graph(
                "Dropped frames per camera (capture)",
                query(
                    f"sum by (camera, reason) ({rate(f'capture_frames_dropped_total{{{CAM}}}')})",
                    "{{camera}} {{reason}}",
                ),
            )
            .unit(FPS)
            .span(6)
            .description(
                "Frames captured and never sent to Kafka: behind (encoding could not keep "
                "up), queue_full (the producer's queue), too_large, encode_error, "
                "produce_error."
            ),
        ],
    )


def _events() -> Row:
    return (
        "Playback events: event-sim → Kafka → gateway → Socket.IO",
        [
            graph(
                "Event latency (event time → emitted to Socket.IO)",
                *quantiles("gateway_event_latency_seconds", NS),
            )
            .unit("s")
            .description(
                "From a playback event's `ts` to the gateway emitting it as `new_event`, "
                "p50/p95/p99 (the events sampled for emission). " + CLOCK_NOTE
            ),
            graph(
                "Events per second: produced, consumed, emitted",
                query(
                    f"sum({rate(f'eventsim_events_total{{{NS}}}')})",
                    "produced (event-sim, acknowledged)",
                ),
                query(
                    f"sum({rate(f'gateway_playback_events_total{{{NS}}}')})",
                    "consumed (gateway)",
                ),
                query(
                    f"sum({rate(f'gateway_events_emitted_total{{{NS}}}')})",
                    "emitted one by one (sample)",
                ),
            )
            .unit(PER_SECOND)
            .description(
                "Consumed below produced for long means the gateway's consumer group falls "
                "behind (see the consumer lag). Emission is a sample "
                "(GATEWAY_EVENT_SAMPLE_RATE per replica); every event feeds the aggregates."
            ),
        ],
    )


def _viewers() -> Row:
    return (
        "Viewers",
        [
            stacked_graph(
                "MJPEG viewers per camera",
                query(f"sum by (camera) (gateway_mjpeg_viewers{{{VIEWERS}}})", "{{camera}}"),
            ).description("Open /stream connections per camera, over every replica."),
            stacked_graph(
                "Socket.IO clients per replica",
                query(f"sum by (pod) (gateway_socketio_clients{{{NS}}})", "{{pod}}"),
            ).description(
                "Dashboard browsers per gateway replica (sticky sessions keep a browser on "
                "one replica)."
            ),
        ],
    )
