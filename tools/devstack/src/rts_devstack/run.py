"""`make run`: the broker, the topics and every service of the plan (stack.py), under one
supervisor, and `make scale`'s requests while it runs.

Order matters both ways: the broker and topics come up before any service, and on
Ctrl-C the services stop first (flushing producers, committing offsets) while the broker
they flush to is still there.
"""

from __future__ import annotations

import functools
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
from rts_common.kafka import admin_client, wait_for_brokers
from rts_common.lifecycle import shutdown_event
from rts_common.logs import configure_logging
from rts_common.net import port_in_use
from rts_observability import prometheus

from rts_devstack import proxy
from rts_devstack.broker import LocalKafka
from rts_devstack.distribution import BrokerError, repo_root
from rts_devstack.fleet import Fleet, ScaleError, control_socket, serve
from rts_devstack.launch import Launch
from rts_devstack.processes import ServiceProcess, write_files
from rts_devstack.runlock import RunHeld, RunLock, describe_leftovers, stop_leftovers
from rts_devstack.stack import (
    StackSettings,
    data_path,
    gateway_proxy,
    gateway_replica,
    gateway_secret,
    installed,
    login_link,
    plan,
    prometheus_launch,
)
from rts_devstack.supervisor import Exit, Output, Restarts, Supervisor

log = logging.getLogger("devstack")


def run(settings: StackSettings) -> int:
    """Take the data folder (one run at a time), clean what a dead run left, run the
    stack until Ctrl-C (or until a process keeps dying), stop it in order."""
    output = Output()
    say = functools.partial(output.line, "devstack")
    if settings.services and settings.gateways and proxy.binary() is None:
        say(
            "GATEWAYS needs nginx (Debian/Ubuntu: apt-get install nginx, "
            "or `sudo make system-deps`)"
        )
        return 1
    lock = RunLock(data_path(settings))
    try:
        previous = lock.acquire(
            dashboard=f"http://127.0.0.1:{settings.gateway_port}/"
            if settings.services and installed("rts_gateway")
            else None,
            kafka=f"127.0.0.1:{settings.kafka_port}",
        )
    except RunHeld as held:
        for line in held.describe():
            say(line)
        say("so this one does not start (and changed nothing)")
        return 1
    data = data_path(settings)
    metrics_ports = [settings.kafka_metrics_port] if settings.kafka_metrics_port else None
    kafka = LocalKafka(data / "kafka", port=settings.kafka_port, metrics_ports=metrics_ports)
    if previous is not None:
        leftovers = previous.leftovers()
        broker = kafka.pid(1)
        if leftovers or broker:
            pids = {name: p.pid for name, p in leftovers.items()}
            say(describe_leftovers(previous, pids | ({BROKER: broker} if broker else {})))
            # Services first, as at every stop, while their broker can take what they
            # flush: thawed, if it was frozen with them.
            kafka.resume_node(1)
            stop_leftovers(leftovers, say)
            kafka.stop()
    code = _run(settings, kafka, lock, output)
    lock.release()
    return code


def _run(settings: StackSettings, kafka: LocalKafka, lock: RunLock, output: Output) -> int:
    stop = shutdown_event()
    say = functools.partial(output.line, "devstack")
    root = repo_root()
    data = data_path(settings)
    if kafka.running():
        say("stopping the broker a previous run (or `make kafka-start`) left running")
        kafka.stop()
    started = time.monotonic()
    say(f"starting Kafka {kafka.dist.version} on {kafka.bootstrap}")
    try:
        kafka.start()
    except BrokerError as exc:
        say(f"error: {exc}")
        return 1
    tail = threading.Thread(target=_tail, args=(kafka.nodes[0].log_file, output, stop), daemon=True)
    tail.start()
    _prepare_topics(settings, kafka, output, started)
    supervisor = Supervisor(output, cwd=root, record=lock.record)
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
    watch = Watch(settings, kafka, supervisor, fleet, output, stop, broker_started=started)
    try:
        failed = watch.until_stopped()
    finally:
        say("stopping services")
        supervisor.stop_all()
        say("stopping Kafka")
        kafka.stop()
        say("stopped")
    if failed:
        say(f"stopped because {failed}")
        return 1
    return 0


class Watch:
    """`make run`'s eye on its processes: one that ends on its own (the broker too) is
    reported (which, how, its last lines) and started again after Restarts' delay, a
    gateway replica or nginx through the Fleet (a replica rejoins nginx once ready);
    past the restart limit, everything stops."""

    def __init__(
        self,
        settings: StackSettings,
        kafka: LocalKafka,
        supervisor: Supervisor,
        fleet: Fleet | None,
        output: Output,
        stop: threading.Event,
        *,
        broker_started: float,
    ) -> None:
        self.kafka = kafka
        self.supervisor = supervisor
        self.fleet = fleet
        self.output = output
        self.stop = stop
        self.restarts = Restarts(settings.restarts)
        self.due: dict[str, float] = {}  # name: when to start it again
        self.broker_started = broker_started

    def say(self, line: str) -> None:
        self.output.line("devstack", line)

    def until_stopped(self) -> str:
        """Watch until Ctrl-C (returns "") or a process dies once too often (returns why)."""
        while not self.stop.wait(0.5):
            for ended in [*self.supervisor.exited(), *self._broker_exits()]:
                failed = self._ended(ended)
                if failed:
                    return failed
            now = time.monotonic()
            for name in [n for n, when in self.due.items() if when <= now]:
                del self.due[name]
                failed = self._start_again(name)
                if failed:
                    return failed
        return ""

    def _ended(self, ended: Exit) -> str:
        if self.fleet is not None:
            try:
                self.fleet.exited(ended.name)  # out of nginx until it is ready again
            except (ScaleError, ValueError, TimeoutError) as exc:
                self.say(f"nginx was not told that {ended.name} is gone: {exc}")
        delay = self.restarts.after(ended.name, ended.uptime)
        if delay is None:
            limit = self.restarts.limit
            why = (
                f"{ended.describe()}, and RESTARTS is 0"
                if limit == 0
                else f"{ended.describe()}, {limit} restarts in a row did not keep it up"
            )
            self._report(ended, f"{why}: stopping everything")
            return why
        self.due[ended.name] = time.monotonic() + delay
        count = self.restarts.count(ended.name)
        self._report(
            ended,
            f"{ended.describe()}; restarting it in {delay:.0f}s "
            f"(restart {count} of {self.restarts.limit} in a row)",
        )
        return ""

    def _report(self, ended: Exit, line: str) -> None:
        """The one line, then the process's last lines, set apart."""
        self.say(f"{line}; its last lines:" if ended.last_lines else line)
        for text in ended.last_lines:
            self.say(f"    {ended.name}: {text}")

    def _broker_exits(self) -> list[Exit]:
        ended = []
        for node_id, proc in self.kafka.exited().items():
            log_file = self.kafka.node(node_id).log_file
            uptime = time.monotonic() - self.broker_started
            ended.append(Exit(BROKER, proc.pid, proc.returncode, uptime, _last_lines(log_file)))
        return ended

    def _start_again(self, name: str) -> str:
        """Start `name` again; why not, when it cannot be."""
        if name == BROKER:
            self.kafka.start_node(1)
            self.broker_started = time.monotonic()
            threading.Thread(target=self._announce_broker, daemon=True).start()
        elif self.fleet is not None and self.fleet.owns(name):
            try:
                self.fleet.restart(name, self.say)
            except (ScaleError, ValueError, TimeoutError) as exc:
                return f"{name} could not be started again: {exc}"
        elif not self.supervisor.running(name) and self.supervisor.restart(name) is None:
            return f"{name} could not be started again (its setup failed)"
        return ""

    def _announce_broker(self) -> None:
        """Say when the restarted broker answers (the services resume by themselves)."""
        restarted = self.broker_started
        admin = admin_client(self.kafka.client_config(), quiet=True)
        while not self.stop.is_set() and restarted == self.broker_started:
            try:
                wait_for_brokers(admin, len(self.kafka.nodes), timeout=2.0)
            except TimeoutError:
                continue
            took = time.monotonic() - restarted
            self.say(
                f"Kafka answers again on {self.kafka.bootstrap} ({took:.1f}s after its restart)"
            )
            return


BROKER = "kafka"


def _last_lines(path: Path, count: int = 5) -> list[str]:
    """The last lines of a log file (its last 8 KiB)."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, 2)
            handle.seek(max(0, handle.tell() - 8192))
            text = handle.read().decode("utf-8", "replace")
    except OSError:
        return []
    return [line for line in text.splitlines() if line.strip()][-count:]


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
        if executable is None or supervisor.get("prometheus") is None:
            return
        launches = [*others, *(r.launch for r in replicas)]
        config = prometheus_launch(settings, executable, launches, broker_metrics)
        supervisor.remember(config)  # what a restart of Prometheus scrapes
        if supervisor.running("prometheus"):
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
