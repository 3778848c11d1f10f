"""`make run GATEWAYS=2`, then `make scale GATEWAYS=3` and `GATEWAYS=1`, as a user runs
them: the whole local stack (its own broker, cameras, event-sim, Prometheus), the gateway
replicas behind nginx on the gateway's port."""

from __future__ import annotations

import collections
import json
import signal
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import requests
from rts_common.net import port_in_use
from rts_devstack import launch
from rts_devstack.processes import ServiceGroup, ServiceProcess
from rts_devstack.stack import launch_stack

SCRAPE = 1.0


def answered_by(url: str, count: int = 12) -> collections.Counter[str]:
    """Which replicas answer new browsers (no cookie) through nginx."""
    return collections.Counter(
        requests.get(f"{url}/login", timeout=5).headers["X-Gateway-Replica"] for _ in range(count)
    )


def scale(group: ServiceGroup, data: Path, replicas: int) -> str:
    run = group.start(
        launch.process("scale", ["rts-devstack", "scale", replicas, "--data-dir", data])
    )
    code = run.wait_exit(240)
    assert code == 0, run.log()
    return run.log()


def query(prometheus: str, promql: str) -> list[dict[str, Any]]:
    url = f"{prometheus}/api/v1/query?query={urllib.parse.quote(promql)}"
    with urllib.request.urlopen(url, timeout=5) as response:
        result: list[dict[str, Any]] = json.load(response)["data"]["result"]
    return result


def wait_pods(process: ServiceProcess, prometheus: str, pods: set[str]) -> None:
    """Prometheus scrapes exactly these gateway pods, each telling its replica name."""

    def scraped() -> bool:
        up = query(prometheus, 'up{job="gateway"} == 1')
        info = query(prometheus, 'rts_build_info{job="gateway"}')
        named = {r["metric"]["pod"] for r in info if r["metric"]["pod"] == r["metric"]["replica"]}
        return {r["metric"]["pod"] for r in up} == pods and pods <= named

    process.wait_for(scraped, 60, f"Prometheus scraping {sorted(pods)}")


# The broker, two cameras, event-sim, Prometheus and up to three replicas start here: on a
# busy 2-core machine that alone can take a few minutes.
@pytest.mark.timeout(900)
def test_make_run_with_gateways_then_make_scale(tmp_path: Path) -> None:
    with ServiceGroup() as group:
        spec, ports = launch_stack(
            tmp_path, group.ports, "--gateways", "2", "--scrape-interval", f"{SCRAPE:g}", replicas=3
        )
        gateway = ports["gateway_port"]
        prometheus = f"http://127.0.0.1:{ports['prometheus_port']}"
        front = f"http://127.0.0.1:{gateway}"
        stack = group.start(spec)
        stack.wait_line("dashboard ready", timeout=240)
        assert set(answered_by(front)) == {"gateway-1", "gateway-2"}
        wait_pods(stack, prometheus, {"gateway-1", "gateway-2"})

        said = scale(group, tmp_path, 3)
        assert "gateway-3 ready" in said
        assert said.rstrip().endswith("ok")
        assert set(answered_by(front)) == {"gateway-1", "gateway-2", "gateway-3"}
        wait_pods(stack, prometheus, {"gateway-1", "gateway-2", "gateway-3"})

        said = scale(group, tmp_path, 1)
        assert "stopped gateway-2, gateway-3" in said
        assert set(answered_by(front)) == {"gateway-1"}
        assert not port_in_use(gateway + 2)
        assert not port_in_use(gateway + 3)
        wait_pods(stack, prometheus, {"gateway-1"})

        stack.signal(signal.SIGINT)
        assert stack.wait_exit(90) == 0, stack.log()
    assert not port_in_use(gateway)
    deadline = time.monotonic() + 10
    while port_in_use(gateway + 1):
        assert time.monotonic() < deadline, "gateway-1 outlived the stack"
        time.sleep(0.2)
