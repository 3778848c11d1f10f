"""The dashboards' shared conventions: labels, the namespace variable, PromQL helpers, notes.

Every series carries `namespace` and `pod`: in the cluster the PodMonitors put them
there, locally the devstack's Prometheus (rts_observability.prometheus) does, so one
set of queries serves both. Queries never name a `job`, a Service or a Deployment.
"""

from __future__ import annotations

from collections.abc import Sequence

from grafana_foundation_sdk.builders import prometheus
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models.dashboard import VariableModel

from rts_observability.dashboards.panels import query, query_variable

NS = 'namespace="$namespace"'
RATE = "$__rate_interval"


CLOCK_NOTE = (
    "Cross-host latency: the start time is stamped by the machine that captured the "
    "frame (or simulated the event) and the end time by the gateway's machine, so the "
    "figure assumes their clocks are synchronized (NTP, chrony). A clock skew between "
    "hosts shows up here as latency, or hides it."
)


def namespace_variable() -> Builder[VariableModel]:
    return query_variable("namespace", "Namespace", "label_values(rts_build_info, namespace)")


# Grafana's custom units: a suffix after the number.
PER_SECOND = "suffix: /s"
FPS = "suffix: fps"


def rate(selector: str, window: str = RATE) -> str:
    return f"rate({selector}[{window}])"


def quantile(q: float, metric: str, selector: str, by: Sequence[str] = ()) -> str:
    """The `q` quantile of a histogram over `$__rate_interval`, grouped `by` labels."""
    group = ", ".join([*by, "le"])
    return f"histogram_quantile({q}, sum by ({group}) ({rate(f'{metric}_bucket{{{selector}}}')}))"


def quantiles(
    metric: str,
    selector: str,
    by: Sequence[str] = (),
    qs: Sequence[float] = (0.5, 0.95, 0.99),
) -> list[prometheus.Dataquery]:
    """One query per quantile of a histogram, grouped `by` labels, named pNN in the legend."""
    legend_head = " ".join(f"{{{{{label}}}}}" for label in by)
    return [
        query(quantile(q, metric, selector, by), f"{legend_head} p{round(q * 100):d}".strip())
        for q in qs
    ]


def zero_when_absent(expr: str, by: str, presence: str) -> str:
    """`expr`, or 0 for each `by` group present in `presence` where `expr` has no series.

    Error counters appear at their first error; a panel of errors should say 0 before.
    """
    return f"({expr}) or (sum by ({by}) ({presence}) * 0)"
