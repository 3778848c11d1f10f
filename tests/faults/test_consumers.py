"""The gateway's consumer groups through a long pause of the whole process: longer than the
group's session timeout, so the group gives its partitions away; when the process runs
again, it rejoins, takes them back and goes on counting, without a restart."""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.faults.conftest import MakeStack


@pytest.mark.timeout(600)
def test_a_gateway_paused_past_its_session_timeout_rejoins_and_goes_on(
    make_stack: MakeStack,
) -> None:
    stack = make_stack()
    sim = stack.event_sim("--rate", "200", "--users", "2000", "--seed", "8")
    gateway = stack.gateway()
    gateway.wait_ready(timeout=60)
    topic = stack.prefix + "playback-events"
    counted = "gateway_playback_events_total"
    gateway.wait_for(lambda: gateway.metric(counted) > 500, 60, "events counted")
    lost_before = gateway.metric("gateway_rebalances_total", kind="lost")

    # The whole gateway (master and worker) stops, as a process stalled by its host would.
    pids = [gateway.proc.pid, *_children(gateway.proc.pid)]
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    time.sleep(50)  # the group's session timeout is 45 s
    for pid in pids:
        os.kill(pid, signal.SIGCONT)
    resumed = time.monotonic()

    gateway.wait_for(
        lambda: gateway.metric("gateway_partitions_assigned", topic=topic) == 3,
        90,
        "its partitions back",
    )
    before = gateway.metric(counted)
    gateway.wait_for(lambda: gateway.metric(counted) > before + 200, 60, "counting again")
    gateway.wait_for(gateway.ready, 60, "readiness")
    lost = gateway.metric("gateway_rebalances_total", kind="lost") - lost_before
    print(
        f"partitions back and counting {time.monotonic() - resumed:.1f}s after the pause; "
        f"assignments lost meanwhile: {lost:.0f}"
    )
    assert gateway.get("/healthz")[0] == 200
    assert sim.running
    assert gateway.running


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as children:
        return [int(child) for child in children.read().split()]
