"""The dashboards' JSON: committed as generated, and shaped the way Grafana loads it."""

import json
import re
from itertools import combinations
from pathlib import Path
from typing import Any

import pytest
import yaml
from rts_observability.__main__ import main, rendered, stale
from rts_observability.dashboards.common import CLOCK_NOTE

ROOT = Path(__file__).resolve().parents[3]
FOLDER = ROOT / "helm" / "streaming" / "files" / "dashboards"
FILES = sorted(FOLDER.glob("*.json"))
# Every dashboard's panel titles and their queries, written out for review.
PANEL_QUERIES = Path(__file__).with_name("panel_queries.yaml")


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in dashboard["panels"] if p["type"] != "row"]


def test_committed_dashboards_are_what_the_code_renders() -> None:
    assert stale(FOLDER) == [], "run `make dashboards` and commit the result"
    assert sorted(p.name for p in FILES) == sorted(rendered())


def shown(dashboard: dict[str, Any]) -> dict[str, list[str]]:
    """Each panel's title and its queries' PromQL, in target order."""
    titles = [p["title"] for p in panels(dashboard)]
    assert len(titles) == len(set(titles)), "a title names one panel of a dashboard"
    return {p["title"]: [t["expr"] for t in p["targets"]] for p in panels(dashboard)}


@pytest.mark.parametrize("name", sorted(rendered()))
def test_each_dashboard_shows_the_reviewed_panels_and_queries(name: str) -> None:
    expected = yaml.safe_load(PANEL_QUERIES.read_text())
    assert sorted(expected) == sorted(rendered())
    assert shown(json.loads(rendered()[name])) == expected[name]


def test_the_drift_check_notices_a_hand_edit(tmp_path: Path) -> None:
    assert main(["write", "--out", str(tmp_path)]) == 0
    assert main(["check", "--out", str(tmp_path)]) == 0
    edited = tmp_path / "kafka.json"
    edited.write_text(edited.read_text().replace('"Kafka"', '"Kafka (edited)"'))
    (tmp_path / "old.json").write_text("{}")
    assert stale(tmp_path) == ["kafka.json", "old.json"]
    assert main(["check", "--out", str(tmp_path)]) == 1


def test_there_are_the_four_dashboards_with_unique_uids_and_titles() -> None:
    dashboards = [load(p) for p in FILES]
    titles = {d["title"] for d in dashboards}
    assert titles == {"Streaming latency", "Gateway scaling", "Playback QoE", "Kafka"}
    assert len({d["uid"] for d in dashboards}) == len(dashboards)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_dashboard_loads_through_provisioning_without_import_placeholders(path: Path) -> None:
    text = path.read_text()
    dashboard = load(path)
    assert "__inputs" not in dashboard
    assert "${DS_" not in text
    assert "id" not in dashboard  # Grafana assigns it; a fixed one clashes on import
    # Grafana 11's schema or later: older ones make Grafana rewrite panels as it loads them.
    assert dashboard["schemaVersion"] >= 39
    assert re.fullmatch(r"[a-z0-9-]{1,40}", dashboard["uid"])
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    source = variables["datasource"]
    assert source["type"] == "datasource"
    assert source["query"] == "prometheus"
    assert source["current"]["value"] == "prometheus"  # kube-prometheus-stack's uid


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_every_panel_queries_the_datasource_variable_with_unique_ids(path: Path) -> None:
    dashboard = load(path)
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert all(isinstance(i, int) and i > 0 for i in ids)  # Grafana's own start at 1
    for panel in panels(dashboard):
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"], panel["title"]
        assert panel["title"]
        assert panel["description"] is not None
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"]
            assert target["expr"].strip()
    for variable in dashboard["templating"]["list"][1:]:
        assert variable["datasource"] == {"type": "prometheus", "uid": "${datasource}"}


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_panels_fit_the_grid_without_overlapping(path: Path) -> None:
    boxes = [p["gridPos"] for p in load(path)["panels"]]
    for box in boxes:
        assert box["x"] >= 0
        assert box["w"] > 0
        assert box["x"] + box["w"] <= 24
    for a, b in combinations(boxes, 2):
        apart = (
            a["x"] + a["w"] <= b["x"]
            or b["x"] + b["w"] <= a["x"]
            or a["y"] + a["h"] <= b["y"]
            or b["y"] + b["h"] <= a["y"]
        )
        assert apart, (a, b)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_queries_use_only_variables_the_dashboard_defines(path: Path) -> None:
    dashboard = load(path)
    defined = {v["name"] for v in dashboard["templating"]["list"]}
    builtin = {"__rate_interval", "__interval", "__range"}
    queries = [t["expr"] for p in panels(dashboard) for t in p["targets"]]
    queries += [v["query"] for v in dashboard["templating"]["list"][1:]]
    for query in queries:
        used = set(re.findall(r"\$\{?(\w+)", query))
        assert used <= defined | builtin, (query, used - defined - builtin)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_every_cross_host_latency_panel_says_it_assumes_synchronized_clocks(path: Path) -> None:
    cross_host = ("gateway_frame_latency_seconds", "gateway_event_latency_seconds")
    for panel in panels(load(path)):
        if any(m in t["expr"] for t in panel["targets"] for m in cross_host):
            assert CLOCK_NOTE in panel["description"], panel["title"]


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_queries_filter_by_namespace_and_never_by_job(path: Path) -> None:
    for panel in panels(load(path)):
        for target in panel["targets"]:
            assert 'namespace="$namespace"' in target["expr"], panel["title"]
            assert "job=" not in target["expr"], panel["title"]
