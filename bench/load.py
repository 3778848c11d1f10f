"""One measured step: the Node load generator against a server, with the server's CPU
and memory over the generator's measuring window, the machine's busy cores, and (with
--profile) py-spy attached to the server's worker."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from bench import profile
from bench.context import Bench, saturated
from bench.machine import CpuMeter
from bench.processes import GeneratorSilent, LoadGenerator, Proc

# The generator is one Node thread: near a full core, it is what limits the step.
GENERATOR_LIMIT_PERCENT = 85.0


def drive(
    bench: Bench,
    servers: Sequence[Proc],
    mode: str,
    config: Mapping[str, Any],
    label: str,
    *,
    profile_as: str = "",
    counters: Callable[[], dict[str, float]] | None = None,
) -> dict[str, Any]:
    """Run the generator (`mode` mjpeg|socketio) against `servers` (their CPU and memory
    are added up; py-spy watches the first). Returns the generator's result plus
    server_cpu_percent, server_rss_bytes (peak), generator_limited, cores_busy,
    workers_restarted (a server's worker died and was replaced: its figures are void),
    and with `counters` (server-side counts by name) their increase over the window as
    `counted`."""
    name = f"loadgen-{label}".replace(" ", "-").replace("/", "-")
    generator = LoadGenerator(bench.logs, mode, config, name)
    try:
        count = config.get("viewers") or config.get("clients") or 1
        try:
            generator.phase("measuring", timeout=120 + count / 50)
        except GeneratorSilent as silent:
            # The clients never all got going: an outcome of the step (a server whose
            # threads took the machine), not an error of the benchmark.
            for server in servers:
                server.check()
            return _unmeasured(count, str(silent))
        with bench.span(label) as span:
            workers = [server.worker_pid() for server in servers]
            counted = counters() if counters else {}
            meters = [CpuMeter(server.pid) for server in servers]
            peak = [sum(server.rss_bytes() for server in servers)]
            done = threading.Event()

            def watch_rss() -> None:
                while not done.wait(0.5):
                    peak[0] = max(peak[0], sum(server.rss_bytes() for server in servers))

            threading.Thread(target=watch_rss, daemon=True).start()
            spy = None
            if bench.profile and profile_as:
                spy = profile.start(
                    bench, servers[0].worker_pid(), profile_as, seconds=float(config["seconds"])
                )
            generator.phase("window-closed", timeout=float(config["seconds"]) + 120)
            done.set()
            server_cpu = sum(meter.percent() for meter in meters)
            window_count = (
                {k: v - counted.get(k, 0.0) for k, v in counters().items()} if counters else None
            )
            restarted = workers != [server.worker_pid() for server in servers]
        result = generator.result(timeout=120)
        result["server_cpu_percent"] = float("nan") if restarted else server_cpu
        result["workers_restarted"] = restarted
        if window_count is not None:
            result["counted"] = window_count
        result["server_rss_bytes"] = peak[0]
        if spy is not None:
            result["profile"] = profile.finish(spy)
        for server in servers:
            server.check()
    finally:
        generator.proc.stop()
    result["cores_busy"] = span["cores_busy"]
    result["load_average"] = span["load_average"]
    result["generator_limited"] = result["cpu_percent"] >= GENERATOR_LIMIT_PERCENT
    result["machine_saturated"] = saturated(span["cores_busy"])
    return result


def _unmeasured(count: int, reason: str) -> dict[str, Any]:
    """A step's result when its window never started: nothing arrived, nothing measured."""
    nan = float("nan")
    return {
        "unmeasured": reason,
        "viewers": count,
        "clients": count,
        "connected": 0,
        "served": 0,
        "fps_per_viewer": 0.0,
        "delivered": 0.0,
        "bytes_per_second": 0.0,
        "frames": 0,
        "messages_per_second": 0.0,
        "events_in_window": 0,
        "received": 0,
        "expected": 0,
        "errors": {},
        "latency_ms": {
            "count": 0,
            "p50": None,
            "p90": None,
            "p99": None,
            "p999": None,
            "max": None,
            "cdf": [],
        },
        "cpu_percent": nan,
        "server_cpu_percent": nan,
        "server_rss_bytes": 0,
        "workers_restarted": False,
        "generator_limited": False,
        "machine_saturated": False,
        "cores_busy": [],
        "load_average": nan,
    }


def limit_note(label: str, result: Mapping[str, Any]) -> str | None:
    """A sentence when the step was limited by something other than the server, or its
    figures are void."""
    if result.get("unmeasured"):
        return (
            f"{label}: not measured: the clients were not all connected and warm after "
            f"the time allowed ({result['unmeasured']})"
        )
    if result.get("workers_restarted"):
        return (
            f"{label}: a server's worker was killed and restarted during the step "
            "(gunicorn's worker timeout: its event loop stopped answering for 30 s); "
            "what the clients received is reported, the server's CPU is not"
        )
    if result["generator_limited"]:
        return (
            f"{label}: the load generator used {result['cpu_percent']:.0f} % of a core: "
            "it, not the server, was the limit of this step"
        )
    if result["machine_saturated"]:
        busy = ", ".join(f"{b:.0f} %" for b in result["cores_busy"])
        return (
            f"{label}: the machine's cores were busy {busy}: server, generator and "
            "broker competed for them, so this step measures the machine as much as the "
            "server"
        )
    return None
