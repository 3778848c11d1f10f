"""Playback QoE: the dashboard page's quality-of-experience aggregates, over time.

The gateway counts them from the playback events of the partitions each replica owns,
so summing over replicas gives the whole stream whatever the assignment. Definitions
are the gateway's (services/gateway/src/rts_gateway/feed/qoe.py). Top titles stay on the
live page: a title label would multiply every series by the catalogue.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import Dashboard

from rts_observability.dashboards.common import NS, PER_SECOND, namespace_variable, rate
from rts_observability.dashboards.panels import (
    Row,
    graph,
    platform_dashboard,
    query,
    query_variable,
    stacked_graph,
    stat_panel,
)

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
    device = query_variable(
        "device",
        "Device",
        f"label_values(gateway_playback_events_total{{{NS}}}, device)",
        multi=True,
    )
    return platform_dashboard(
        "rts-playback-qoe",
        "Playback QoE",
        "Quality of experience of the simulated viewers over time: events, concurrent "
        "sessions, stream starts and startup time, startup failures, rebuffering, bitrate, "
        "split by device.",
        variables=(namespace_variable(), device),
        time_from="now-1h",
        rows=(_now(), _events(), _starts(), _quality()),
    )


def _now() -> Row:
    return (
        "Now",
        [
            stat_panel(
                "Sessions playing",
                f'sum(gateway_sessions{{{DEV}, state="playing"}})',
                "Sessions whose last event left them playing.",
            ),
            stat_panel(
                "Stream starts",
                _sum("gateway_stream_starts_total"),
                "Sessions that started playing (a play with startup_ms).",
                PER_SECOND,
            ),
            stat_panel(
                "Startup time p95",
                _startup_ms(0.95),
                "Request to first frame, as the players report it.",
                "ms",
                ((None, "green"), (2000, "orange"), (5000, "red")),
            ),
            stat_panel(
                "Startup failures",
                _startup_failures(),
                STARTUP_FAILURES,
                "percentunit",
                ((None, "green"), (0.02, "orange"), (0.05, "red")),
            ),
            stat_panel(
                "Rebuffering ratio",
                _rebuffering(),
                REBUFFERING,
                "percentunit",
                ((None, "green"), (0.01, "orange"), (0.02, "red")),
            ),
            stat_panel("Average bitrate", _bitrate(), BITRATE, "bps"),
        ],
    )


def _events() -> Row:
    return (
        "Events and sessions",
        [
            stacked_graph(
                "Playback events per second by type",
                query(_sum("gateway_playback_events_total", "event_type"), "{{event_type}}"),
            ).unit(PER_SECOND),
            stacked_graph(
                "Playback events per second by device",
                query(_sum("gateway_playback_events_total", "device"), "{{device}}"),
            ).unit(PER_SECOND),
            stacked_graph(
                "Concurrent sessions by state",
                query(_sum("gateway_sessions", "state", window=False), "{{state}}"),
            ).description(
                "Sessions by their player's state after their last event (playing, paused, "
                "buffering, seeking)."
            ),
            stacked_graph(
                "Playing sessions by device",
                query(
                    f'sum by (device) (gateway_sessions{{{DEV}, state="playing"}})', "{{device}}"
                ),
            ),
        ],
    )


def _starts() -> Row:
    return (
        "Stream starts",
        [
            stacked_graph(
                "Stream starts per second by device",
                query(_sum("gateway_stream_starts_total", "device"), "{{device}}"),
            )
            .unit(PER_SECOND)
            .span(8),
            graph(
                "Startup time p50 / p95 by device",
                query(_startup_ms(0.5, "device"), "{{device}} p50"),
                query(_startup_ms(0.95, "device"), "{{device}} p95"),
            )
            .unit("ms")
            .span(8)
            .description(
                "Request to first frame, as the players report it (startup_ms of the "
                "session's first play)."
            ),
            graph(
                "Startup failure ratio by device",
                query(_startup_failures("device"), "{{device}}"),
            )
            .unit("percentunit")
            .span(8)
            .description(STARTUP_FAILURES),
        ],
    )


def _quality() -> Row:
    return (
        "Playback quality",
        [
            graph("Rebuffering ratio by device", query(_rebuffering("device"), "{{device}}"))
            .unit("percentunit")
            .span(8)
            .description(REBUFFERING),
            graph("Average bitrate by device", query(_bitrate("device"), "{{device}}"))
            .unit("bps")
            .span(8)
            .description(BITRATE),
            graph(
                "Bitrate switches per second",
                query(_sum("gateway_bitrate_switches_total", "direction"), "{{direction}}"),
            )
            .unit(PER_SECOND)
            .span(8)
            .description(
                "Rendition changes: up when the network has headroom, down after a rebuffer."
            ),
        ],
    )
