"""A small model of Grafana dashboards, rendered to the JSON Grafana stores.

Only what the platform's dashboards use: time series, stats, heatmaps and bar gauges of
Prometheus queries, grouped in rows and laid out left to right on Grafana's 24-column
grid. Every query goes to the `datasource` variable, whose default is the uid
`prometheus` (the one kube-prometheus-stack provisions): no `__inputs` or `${DS_...}`
placeholders, which only Grafana's import dialog fills in and which break provisioning
through the sidecar.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

DATASOURCE_UID = "prometheus"
DATASOURCE: dict[str, str] = {"type": "prometheus", "uid": "${datasource}"}
# Grafana 11's dashboard schema; newer Grafanas migrate it on load.
SCHEMA_VERSION = 39
GRID_WIDTH = 24

PanelKind = Literal["timeseries", "stat", "heatmap", "bargauge"]


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = ""
    instant: bool = False  # one value per series (stats, bar gauges) instead of a range
    heatmap: bool = False  # buckets by `le`, for heatmap panels


@dataclass(frozen=True)
class Panel:
    title: str
    queries: Sequence[Query]
    unit: str = "short"
    description: str = ""
    kind: PanelKind = "timeseries"
    width: int = 12
    height: int = 8
    stacked: bool = False
    decimals: int | None = None
    min: float | None = None
    max: float | None = None
    # (value, colour) steps from the lowest; the first value is ignored (Grafana's base)
    thresholds: Sequence[tuple[float | None, str]] = ((None, "green"),)
    legend_calcs: Sequence[str] = ("lastNotNull", "max")


@dataclass(frozen=True)
class Row:
    title: str
    panels: Sequence[Panel]


@dataclass(frozen=True)
class Variable:
    """A query variable filled from `label_values(...)`."""

    name: str
    label: str
    query: str
    multi: bool = False  # several values (and All), used as `label=~"$name"`


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    description: str
    rows: Sequence[Row]
    variables: Sequence[Variable] = ()
    tags: Sequence[str] = ("rts",)
    refresh: str = "10s"
    time_from: str = "now-30m"
    links: Sequence[dict[str, Any]] = field(default_factory=tuple)


def render(dashboard: Dashboard) -> dict[str, Any]:
    """The dashboard's JSON model, as Grafana's provisioning and its API take it."""
    panels: list[dict[str, Any]] = []
    y = 0
    next_id = 1
    for row in dashboard.rows:
        panels.append(
            {
                "type": "row",
                "id": next_id,
                "title": row.title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": GRID_WIDTH, "x": 0, "y": y},
                "panels": [],
            }
        )
        next_id += 1
        y += 1
        x, line_height = 0, 0
        for panel in row.panels:
            if x + panel.width > GRID_WIDTH:
                x, y, line_height = 0, y + line_height, 0
            grid = {"h": panel.height, "w": panel.width, "x": x, "y": y}
            panels.append(_panel(panel, next_id, grid))
            next_id += 1
            x += panel.width
            line_height = max(line_height, panel.height)
        y += line_height
    return {
        "uid": dashboard.uid,
        "title": dashboard.title,
        "description": dashboard.description,
        "tags": list(dashboard.tags),
        "editable": True,
        "graphTooltip": 1,  # a shared crosshair: one moment across every panel
        "timezone": "browser",
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "time": {"from": dashboard.time_from, "to": "now"},
        "refresh": dashboard.refresh,
        "links": list(dashboard.links),
        "annotations": {"list": []},
        "templating": {"list": [_datasource_variable(), *map(_variable, dashboard.variables)]},
        "panels": panels,
    }


def _datasource_variable() -> dict[str, Any]:
    return {
        "name": "datasource",
        "label": "Data source",
        "type": "datasource",
        "query": "prometheus",
        "current": {"selected": False, "text": "Prometheus", "value": DATASOURCE_UID},
        "hide": 0,
        "refresh": 1,
        "regex": "",
        "options": [],
    }


def _variable(variable: Variable) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": variable.name,
        "label": variable.label,
        "type": "query",
        "datasource": DATASOURCE,
        "query": variable.query,
        "definition": variable.query,
        "refresh": 2,  # on time range change: replicas and cameras come and go
        "sort": 1,
        "hide": 0,
        "regex": "",
        "multi": variable.multi,
        "includeAll": variable.multi,
        "current": {},
        "options": [],
    }
    if variable.multi:
        out["allValue"] = ".+"
        out["current"] = {"selected": True, "text": ["All"], "value": ["$__all"]}
    return out


def _panel(panel: Panel, panel_id: int, grid: dict[str, int]) -> dict[str, Any]:
    targets = [_target(q, chr(ord("A") + i)) for i, q in enumerate(panel.queries)]
    defaults: dict[str, Any] = {
        "unit": panel.unit,
        "color": {"mode": "palette-classic"},
        "thresholds": {
            "mode": "absolute",
            "steps": [{"value": v, "color": c} for v, c in panel.thresholds],
        },
    }
    if panel.decimals is not None:
        defaults["decimals"] = panel.decimals
    if panel.min is not None:
        defaults["min"] = panel.min
    if panel.max is not None:
        defaults["max"] = panel.max
    out: dict[str, Any] = {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": grid,
        "targets": targets,
    }
    if panel.kind == "timeseries":
        defaults["custom"] = {
            "drawStyle": "line",
            "lineWidth": 1,
            "fillOpacity": 10 if not panel.stacked else 40,
            "showPoints": "never",
            "spanNulls": False,
            "stacking": {"mode": "normal" if panel.stacked else "none", "group": "A"},
        }
        out["options"] = {
            "legend": {
                "displayMode": "table",
                "placement": "bottom",
                "showLegend": True,
                "calcs": list(panel.legend_calcs),
            },
            "tooltip": {"mode": "multi", "sort": "desc"},
        }
    elif panel.kind == "stat":
        defaults["color"] = {"mode": "thresholds"}
        out["options"] = {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "value",
            "graphMode": "area",
            "textMode": "auto",
            "justifyMode": "auto",
            "orientation": "auto",
        }
    elif panel.kind == "bargauge":
        defaults["color"] = {"mode": "thresholds"}
        out["options"] = {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "displayMode": "gradient",
            "orientation": "horizontal",
            "showUnfilled": True,
        }
    else:  # heatmap of a Prometheus histogram: buckets come precomputed, by `le`
        out["options"] = {
            "calculate": False,
            "yAxis": {"unit": panel.unit, "axisPlacement": "left"},
            "rowsFrame": {"layout": "auto"},
            "cellGap": 1,
            "color": {
                "mode": "scheme",
                "scheme": "Oranges",
                "scale": "exponential",
                "exponent": 0.5,
                "steps": 64,
                "reverse": False,
            },
            "filterValues": {"le": 1e-9},
            "tooltip": {"mode": "single", "yHistogram": True},
            "legend": {"show": True},
        }
    out["fieldConfig"] = {"defaults": defaults, "overrides": []}
    return out


def _target(query: Query, ref_id: str) -> dict[str, Any]:
    target: dict[str, Any] = {
        "datasource": DATASOURCE,
        "refId": ref_id,
        "editorMode": "code",
        "expr": query.expr,
        "legendFormat": query.legend or "__auto",
        "range": not query.instant,
        "instant": query.instant,
    }
    if query.heatmap:
        target["format"] = "heatmap"
    return target
