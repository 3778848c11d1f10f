"""Playback QoE: the dashboard page's quality-of-experience aggregates, over time.

The gateway counts them from the playback events of the partitions each replica owns,
so summing over replicas gives the whole stream whatever the assignment. Definitions
are the gateway's (services/gateway/src/rts_gateway/feed/qoe.py). Top titles stay on the
live page: a title label would multiply every series by the catalogue.
"""

from __future__ import annotations

from rts_observability.dashboards.common import LINKS, NAMESPACE, NS, PER_SECOND, rate, stat
from rts_observability.grafana import Dashboard, Panel, Query, Row, Variable

DEV = f'{NS}, device=~"$device"'


def _sum(metric: str, by: str = "", window: bool = True) -> str:
    inner = rate(f"{metric}{{{DEV}}}") if window else f"{metric}{{{DEV}}}"
    return f"sum by ({by}) ({inner})" if by else f"sum({inner})"


def _rebuffering(by: str = "") -> str:
    rebuffer, watched = (
        _sum("gateway_rebuffer_seconds_total", by),
        _sum("gateway_watched_seconds_total", by),
    )
    return f"{rebuffer} / (({watched} + {rebuffer}) > 0)"


def _startup_failures(by: str = "") -> str:
    failed, started = (
        _sum("gateway_startup_failures_total", by),
        _sum("gateway_stream_starts_total", by),
    )
    return f"{failed} / (({started} + {failed}) > 0)"


def _bitrate(by: str = "") -> str:
    played, watched = (
        _sum("gateway_watched_bytes_total", by),
        _sum("gateway_watched_seconds_total", by),
    )
    return f"8 * {played} / ({watched} > 0)"


def _startup_ms(q: float, by: str = "") -> str:
    group = f"{by}, le" if by else "le"
    buckets = rate(f"gateway_startup_seconds_bucket{{{DEV}}}")
    return f"histogram_quantile({q}, sum by ({group}) ({buckets})) * 1000"


REBUFFERING = (
    "Share of viewing time spent rebuffering: stall seconds (buffer_reason rebuffer, "
    "not the buffering after a seek) over stall plus playing seconds, from event times."
)
STARTUP_FAILURES = (
    "Sessions that stopped before playing (stop with reason startup_failure) over all "
    "sessions that tried to start."
)
BITRATE = (
    "Time-weighted average bitrate of the playing sessions: bitrate times playing time "
    "(gateway_watched_bytes_total) over playing time."
)


def dashboard() -> Dashboard:
    device = Variable(
        "device", "Device", f"label_values(gateway_playback_events_total{{{NS}}}, device)",
        multi=True,
    )  # fmt: skip
    return Dashboard(
        uid="rts-playback-qoe",
        title="Playback QoE",
        description="Quality of experience of the simulated viewers over time: events, "
        "concurrent sessions, stream starts and startup time, startup failures, "
        "rebuffering, bitrate, split by device.",
        variables=(NAMESPACE, device),
        links=LINKS,
        time_from="now-1h",
        rows=(_now(), _events(), _starts(), _quality()),
    )


def _now() -> Row:
    return Row(
        "Now",
        (
            stat("Sessions playing", f'sum(gateway_sessions{{{DEV}, state="playing"}})',
                  "Sessions whose last event left them playing."),
            stat("Stream starts", _sum("gateway_stream_starts_total"),
                  "Sessions that started playing (a play with startup_ms).", PER_SECOND),
            stat("Startup time p95", _startup_ms(0.95),
                  "Request to first frame, as the players report it.", "ms",
                  ((None, "green"), (2000, "orange"), (5000, "red"))),
            stat("Startup failures", _startup_failures(), STARTUP_FAILURES, "percentunit",
                  ((None, "green"), (0.02, "orange"), (0.05, "red"))),
            stat("Rebuffering ratio", _rebuffering(), REBUFFERING, "percentunit",
                  ((None, "green"), (0.01, "orange"), (0.02, "red"))),
            stat("Average bitrate", _bitrate(), BITRATE, "bps"),
        ),
    )  # fmt: skip


def _events() -> Row:
    return Row(
        "Events and sessions",
        (
            Panel(
                "Playback events per second by type",
                [Query(_sum("gateway_playback_events_total", "event_type"), "{{event_type}}")],
                unit=PER_SECOND,
                stacked=True,
            ),
            Panel(
                "Playback events per second by device",
                [Query(_sum("gateway_playback_events_total", "device"), "{{device}}")],
                unit=PER_SECOND,
                stacked=True,
            ),
            Panel(
                "Concurrent sessions by state",
                [Query(_sum("gateway_sessions", "state", window=False), "{{state}}")],
                stacked=True,
                description="Sessions by their player's state after their last event "
                "(playing, paused, buffering, seeking).",
            ),
            Panel(
                "Playing sessions by device",
                [
                    Query(
                        f'sum by (device) (gateway_sessions{{{DEV}, state="playing"}})',
                        "{{device}}",
                    )
                ],
                stacked=True,
            ),
        ),
    )


def _starts() -> Row:
    return Row(
        "Stream starts",
        (
            Panel(
                "Stream starts per second by device",
                [Query(_sum("gateway_stream_starts_total", "device"), "{{device}}")],
                unit=PER_SECOND,
                width=8,
                stacked=True,
            ),
            Panel(
                "Startup time p50 / p95 by device",
                [
                    Query(_startup_ms(0.5, "device"), "{{device}} p50"),
                    Query(_startup_ms(0.95, "device"), "{{device}} p95"),
                ],
                unit="ms",
                width=8,
                description="Request to first frame, as the players report it "
                "(startup_ms of the session's first play).",
            ),
            Panel(
                "Startup failure ratio by device",
                [Query(_startup_failures("device"), "{{device}}")],
                unit="percentunit",
                width=8,
                description=STARTUP_FAILURES,
            ),
        ),
    )


def _quality() -> Row:
    return Row(
        "Playback quality",
        (
            Panel(
                "Rebuffering ratio by device",
                [Query(_rebuffering("device"), "{{device}}")],
                unit="percentunit",
                width=8,
                description=REBUFFERING,
            ),
            Panel(
                "Average bitrate by device",
                [Query(_bitrate("device"), "{{device}}")],
                unit="bps",
                width=8,
                description=BITRATE,
            ),
            Panel(
                "Bitrate switches per second",
                [Query(_sum("gateway_bitrate_switches_total", "direction"), "{{direction}}")],
                unit=PER_SECOND,
                width=8,
                description="Rendition changes: up when the network has headroom, down "
                "after a rebuffer.",
            ),
        ),
    )
