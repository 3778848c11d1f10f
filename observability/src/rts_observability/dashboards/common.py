"""What the four dashboards share: label conventions, variables, query helpers, notes.

Every series carries `namespace` and `pod`: in the cluster the PodMonitors put them
there, locally the devstack's Prometheus (rts_observability.prometheus) does, so one
set of queries serves both. Queries never name a `job`, a Service or a Deployment.
"""

from __future__ import annotations

from collections.abc import Sequence

from rts_observability.grafana import Panel, Query, Variable

NS = 'namespace="$namespace"'
RATE = "$__rate_interval"

NAMESPACE = Variable("namespace", "Namespace", "label_values(rts_build_info, namespace)")

CLOCK_NOTE = (
    "Cross-host latency: the start time is stamped by the machine that captured the "
    "frame (or simulated the event) and the end time by the gateway's machine, so the "
    "figure assumes their clocks are synchronized (NTP, chrony). A clock skew between "
    "hosts shows up here as latency, or hides it."
)

LINKS = (
    {
        "type": "dashboards",
        "title": "Streaming platform",
        "tags": ["rts"],
        "asDropdown": True,
        "includeVars": True,
        "keepTime": True,
        "icon": "external link",
        "targetBlank": False,
        "tooltip": "",
        "url": "",
    },
)

# Grafana's custom units: a suffix after the number.
PER_SECOND = "suffix: /s"
FPS = "suffix: fps"


def rate(selector: str, window: str = RATE) -> str:
    return f"rate({selector}[{window}])"


def quantiles(
    metric: str,
    selector: str,
    by: Sequence[str] = (),
    qs: Sequence[float] = (0.5, 0.95, 0.99),
    scale: float = 1.0,
) -> list[Query]:
    """histogram_quantile queries of a histogram, one per quantile, grouped `by` labels."""
    group = ", ".join([*by, "le"])
    legend_head = " ".join(f"{{{{{label}}}}}" for label in by)
    out = []
    for q in qs:
        expr = (
            f"histogram_quantile({q}, sum by ({group}) ({rate(f'{metric}_bucket{{{selector}}}')}))"
        )
        if scale != 1.0:
            expr = f"{expr} * {scale:g}"
        name = f"p{round(q * 100):d}"
        out.append(Query(expr, f"{legend_head} {name}".strip()))
    return out


def zero_when_absent(expr: str, by: str, presence: str) -> str:
    """`expr`, or 0 for each `by` group present in `presence` where `expr` has no series.

    Error counters appear at their first error; a panel of errors should say 0 before.
    """
    return f"({expr}) or (sum by ({by}) ({presence}) * 0)"


def stat(
    title: str,
    expr: str,
    description: str,
    unit: str = "short",
    thresholds: Sequence[tuple[float | None, str]] = ((None, "green"),),
    width: int = 4,
) -> Panel:
    """A single-value panel of the dashboards' top row."""
    return Panel(title, [Query(expr)], unit=unit, kind="stat", width=width, height=4,
                 thresholds=thresholds, description=description)  # fmt: skip
