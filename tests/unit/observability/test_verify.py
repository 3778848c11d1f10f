"""How panel answers are judged, and how variables are filled, without a Prometheus."""

import math
from typing import Any

import pytest
from rts_observability.verify import (
    PanelQuery,
    Prometheus,
    PrometheusError,
    judge,
    panel_queries,
    rate_interval,
    resolve_variables,
    substitute,
)


def query(unit: str, expr: str = "sum(x)") -> PanelQuery:
    return PanelQuery("D", "P", unit, "A", "", expr, instant=False)


def series(*values: float) -> dict[str, Any]:
    return {"metric": {"pod": "gw-1"}, "values": [[i, str(v)] for i, v in enumerate(values)]}


LATENCY = "histogram_quantile(0.99, sum by (le) (rate(x_bucket[1m])))"


@pytest.mark.parametrize(
    ("unit", "expr", "values", "ok"),
    [
        ("s", LATENCY, (0.004, 0.2, 1.5), True),
        ("s", LATENCY, (0.0,), False),  # a latency of exactly zero measures nothing
        ("s", LATENCY, (7.0,), False),  # seconds late: broken
        ("s", LATENCY, (math.nan,), False),  # no observations in the window
        ("s", "sum(increase(x_bucket[1m]))", (250.0,), True),  # counts on a seconds axis
        ("percentunit", "a / b", (0.0, 0.5, 1.0), True),
        ("percentunit", "a / b", (1.2,), False),
        ("short", "sum(rate(x[1m]))", (0.0, 3.0), True),
        ("short", "sum(rate(x[1m]))", (-1.0,), False),
        ("short", "sum(rate(x[1m]))", (math.inf,), False),
        ("ms", LATENCY + " * 1000", (1500.0,), True),
        ("ms", "max(kafka_request_ms)", (0.0,), True),  # the broker's own percentile
    ],
)
def test_values_are_judged_by_their_panels_unit(
    unit: str, expr: str, values: tuple[float, ...], ok: bool
) -> None:
    sample, problems = judge(query(unit, expr), [series(*values)])
    assert (not problems) is ok, problems
    assert sample == values[-1] or math.isnan(values[-1])


def test_a_query_without_series_fails() -> None:
    assert judge(query("short"), []) == (None, ("no series",))


def test_rate_interval_is_grafanas() -> None:
    assert rate_interval(15, 15) == 60
    assert rate_interval(2, 30) == 32


def test_variables_and_the_rate_interval_are_substituted() -> None:
    expr = 'rate(x{namespace="$namespace", camera=~"${camera}"}[$__rate_interval])'
    filled = substitute(expr, {"namespace": "local", "camera": ".+"}, 8)
    assert filled == 'rate(x{namespace="local", camera=~".+"}[8s])'


class FakePrometheus(Prometheus):
    def __init__(self, values: dict[str, dict[str, list[str]]]) -> None:
        super().__init__("http://unused")
        self.values = values
        self.asked: list[str | None] = []

    def label_values(self, label: str, selector: str | None, start: float, end: float) -> list[str]:
        self.asked.append(selector)
        return self.values.get(label, {}).get(selector or "", [])


DASHBOARD = {
    "title": "D",
    "templating": {
        "list": [
            {"type": "datasource", "name": "datasource"},
            {"type": "query", "name": "namespace", "query": "label_values(up, namespace)"},
            {
                "type": "query",
                "name": "camera",
                "includeAll": True,
                "allValue": ".+",
                "query": 'label_values(x{namespace="$namespace"}, camera)',
            },
        ]
    },
    "panels": [
        {
            "type": "row",
            "title": "r",
            "panels": [
                {"type": "timeseries", "title": "inner", "targets": [{"refId": "A", "expr": "a"}]},
            ],
        },
        {
            "type": "stat",
            "title": "outer",
            "fieldConfig": {"defaults": {"unit": "s"}},
            "targets": [{"refId": "B", "expr": "b", "instant": True, "range": False}],
        },
    ],
}


def test_variables_take_the_preferred_value_or_all_in_dependency_order() -> None:
    prom = FakePrometheus(
        {
            "namespace": {"up": ["a", "local"]},
            "camera": {'x{namespace="local"}': ["cam-1"]},
        }
    )
    values = resolve_variables(DASHBOARD, prom, 0, 1, prefer={"namespace": "local"})
    assert values == {"namespace": "local", "camera": ".+"}
    assert prom.asked == ["up", 'x{namespace="local"}']


def test_a_variable_without_values_is_an_error() -> None:
    with pytest.raises(PrometheusError, match="camera"):
        resolve_variables(DASHBOARD, FakePrometheus({"namespace": {"up": ["local"]}}), 0, 1)


def test_panel_queries_include_rows_nested_panels_and_know_instant_ones() -> None:
    found = {(q.panel, q.ref_id, q.unit, q.instant) for q in panel_queries(DASHBOARD)}
    assert found == {("inner", "A", "short", False), ("outer", "B", "s", True)}
