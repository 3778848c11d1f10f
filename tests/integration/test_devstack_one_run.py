"""One `make run` per checkout (per data folder): a second one is refused while the first
keeps serving, and a run whose supervisor was killed leaves nothing that the next run
does not stop. The whole local stack, as a user runs it (`rts-devstack run`)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
from dataclasses import replace
from pathlib import Path

import pytest
import requests
from rts_devstack import launch
from rts_devstack.broker import LocalKafka
from rts_devstack.processes import ServiceGroup, ServiceProcess, http_get
from rts_devstack.runlock import Process, held
from rts_devstack.stack import launch_stack

# The broker, two cameras, event-sim, the gateway, the probe and Prometheus start in a
# minute on an idle machine, in several on a loaded one.
READY = 480


def broker(data: Path, ports: dict[str, int]) -> Process:
    """The stack's broker (its pid file), as a process that cannot be mistaken."""
    pid_file = LocalKafka(data / "kafka", port=ports["kafka_port"]).nodes[0].pid_file
    return Process.of(int(pid_file.read_text()))


def tool(group: ServiceGroup, *args: object) -> ServiceProcess:
    """`rts-devstack ARGS` (what `make scale`, `make login-url`, `make kafka-stop` run),
    run to its end."""
    done = group.start(launch.process("rts-devstack", ["rts-devstack", *args]))
    done.wait_exit(120)
    return done


@pytest.mark.timeout(1200)
def test_a_second_make_run_is_refused_while_the_first_keeps_serving(tmp_path: Path) -> None:
    with ServiceGroup() as group:
        spec, ports = launch_stack(tmp_path, group.ports)
        gateway = f"http://127.0.0.1:{ports['gateway_port']}"
        first = group.start(spec)
        first.wait_line("dashboard ready", timeout=READY)
        its_broker = broker(tmp_path, ports)

        second = group.start(replace(spec, name="second"))
        assert second.wait_exit(120) == 1, second.log()
        said = second.log(None)
        assert f"another `make run` uses {tmp_path}: pid {first.proc.pid}, running since" in said
        assert f"its dashboard: {gateway}/" in said
        assert "changed nothing" in said
        assert "stopping" not in said
        assert "starting" not in said

        assert its_broker.alive(), first.log()
        assert broker(tmp_path, ports) == its_broker
        assert http_get(f"{gateway}/login")[0] == 200
        first.wait_http(f"http://127.0.0.1:{ports['gateway_ops_port']}/readyz", timeout=60)

        # `make login-url` signs in to the run that holds the folder.
        login = tool(group, "login-url", "--data-dir", tmp_path, "--camera", "cam-test")
        assert login.proc.returncode == 0, login.log()
        assert login.log().strip().startswith(f"{gateway}/login#token=")
        # `make kafka-stop` (and so `make clean-data`) leaves the running stack's broker alone.
        refused = tool(group, "kafka", "stop", "--data-dir", tmp_path / "kafka")
        assert refused.proc.returncode == 1
        assert f"pid {first.proc.pid}" in refused.log()
        assert its_broker.alive()

        assert "was killed" not in first.log(None)
        assert "exited with" not in first.log(None)
        first.signal(signal.SIGINT)
        assert first.wait_exit(120) == 0, first.log()
    assert not held(tmp_path)


@pytest.mark.timeout(1500)
def test_what_a_killed_run_left_running_is_stopped_by_the_next_run(tmp_path: Path) -> None:
    left: dict[str, Process] = {}
    try:
        with ServiceGroup() as group:
            spec, ports = launch_stack(tmp_path, group.ports, "--gateways", "1", replicas=1)
            front = f"http://127.0.0.1:{ports['gateway_port']}"
            first = group.start(spec)
            first.wait_line("dashboard ready", timeout=READY)
            record = json.loads((tmp_path / "devstack.json").read_text())
            left = {name: Process.from_json(c) for name, c in record["children"].items()}
            assert {"nginx", "gateway-1", "event-sim", "cam-test"} <= set(left)
            left["kafka"] = broker(tmp_path, ports)
            # Frozen, as hung processes are: none can act on the SIGTERM its supervisor's
            # death sends it (PR_SET_PDEATHSIG), so all stay behind, holding their ports.
            for process in left.values():
                os.killpg(process.pid, signal.SIGSTOP)
            os.kill(first.proc.pid, signal.SIGKILL)
            first.wait_exit(30)
            assert all(p.alive() for p in left.values())
            assert not held(tmp_path)

            # Against a dead run, `make scale` and `make login-url` refuse.
            for args in (["scale", 2], ["login-url"]):
                refused = tool(group, *args, "--data-dir", tmp_path)
                assert refused.proc.returncode == 1, refused.log()
                assert "no `make run` is running with the data folder" in refused.log()

            second = group.start(replace(spec, name="second"))
            second.wait_line("ended without stopping its processes", timeout=120)
            second.wait_line("dashboard ready", timeout=READY)
            said = second.log(None)
            assert f"the run before (pid {first.proc.pid}, since " in said
            for name in ("nginx", "gateway-1", "event-sim", "kafka"):
                assert f"{name} (pid {left[name].pid})" in said
            assert not any(p.members() for p in left.values()), said  # workers included
            answer = requests.get(f"{front}/login", timeout=10)
            assert answer.status_code == 200
            assert answer.headers["X-Gateway-Replica"] == "gateway-1"
            second.signal(signal.SIGINT)
            assert second.wait_exit(120) == 0, second.log()
    finally:
        for process in left.values():  # whatever happened, nothing stays frozen
            if process.alive():
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.pid, signal.SIGKILL)
