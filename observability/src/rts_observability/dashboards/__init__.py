"""The platform's Grafana dashboards as code, on Grafana's foundation SDK: a module each."""

from __future__ import annotations

from collections.abc import Callable

from grafana_foundation_sdk.builders.dashboard import Dashboard

from rts_observability.dashboards import gateway_scaling, kafka, playback_qoe, streaming_latency

# file name (under helm/streaming/files/dashboards/) -> builder
DASHBOARDS: dict[str, Callable[[], Dashboard]] = {
    "streaming-latency.json": streaming_latency.dashboard,
    "gateway-scaling.json": gateway_scaling.dashboard,
    "playback-qoe.json": playback_qoe.dashboard,
    "kafka.json": kafka.dashboard,
}
