"""Run every query of every dashboard panel against a Prometheus and judge the answers.

A panel passes when its queries return at least one series and every value is in the
range its unit allows: latency quantiles positive and below a few seconds, ratios in
[0, 1], everything else (rates, counts, bytes) non-negative; never NaN or infinite.
Dashboard variables are filled the way Grafana fills them (label values from the same
Prometheus; "All" for multi-value ones), `$__rate_interval` as Grafana computes it.

Used by the integration test on the local stack, and by hand against any Prometheus:
`rts-dashboards verify --prometheus http://127.0.0.1:9090`.
"""

from __future__ import annotations

import json
import math
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

# Latency of this platform's hops (seconds): above this something is broken.
MAX_LATENCY_SECONDS = 5.0
# Player startup and broker request times, in milliseconds (startup is capped at 30 s).
MAX_MILLISECONDS = 30_000.0
_LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(?:(?P<selector>.+),\s*)?(?P<label>\w+)\s*\)\s*$")


class PrometheusError(RuntimeError):
    pass


class Prometheus:
    """The few calls of Prometheus's HTTP API the checks need."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def get(self, path: str, **params: str | list[str]) -> Any:
        query = urllib.parse.urlencode(params, doseq=True)
        request = f"{self.url}{path}?{query}"
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                body = json.load(response)
        except urllib.error.HTTPError as err:  # a bad query: Prometheus says why in JSON
            try:
                body = json.loads(err.read())
            except ValueError:
                body = {"error": f"HTTP {err.code}"}
        except OSError as err:
            raise PrometheusError(f"{request}: {err}") from err
        if body.get("status") != "success":
            raise PrometheusError(f"{path} {params}: {body.get('error', body)}")
        return body["data"]

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[Any]:
        data = self.get(
            "/api/v1/query_range",
            query=expr,
            start=f"{start:.3f}",
            end=f"{end:.3f}",
            step=f"{step:g}",
        )
        return list(data["result"])

    def query(self, expr: str, at: float) -> list[Any]:
        data = self.get("/api/v1/query", query=expr, time=f"{at:.3f}")
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        return list(data["result"])

    def label_values(self, label: str, selector: str | None, start: float, end: float) -> list[str]:
        if selector is None:
            return sorted(self.get(f"/api/v1/label/{label}/values"))
        series = self.get(
            "/api/v1/series", **{"match[]": [selector]}, start=f"{start:.3f}", end=f"{end:.3f}"
        )
        return sorted({s[label] for s in series if label in s})


@dataclass(frozen=True)
class PanelQuery:
    dashboard: str
    panel: str
    unit: str
    ref_id: str
    legend: str
    expr: str
    instant: bool


@dataclass(frozen=True)
class Result:
    query: PanelQuery
    expr: str  # with the variables filled in
    series: int
    sample: float | None  # the latest value of the first series, to show
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def panel_queries(dashboard: Mapping[str, Any]) -> list[PanelQuery]:
    """Every Prometheus query of every panel (rows' nested panels included)."""
    out = []
    for panel in _panels(dashboard["panels"]):
        unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "short")
        for target in panel.get("targets", []):
            if "expr" not in target:
                continue
            out.append(
                PanelQuery(
                    dashboard=dashboard["title"],
                    panel=panel["title"],
                    unit=unit,
                    ref_id=target["refId"],
                    legend=target.get("legendFormat", ""),
                    expr=target["expr"],
                    instant=bool(target.get("instant")) and not target.get("range", False),
                )
            )
    return out


def _panels(panels: Iterable[Mapping[str, Any]]) -> Iterable[Mapping[str, Any]]:
    for panel in panels:
        if panel.get("type") == "row":
            yield from _panels(panel.get("panels", []))
        else:
            yield panel


def rate_interval(scrape_interval: float, step: float) -> float:
    """Grafana's `$__rate_interval`: four scrapes, or one step plus one scrape if longer."""
    return max(4 * scrape_interval, step + scrape_interval)


def resolve_variables(
    dashboard: Mapping[str, Any],
    prometheus: Prometheus,
    start: float,
    end: float,
    prefer: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Each query variable's value as Grafana would set it by default.

    Multi-value variables select All (their `allValue`); single ones take the `prefer`red
    value, else the first. A variable with no value at all is an error: every panel
    using it would be empty.
    """
    prefer = prefer or {}
    values: dict[str, str] = {}
    for variable in dashboard["templating"]["list"]:
        if variable["type"] != "query":
            continue
        query = variable["query"]
        if isinstance(query, Mapping):
            query = query["query"]
        match = _LABEL_VALUES.match(substitute(query, values, 0))
        if not match:
            raise PrometheusError(f"variable {variable['name']}: cannot read {query!r}")
        found = prometheus.label_values(match["label"], match["selector"], start, end)
        name = variable["name"]
        if not found:
            raise PrometheusError(f"variable {name}: no values for {query!r}")
        if variable.get("includeAll"):
            values[name] = variable.get("allValue") or "|".join(map(re.escape, found))
        elif name in prefer:
            if prefer[name] not in found:
                raise PrometheusError(f"variable {name}: {prefer[name]!r} not in {found}")
            values[name] = prefer[name]
        else:
            values[name] = found[0]
    return values


def substitute(expr: str, variables: Mapping[str, str], rate_interval_s: float) -> str:
    out = expr.replace("$__rate_interval", f"{rate_interval_s:g}s")
    for name in sorted(variables, key=len, reverse=True):
        out = out.replace(f"${{{name}}}", variables[name]).replace(f"${name}", variables[name])
    return out


def bounds(query: PanelQuery) -> tuple[float, float, bool]:
    """(low, high, low is exclusive) for the query's values, from its panel's unit."""
    quantile = "histogram_quantile" in query.expr
    if query.unit == "percentunit":
        return 0.0, 1.0, False
    if query.unit == "s" and quantile:
        return 0.0, MAX_LATENCY_SECONDS, True
    if query.unit == "ms":
        return 0.0, MAX_MILLISECONDS, quantile
    return 0.0, math.inf, False


def judge(query: PanelQuery, result: list[Any]) -> tuple[float | None, tuple[str, ...]]:
    """The sample to show and the problems of one query's answer."""
    if not result:
        return None, ("no series",)
    low, high, exclusive = bounds(query)
    problems: list[str] = []
    for series in result:
        points = series["values"] if "values" in series else [series["value"]]
        for _, raw in points:
            value = float(raw)
            below = value <= low if exclusive else value < low
            if not math.isfinite(value) or below or value > high:
                problems.append(f"{series['metric']} = {raw} outside {low:g}..{high:g}")
                break
    first = result[0]
    sample = float((first["values"][-1] if "values" in first else first["value"])[1])
    return sample, tuple(problems)


def verify(
    dashboards: Iterable[Mapping[str, Any]],
    prometheus: Prometheus,
    *,
    scrape_interval: float,
    window: float = 60.0,
    end: float | None = None,
    prefer: Mapping[str, str] | None = None,
) -> list[Result]:
    """Every panel query of `dashboards`, run over the last `window` seconds, judged."""
    end = time.time() if end is None else end
    start = end - window
    step = scrape_interval
    interval = rate_interval(scrape_interval, step)
    results = []
    for dashboard in dashboards:
        variables = resolve_variables(dashboard, prometheus, start, end, prefer)
        for query in panel_queries(dashboard):
            expr = substitute(query.expr, variables, interval)
            if "$" in expr:
                results.append(Result(query, expr, 0, None, ("unresolved variable",)))
                continue
            if query.instant:
                answer = prometheus.query(expr, end)
            else:
                answer = prometheus.query_range(expr, start, end, step)
            sample, problems = judge(query, answer)
            results.append(Result(query, expr, len(answer), sample, problems))
    return results
