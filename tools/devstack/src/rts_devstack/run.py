"""`make run`: the broker, the topics and every service of the plan (stack.py), under one
supervisor, and `make scale`'s requests while it runs.

Order matters both ways: the broker and topics come up before any service, and on
Ctrl-C the services stop first (flushing producers, committing offsets) while the broker
they flush to is still there.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
import urllib.request
import webbrowser
from collections.abc import Sequence
from pathlib import Path

from rts_common.contracts import VIDEO_FRAMES
from rts_common.lifecycle import shutdown_event
from rts_common.logs import configure_logging
from rts_common.net import port_in_use
from rts_observability import prometheus

from rts_devstack import proxy
from rts_devstack.broker import LocalKafka
from rts_devstack.distribution import BrokerError, repo_root
from rts_devstack.fleet import Fleet, control_socket, serve
from rts_devstack.launch import Launch
from rts_devstack.processes import ServiceProcess, write_files
from rts_devstack.stack import (
    StackSettings,
    data_path,
    gateway_proxy,
    gateway_replica,
    gateway_secret,
    login_link,
    plan,
    prometheus_launch,
)
from rts_devstack.supervisor import Output, Supervisor

log = logging.getLogger("devstack")


def run(settings: StackSettings) -> int:
    stop = shutdown_event()
    output = Output()
    root = repo_root()
    data = data_path(settings)
    if settings.services and settings.gateways and proxy.binary() is None:
        output.line(
            "devstack",
            "GATEWAYS needs nginx (Debian/Ubuntu: apt-get install nginx, "
            "or `sudo make system-deps`)",
        )
        return 1
    metrics_ports = [settings.kafka_metrics_port] if settings.kafka_metrics_port else None
    kafka = LocalKafka(data / "kafka", port=settings.kafka_port, metrics_ports=metrics_ports)
    if kafka.running():
        output.line("devstack", "stopping the broker a previous run left behind")
        kafka.stop()
    started = time.monotonic()
    output.line("devstack", f"starting Kafka {kafka.dist.version} on {kafka.bootstrap}")
    try:
        kafka.start()
    except BrokerError as exc:
        output.line("devstack", f"error: {exc}")
        return 1
    tail = threading.Thread(target=_tail, args=(kafka.nodes[0].log_file, output, stop), daemon=True)
    tail.start()
    _prepare_topics(settings, kafka, output, started)
    supervisor = Supervisor(output, cwd=root)
    services = (
        plan(settings, kafka.bootstrap, kafka.metrics_targets, gateway_secret(data))
        if settings.services
        else []
    )
    services = _check_prometheus(settings, services, output)
    processes = [p for p in map(supervisor.start, services) if p is not None]
    _banner(output, kafka, services)
    fleet = None
    if settings.services and settings.gateways:
        fleet = _fleet(settings, supervisor, services, kafka.metrics_targets)
        fleet.adopt(processes)
    front = next((s for s in services if s.name in ("gateway", proxy.NGINX)), None)
    gateway = next((s for s in services if s.job == "gateway"), None)
    if front is not None and front.url and gateway is not None and gateway.ready:
        threading.Thread(
            target=_announce_dashboard,
            args=(
                front.url,
                gateway.ready,
                gateway_secret(data),
                output,
                settings.open_browser,
                stop,
            ),
            daemon=True,
        ).start()
    threading.Thread(
        target=serve, args=(control_socket(data), fleet, output, stop), daemon=True
    ).start()
    try:
        while not stop.wait(0.5):
            for name, code in supervisor.exited().items():
                output.line("devstack", f"{name} exited with code {code}")
                if fleet is not None and fleet.exited(name):
                    output.line(
                        "devstack",
                        f"{name} is out of nginx until `make scale GATEWAYS=N` starts it again",
                    )
    finally:
        output.line("devstack", "stopping services")
        supervisor.stop_all()
        output.line("devstack", "stopping Kafka")
        kafka.stop()
        output.line("devstack", "stopped")
    return 0


def _prepare_topics(
    settings: StackSettings, kafka: LocalKafka, output: Output, started: float
) -> None:
    """The topics, and the video's retention applied at every start (to a topic that
    exists too)."""
    created = kafka.create_topics()
    retention = settings.video_retention_minutes
    kafka.set_topic_configs(VIDEO_FRAMES.name, {"retention.ms": str(round(retention * 60_000))})
    elapsed = time.monotonic() - started
    created_text = ", ".join(created) or "none (all existed)"
    output.line("devstack", f"Kafka ready in {elapsed:.1f}s; topics created: {created_text}")
    output.line(
        "devstack",
        f"{VIDEO_FRAMES.name} keeps {retention:g} minutes of video (VIDEO_RETENTION_MINUTES)",
    )


def _fleet(
    settings: StackSettings,
    supervisor: Supervisor,
    services: list[Launch],
    broker_metrics: Sequence[str],
) -> Fleet:
    """The replicas `make run` started, to scale them later; Prometheus follows them."""
    secret = gateway_secret(data_path(settings))
    common = next(s.env for s in services if s.job == "gateway")
    others = [s for s in services if s.job != "gateway" and s.name != "prometheus"]
    executable = prometheus.binary()

    def replica(name: str) -> Launch:
        return gateway_replica(settings, secret, name).with_env(common)

    def retarget(replicas: list[ServiceProcess]) -> None:
        if executable is None or not supervisor.running("prometheus"):
            return
        launches = [*others, *(r.launch for r in replicas)]
        config = prometheus_launch(settings, executable, launches, broker_metrics)
        write_files(config, supervisor.cwd)
        supervisor.signal("prometheus", signal.SIGHUP)

    return Fleet(
        supervisor.start,
        gateway_proxy(settings),
        replica,
        on_change=retarget,
        forget=supervisor.forget,
    )


def _check_prometheus(
    settings: StackSettings, services: list[Launch], output: Output
) -> list[Launch]:
    """The services without Prometheus when it cannot start, saying why."""
    if not settings.services or not settings.prometheus:
        return services
    if prometheus.binary() is None:
        output.line(
            "devstack",
            "Prometheus is not installed, so it is not started (Debian/Ubuntu: "
            "apt-get install prometheus, or `sudo make system-deps`)",
        )
        return services
    if port_in_use(settings.prometheus_port):
        output.line(
            "devstack",
            f"port {settings.prometheus_port} is taken (by the system's own Prometheus? "
            "`sudo systemctl disable --now prometheus`), so Prometheus is not started; "
            "pick another port: PROMETHEUS_PORT=9091 make run",
        )
        return [s for s in services if s.name != "prometheus"]
    return services


def _announce_dashboard(
    url: str, ready: str, secret: str, output: Output, open_browser: bool, stop: threading.Event
) -> None:
    """Say (and show) the dashboard, with a sign-in link, once the gateway answers ready."""
    while not stop.wait(0.5):
        try:
            with urllib.request.urlopen(ready, timeout=2) as response:  # noqa: S310
                if response.status == 200:
                    break
        except OSError:
            continue
    else:
        return
    if secret:
        url = login_link(url, secret)
        output.line("devstack", f"dashboard ready: {url}")
        output.line(
            "devstack",
            "(a one-time sign-in link, valid 10 minutes; `make login-url` prints another)",
        )
    else:
        output.line("devstack", f"dashboard ready: {url}")
    has_display = sys.platform == "darwin" or any(
        os.environ.get(v) for v in ("DISPLAY", "WAYLAND_DISPLAY")
    )
    if open_browser and has_display:
        webbrowser.open(url)


def _banner(output: Output, kafka: LocalKafka, services: list[Launch]) -> None:
    lines = [f"Kafka bootstrap: {kafka.bootstrap}   (data in {kafka.data_root})"]
    lines += [f"Kafka metrics (JMX exporter): http://{a}/metrics" for a in kafka.metrics_targets]
    lines += [f"{s.name}: {s.url or s.metrics}" for s in services if s.url or s.metrics]
    if not services:
        lines.append("no services are started (none installed yet, or --no-services)")
    lines.append("Ctrl-C stops everything: services first, then the broker")
    for line in lines:
        output.line("devstack", line)


def _tail(path: Path, output: Output, stop: threading.Event) -> None:
    """Show the broker's log (its own INFO state changes and every warning) in the stream."""
    with path.open("rb") as handle:
        handle.seek(0, 2)
        while not stop.is_set():
            line = handle.readline()
            if line:
                output.line("kafka", line.decode("utf-8", "replace"))
            else:
                time.sleep(0.2)


def main(argv: list[str] | None = None) -> int:
    settings = StackSettings.load(argv)
    configure_logging("devstack", settings.log_level, "console")
    return run(settings)


if __name__ == "__main__":
    sys.exit(main())
