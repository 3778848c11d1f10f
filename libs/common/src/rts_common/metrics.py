"""Prometheus helpers shared by the services: one registry per service, common buckets."""

from __future__ import annotations

import platform
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    GCCollector,
    Info,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)

# `*_created` series double every counter's series count and no dashboard reads them.
disable_created_metrics()  # type: ignore[no-untyped-call]

# Latencies from 1 ms to 10 s: local hops are milliseconds, a struggling cluster seconds.
LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75,
    1.0, 2.5, 5.0, 7.5, 10.0,
)  # fmt: skip
# Short CPU-bound steps (encode, detect): 100 µs to 1 s.
DURATION_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
)  # fmt: skip
# Payload sizes from 1 KiB to 8 MiB.
SIZE_BUCKETS = tuple(float(1024 * 2**i) for i in range(14))


def service_registry(service: str, version: str = "0.1.0", **info: str) -> CollectorRegistry:
    """A fresh registry with process metrics and a `rts_build_info` series for the service,
    with `info` as more labels (constant for the process, such as its replica name).

    Constants go on this one series rather than on every series: Prometheus already
    labels each scraped series with its target (`pod`), and queries join the info series
    when they need more (`* on (namespace, pod) group_left(replica) rts_build_info`)."""
    registry = CollectorRegistry(auto_describe=True)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    Info("rts_build", "Service name and version", registry=registry).info(
        {"service": service, "version": version, "python": platform.python_version(), **info}
    )
    return registry


class Children:
    """A labelled metric's children, looked up once per label values.

    `labels()` builds a key and takes a lock on every call; on a path that runs for every
    message (tens of thousands a second) the cached child is several times cheaper.
    """

    def __init__(self, metric: Any) -> None:
        self._metric = metric
        self._cache: dict[tuple[str, ...], Any] = {}

    def __call__(self, *values: str) -> Any:
        child = self._cache.get(values)
        if child is None:
            child = self._cache[values] = self._metric.labels(*values)
        return child
