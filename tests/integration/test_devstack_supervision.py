"""`make run` notices a process that dies, the broker included: it says which, how and
its last lines, and starts it again (RESTARTS), or stops everything with exit code 1
(RESTARTS=0, or a process that keeps dying). The whole local stack, as a user runs it."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
from rts_common.net import port_in_use
from rts_devstack.broker import LocalKafka
from rts_devstack.processes import ServiceGroup, http_get, metric_value
from rts_devstack.runlock import Process, held
from rts_devstack.stack import launch_stack

READY = 480


def broker(data: Path, ports: dict[str, int]) -> Process:
    pid_file = LocalKafka(data / "kafka", port=ports["kafka_port"]).nodes[0].pid_file
    return Process.of(int(pid_file.read_text()))


def acknowledged(metrics: str) -> float:
    """Events event-sim's broker acknowledged so far."""
    return metric_value(http_get(metrics)[1], "eventsim_events_total")


@pytest.mark.timeout(1200)
def test_a_broker_killed_under_make_run_is_reported_and_restarted(tmp_path: Path) -> None:
    with ServiceGroup() as group:
        spec, ports = launch_stack(tmp_path, group.ports)
        gateway_ready = f"http://127.0.0.1:{ports['gateway_ops_port']}/readyz"
        eventsim_metrics = f"http://127.0.0.1:{ports['eventsim_ops_port']}/metrics"
        stack = group.start(spec)
        stack.wait_line("dashboard ready", timeout=READY)
        killed = broker(tmp_path, ports)

        os.kill(killed.pid, signal.SIGKILL)
        stack.wait_line(f"kafka (pid {killed.pid}) was killed by SIGKILL after ", timeout=60)
        line = next(x for x in stack.output if f"kafka (pid {killed.pid})" in x)
        assert "restarting it in 1s (restart 1 of 5 in a row); its last lines:" in line
        stack.wait_line("Kafka answers again on", timeout=180)
        restarted = broker(tmp_path, ports)
        assert restarted.alive()
        assert restarted != killed
        # What the services make of it: they resume by themselves.
        stack.wait_http(gateway_ready, timeout=180)
        sent = acknowledged(eventsim_metrics)
        stack.wait_for(
            lambda: acknowledged(eventsim_metrics) > sent + 100,
            120,
            "event-sim's events acknowledged again",
        )

        # A service that dies is reported and started again the same way.
        record = json.loads((tmp_path / "devstack.json").read_text())
        gateway = Process.from_json(record["children"]["gateway"])
        os.kill(gateway.pid, signal.SIGKILL)
        stack.wait_line(f"gateway (pid {gateway.pid}) was killed by SIGKILL after ", timeout=60)
        stack.wait_for(
            lambda: (
                gateway.pid
                != json.loads((tmp_path / "devstack.json").read_text())["children"]["gateway"][
                    "pid"
                ]
            ),
            60,
            "the gateway started again",
        )
        stack.wait_http(gateway_ready, timeout=180)

        stack.signal(signal.SIGINT)
        assert stack.wait_exit(120) == 0, stack.log()
        assert "stopped because" not in stack.log(None)


@pytest.mark.timeout(600)
def test_with_restarts_0_a_dead_broker_stops_everything_with_exit_code_1(
    tmp_path: Path,
) -> None:
    with ServiceGroup() as group:
        spec, ports = launch_stack(tmp_path, group.ports, "--no-services", "--restarts", "0")
        stack = group.start(spec)
        stack.wait_line("Ctrl-C stops everything", timeout=240)
        killed = broker(tmp_path, ports)
        os.kill(killed.pid, signal.SIGKILL)
        assert stack.wait_exit(120) == 1, stack.log()
        said = stack.log(None)
        line = next(x for x in stack.output if f"kafka (pid {killed.pid}) was killed by" in x)
        assert "RESTARTS is 0: stopping everything; its last lines:" in line
        assert "stopped because kafka" in said
        assert said.index("stopping everything") < said.index("stopping Kafka")
        assert not port_in_use(ports["kafka_port"])
        assert not held(tmp_path)
