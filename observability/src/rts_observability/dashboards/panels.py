"""The platform's dashboards on Grafana's foundation SDK: the house style of each kind of panel.

Time series, stats and a heatmap of Prometheus queries, laid out by the SDK on Grafana's
24-column grid under rows. Every query goes to the `datasource` variable, whose default
is the uid `prometheus` (the one kube-prometheus-stack provisions): no `__inputs` or
`${DS_...}` placeholders, which only Grafana's import dialog fills in and which break
provisioning through the sidecar.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from string import ascii_uppercase
from typing import Any, TypeVar

from grafana_foundation_sdk.builders import dashboard, heatmap, prometheus, stat, timeseries
from grafana_foundation_sdk.builders.common import (
    ReduceDataOptions,
    StackingConfig,
    VizLegendOptions,
    VizTooltipOptions,
)
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as ui
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models.heatmap import HeatmapColorMode, HeatmapColorScale
from grafana_foundation_sdk.models.prometheus import PromQueryFormat, QueryEditorMode

DATASOURCE_UID = "prometheus"
DATASOURCE = model.DataSourceRef(type_val="prometheus", uid="${datasource}")

# (value, colour) steps from the lowest; the first value is ignored (Grafana's base)
Steps = Sequence[tuple[float | None, str]]
GREEN: Steps = ((None, "green"),)

# A row's title and its panels, left to right.
Row = tuple[str, Sequence[Builder[model.Panel]]]

AnyPanel = TypeVar("AnyPanel", timeseries.Panel, stat.Panel, heatmap.Panel)


def query(expr: str, legend: str = "") -> prometheus.Dataquery:
    """A PromQL range query of the `datasource` variable, shown as code in the editor."""
    return (
        prometheus.Dataquery()
        .datasource(DATASOURCE)
        .editor_mode(QueryEditorMode.CODE)
        .expr(expr)
        .legend_format(legend or "__auto")
        .range()
    )


def thresholds(steps: Steps) -> dashboard.ThresholdsConfig:
    return (
        dashboard.ThresholdsConfig()
        .mode(model.ThresholdsMode.ABSOLUTE)
        .steps([model.Threshold(value=value, color=color) for value, color in steps])
    )


def _with_queries(panel: AnyPanel, queries: Sequence[prometheus.Dataquery]) -> AnyPanel:
    """The panel with the queries as targets A, B, C... and the defaults every panel shares."""
    panel.datasource(DATASOURCE).description("").unit("short").thresholds(thresholds(GREEN))
    for ref_id, target in zip(ascii_uppercase[: len(queries)], queries, strict=True):
        panel.with_target(target.ref_id(ref_id))
    return panel


def graph(title: str, *queries: prometheus.Dataquery) -> timeseries.Panel:
    """Lines over time, half the grid wide, with a table legend of last and max values."""
    panel = (
        timeseries.Panel()
        .title(title)
        .span(12)
        .height(8)
        .color_scheme(dashboard.FieldColor().mode(model.FieldColorModeId.PALETTE_CLASSIC))
        .draw_style(ui.GraphDrawStyle.LINE)
        .line_width(1)
        .fill_opacity(10)
        .show_points(ui.VisibilityMode.NEVER)
        .span_nulls(False)
        .stacking(StackingConfig().mode(ui.StackingMode.NONE).group("A"))
        .legend(
            VizLegendOptions()
            .display_mode(ui.LegendDisplayMode.TABLE)
            .placement(ui.LegendPlacement.BOTTOM)
            .show_legend(True)
            .calcs(["lastNotNull", "max"])
        )
        .tooltip(
            VizTooltipOptions().mode(ui.TooltipDisplayMode.MULTI).sort(ui.SortOrder.DESCENDING)
        )
    )
    return _with_queries(panel, queries)


def stacked_graph(title: str, *queries: prometheus.Dataquery) -> timeseries.Panel:
    """A graph whose series add up (viewers per camera, events per type...)."""
    return (
        graph(title, *queries)
        .fill_opacity(40)
        .stacking(StackingConfig().mode(ui.StackingMode.NORMAL).group("A"))
    )


def stat_panel(
    title: str,
    expr: str,
    description: str,
    unit: str = "short",
    steps: Steps = GREEN,
    width: int = 4,
) -> stat.Panel:
    """A single value coloured by its thresholds, with its recent history behind it."""
    panel = (
        stat.Panel()
        .title(title)
        .span(width)
        .height(4)
        .color_scheme(dashboard.FieldColor().mode(model.FieldColorModeId.THRESHOLDS))
        .reduce_options(ReduceDataOptions().calcs(["lastNotNull"]).fields("").values(False))
        .color_mode(ui.BigValueColorMode.VALUE)
        .graph_mode(ui.BigValueGraphMode.AREA)
        .text_mode(ui.BigValueTextMode.AUTO)
        .justify_mode(ui.BigValueJustifyMode.AUTO)
        .orientation(ui.VizOrientation.AUTO)
    )
    return (
        _with_queries(panel, [query(expr)])
        .unit(unit)
        .thresholds(thresholds(steps))
        .description(description)
    )


def histogram_heatmap(title: str, expr: str, unit: str) -> heatmap.Panel:
    """The buckets of a Prometheus histogram over time: `expr` sums them `by (le)`.

    Prometheus computes the buckets, so Grafana must not bucket again (`calculate`
    off); the empty buckets below the first real one are filtered out.
    """
    target = query(expr, "{{le}}").format(PromQueryFormat.HEATMAP)
    panel = (
        heatmap.Panel()
        .title(title)
        .span(12)
        .height(8)
        .color_scheme(dashboard.FieldColor().mode(model.FieldColorModeId.PALETTE_CLASSIC))
        .calculate(False)
        .y_axis(heatmap.YAxisConfig().unit(unit).axis_placement(ui.AxisPlacement.LEFT))
        .rows_frame(heatmap.RowsHeatmapOptions().layout(ui.HeatmapCellLayout.AUTO))
        .cell_gap(1)
        .color(
            heatmap.HeatmapColorOptions()
            .mode(HeatmapColorMode.SCHEME)
            .scheme("Oranges")
            .scale(HeatmapColorScale.EXPONENTIAL)
            .exponent(0.5)
            .steps(64)
            .reverse(False)
        )
        .filter_values(heatmap.FilterValueRange().le(1e-9))
        .mode(ui.TooltipDisplayMode.SINGLE)
        .show_y_histogram()
        .show_legend()
    )
    return _with_queries(panel, [target]).unit(unit)


def query_variable(
    name: str, label: str, label_values: str, multi: bool = False
) -> Builder[model.VariableModel]:
    """A variable filled from `label_values(...)`; a multi one offers All, as `=~".+"`."""
    variable = (
        dashboard.QueryVariable(name)
        .label(label)
        .datasource(DATASOURCE)
        .query(label_values)
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)  # replicas and cameras come and go
        .sort(model.VariableSort.ALPHABETICAL_ASC)
        .hide(model.VariableHide.DONT_HIDE)
        .regex("")
        .multi(multi)
        .include_all(multi)
        .options([])
    )
    if multi:
        variable.all_value(".+").current(
            model.VariableOption(selected=True, text=["All"], value=["$__all"])
        )
    return variable


def _datasource_variable() -> dashboard.DatasourceVariable:
    return (
        dashboard.DatasourceVariable("datasource")
        .label("Data source")
        .type("prometheus")
        .current(model.VariableOption(selected=False, text="Prometheus", value=DATASOURCE_UID))
        .hide(model.VariableHide.DONT_HIDE)
        .regex("")
    )


def _platform_menu() -> dashboard.DashboardLink:
    """The *Streaming platform* menu: every dashboard tagged `rts`, time and variables kept."""
    return (
        dashboard.DashboardLink("Streaming platform")
        .type(model.DashboardLinkType.DASHBOARDS)
        .tags(["rts"])
        .as_dropdown(True)
        .include_vars(True)
        .keep_time(True)
        .icon("external link")
        .target_blank(False)
        .tooltip("")
        .url("")
    )


def platform_dashboard(
    uid: str,
    title: str,
    description: str,
    *,
    variables: Sequence[Builder[model.VariableModel]],
    rows: Sequence[Row],
    refresh: str = "10s",
    time_from: str = "now-30m",
) -> dashboard.Dashboard:
    """A dashboard of rows in the platform's menu, its queries on the `datasource` variable.

    The SDK lays a row's panels out left to right and starts a new line only once one is
    full, never to make room for a panel that would not fit: a row's widths fill its
    lines exactly (24 each), or a panel overflows the grid (which the grid test catches).
    """
    board = (
        dashboard.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["rts"])
        .editable()
        .tooltip(model.DashboardCursorSync.CROSSHAIR)  # one moment across every panel
        .timezone("browser")
        .time(time_from, "now")
        .refresh(refresh)
        .link(_platform_menu())
        .annotations([])
        .with_variable(_datasource_variable())
    )
    for variable in variables:
        board.with_variable(variable)
    for row_title, panels in rows:
        board.with_row(dashboard.Row(row_title))
        for panel in panels:
            board.with_panel(panel)
    return board


def render(board: dashboard.Dashboard) -> dict[str, Any]:
    """The dashboard's JSON model, as Grafana's provisioning and its API take it.

    Panels and rows are numbered from 1 in grid order: Grafana keys a panel's links,
    its view mode and library panels by id, and the SDK leaves ids at 0.
    """
    built = board.build()
    for number, panel in enumerate(built.panels or [], start=1):
        panel.id_val = number
    encoded: dict[str, Any] = json.loads(json.dumps(built, cls=JSONEncoder))
    return encoded
