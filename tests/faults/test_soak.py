"""The whole stack under steady load for a while: nothing of any service grows.

Every service's memory (RSS), open files, threads and, in the gateway, green threads are
sampled; what grows with a steady load is a leak. CI runs a few minutes
(SOAK_MINUTES, default 3); `make soak` runs an hour.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
from rts_devstack.processes import ServiceProcess, process_tree

from tests.faults.conftest import MakeStack, fresh_frame_age
from tests.fixtures.mjpeg import MjpegClient
from tests.fixtures.socketio import Listener

MINUTES = float(os.environ.get("SOAK_MINUTES", "3"))
WARM_UP = 45.0
EVERY = 5.0


def _sample(service: ServiceProcess) -> dict[str, float]:
    pids = process_tree(service.proc.pid)
    fds = threads = 0
    for pid in pids:
        try:
            fds += len(os.listdir(f"/proc/{pid}/fd"))
            status = Path(f"/proc/{pid}/status").read_text()
            threads += next(
                int(x.split()[1]) for x in status.splitlines() if x.startswith("Threads:")
            )
        except (OSError, StopIteration):
            continue
    sample = {"rss_mb": service.rss_bytes() / 1e6, "fds": fds, "threads": threads}
    if service.name == "gateway":
        sample["green_threads"] = service.metric("gateway_green_threads")
    return sample


def _slope_per_minute(times: list[float], values: list[float]) -> float:
    n = len(times)
    mean_t, mean_v = sum(times) / n, sum(values) / n
    cov = sum((t - mean_t) * (v - mean_v) for t, v in zip(times, values, strict=True))
    var = sum((t - mean_t) ** 2 for t in times) or 1.0
    return cov / var * 60


def _churn(url: str, camera: str, stop: threading.Event, errors: list[str]) -> None:
    """Viewers and dashboards that come and go, as people do; what breaks goes to
    `errors` (a thread's exception would otherwise only be a warning)."""
    while not stop.is_set():
        try:
            with_frames = MjpegClient(f"{url}/stream/{camera}", timeout=10)
            with_frames.parts_for(2.0)
            with_frames.close()
            listener = Listener(url)
            listener.client.emit("wall", {"on": True})
            stop.wait(2.0)
            listener.close()
        except Exception as exc:  # reported by the test
            errors.append(repr(exc))
            return


@pytest.mark.timeout(int(MINUTES * 60 + 600))
def test_a_steady_load_for_minutes_grows_nothing(make_stack: MakeStack) -> None:
    stack = make_stack()
    cameras = [stack.camera(f"cam-soak-{i}") for i in (1, 2)]
    sim = stack.event_sim("--rate", "200", "--users", "5000", "--seed", "33")
    gateway = stack.gateway("--release-after-seconds", "2")
    gateway.wait_ready(timeout=60)
    gateway.wait_for(lambda: fresh_frame_age(gateway, "cam-soak-1") < 2.0, 60, "a live frame")
    steady = [MjpegClient(f"{gateway.url}/stream/cam-soak-{i}") for i in (1, 2)]
    dashboards = [Listener(gateway.url) for _ in range(3)]
    stop = threading.Event()
    churn_errors: list[str] = []
    churn = threading.Thread(
        target=_churn, args=(gateway.url, "cam-soak-2", stop, churn_errors), daemon=True
    )
    readers = [
        threading.Thread(target=c.parts_for, args=(MINUTES * 60 + WARM_UP,), daemon=True)
        for c in steady
    ]
    for thread in (churn, *readers):
        thread.start()

    services = [gateway, sim, *cameras]
    series: dict[str, dict[str, list[float]]] = {s.name: {} for s in services}
    times: list[float] = []
    started = time.monotonic()
    end = started + WARM_UP + MINUTES * 60
    while time.monotonic() < end:
        now = time.monotonic() - started
        if now >= WARM_UP:
            times.append(now)
            for service in services:
                for key, value in _sample(service).items():
                    series[service.name].setdefault(key, []).append(value)
        time.sleep(EVERY)
    stop.set()
    # Its last round ends before the gateway is stopped under it.
    churn.join(timeout=30)
    for client in dashboards:
        client.close()

    problems = []
    third = max(1, len(times) // 3)
    for name, metrics in series.items():
        report = []
        for key, values in metrics.items():
            slope = _slope_per_minute(times, values)
            first, last = sorted(values[:third]), sorted(values[-third:])
            report.append(f"{key} {values[0]:.0f}→{values[-1]:.0f} ({slope:+.2f}/min)")
            # Beyond noise: the last third clearly above the first one.
            allowance = {
                "rss_mb": max(8.0, 0.08 * first[-1]),
                "fds": 3,
                "threads": 2,
                "green_threads": 8,
            }[key]
            if last[len(last) // 2] > first[-1] + allowance:
                problems.append(f"{name} {key} grew: {first[-1]:.0f} → {last[len(last) // 2]:.0f}")
        print(f"{name}: " + ", ".join(report))
    for service in services:
        assert service.running, f"{service.name} exited:\n{service.log()}"
    assert problems == []
    assert churn_errors == [], "viewers that come and go were refused or cut off"
