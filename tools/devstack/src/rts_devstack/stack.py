"""`make run`: the broker, the topics and every service, under one supervisor.

Order matters both ways: the broker and topics come up before any service, and on
Ctrl-C the services stop first (flushing producers, committing offsets) while the broker
they flush to is still there.

Prometheus, when installed, is one more service: it scrapes every other one (the ports
come from this plan, nowhere else) and the broker's JMX exporter, with the labels the
cluster's series have, and evaluates the chart's alert rules.

With `--gateways N` (`make run GATEWAYS=N`), N gateway replicas run behind nginx on the
gateway's port, and `make scale GATEWAYS=N` changes their number (fleet.py).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import webbrowser
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from rts_common.contracts import VIDEO_FRAMES
from rts_common.lifecycle import shutdown_event
from rts_common.logs import LoggingSettings, configure_logging
from rts_common.net import port_in_use
from rts_common.settings import setting
from rts_observability import prometheus

from rts_devstack import proxy
from rts_devstack.broker import BrokerError, LocalKafka, repo_root
from rts_devstack.fleet import NGINX, Fleet, control_socket, ready_url, replica_name, serve
from rts_devstack.supervisor import Output, Service, Supervisor

log = logging.getLogger("devstack")

GATEWAY_SECRET_FILE = "gateway-secret"  # noqa: S105 - a file name, not a secret


class StackSettings(LoggingSettings):
    """Run the whole platform locally on a real single-node Kafka broker."""

    program = "rts-devstack run"
    kafka_port: int = setting(
        9092,
        "Broker port on 127.0.0.1 (the controller uses the next one)",
        env="KAFKA_PORT",
        ge=1024,
        le=65534,
    )
    data_dir: Path = setting(
        Path(".data"), "Folder for broker data and generated samples", env="RTS_DATA_DIR"
    )
    gateway_port: int = setting(
        8000, "Port of the gateway (dashboard and streams)", env="GATEWAY_PORT", ge=1, le=65535
    )
    gateway_ops_port: int = setting(
        9130, "Port of the gateway's /metrics, /healthz, /readyz", ge=1, le=65535
    )
    gateways: int = setting(
        0,
        "Gateway replicas behind nginx on the gateway's port, replica i on the gateway's "
        "port + i and ops port + i (`make scale GATEWAYS=N` changes how many); 0: one "
        "gateway on the port itself, no nginx",
        env="GATEWAYS",
        ge=0,
        le=50,
    )
    test_camera_ops_port: int = setting(
        9101, "Port of the test-pattern camera's /metrics, /healthz, /readyz", ge=1, le=65535
    )
    sample_camera_ops_port: int = setting(
        9102, "Port of the sample-video camera's /metrics, /healthz, /readyz", ge=1, le=65535
    )
    eventsim_ops_port: int = setting(
        9110, "Port of event-sim's /metrics, /healthz, /readyz", ge=1, le=65535
    )
    probe_ops_port: int = setting(
        9120, "Port of the latency probe's /metrics, /healthz, /readyz", ge=1, le=65535
    )
    notifier_ops_port: int = setting(
        9140, "Port of the notifier's /metrics, /healthz, /readyz", ge=1, le=65535
    )
    kafka_metrics_port: int = setting(
        9404,
        "Port of the broker's JMX exporter /metrics (Strimzi's port; 0: no exporter)",
        ge=0,
        le=65535,
    )
    prometheus: bool = setting(
        True, "Start Prometheus when it is installed (--no-prometheus: don't)"
    )
    prometheus_port: int = setting(
        9090, "Port of Prometheus's web UI and API", env="PROMETHEUS_PORT", ge=1, le=65535
    )
    scrape_interval: float = setting(5.0, "Seconds between Prometheus's scrapes", ge=1, le=60)
    video_retention_minutes: float = setting(
        10.0,
        "How long video-frames keeps video, so it can be replayed, clipped and snapshotted "
        "(minutes; applied to the topic on every start). Storage: README, Retention",
        env="VIDEO_RETENTION_MINUTES",
        ge=1,
        le=7 * 24 * 60,
    )
    services: bool = setting(True, "Start the services (--no-services: broker and topics only)")
    open_browser: bool = setting(
        True, "Open the dashboard in a browser once the gateway is ready (when there is a display)"
    )


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def plan(
    settings: StackSettings,
    bootstrap: str,
    broker_metrics: Sequence[str] = (),
    gateway_secret: str = "",
) -> list[Service]:
    """The services that exist in this checkout, with their local configuration.

    `broker_metrics`: the brokers' JMX exporter addresses (host:port), for Prometheus;
    `gateway_secret`: the gateway's sign-in secret (empty: no sign-in).
    """
    common = {
        "KAFKA_BOOTSTRAP": bootstrap,
        "LOG_FORMAT": "console",
        "LOG_LEVEL": settings.log_level,
    }
    services: list[Service] = []
    # Each service adds its processes here as it is written.
    if installed("rts_capture"):
        services += _capture(settings)
    if installed("rts_eventsim"):
        services.append(_event_sim(settings))
    if installed("rts_gateway"):
        if settings.gateways:
            replicas = [
                gateway_replica(settings, gateway_secret, i)
                for i in range(1, settings.gateways + 1)
            ]
            services += [*replicas, _nginx(settings, replicas)]
        else:
            services.append(_gateway(settings, gateway_secret))
    if installed("rts_probe") and installed("rts_gateway"):
        services.append(_probe(settings, gateway_secret))
    if installed("rts_notifier"):
        services.append(_notifier(settings))
    services = [replace(s, env={**common, **s.env}) for s in services]
    executable = prometheus.binary() if settings.prometheus else None
    if executable:
        services.append(_prometheus(settings, executable, services, broker_metrics))
    return services


def _capture(settings: StackSettings) -> list[Service]:
    """Two cameras: the test pattern, and a sample video generated here (none is committed)."""
    samples = settings.data_dir / "samples"
    generate = [[sys.executable, "-m", "rts_capture.sample", str(samples)]]
    capture = [sys.executable, "-m", "rts_capture"]
    test_port, sample_port = settings.test_camera_ops_port, settings.sample_camera_ops_port
    test = [*capture, "--source", "test", "--camera-id", "cam-test"]
    # A door on the right of the pattern (the face walks into it) and the label masked.
    test += ["--zones", "door=0.6,0.05 0.98,0.05 0.98,0.78 0.6,0.78"]
    test += ["--masks", "label=0,0 0.35,0 0.35,0.1 0,0.1", "--ops-port", str(test_port)]
    # The face comes from scikit-image, which only the development environment has.
    if installed("skimage"):
        test += ["--test-face", str(samples / "face.png")]
    video = str(samples / "sample.mp4")
    sample = [*capture, "--source", video, "--camera-id", "cam-sample", "--loop"]
    # Cars and no faces: the face cascade would only cost CPU there.
    sample += ["--no-faces", "--ops-port", str(sample_port)]
    test_metrics = f"http://127.0.0.1:{test_port}/metrics"
    sample_metrics = f"http://127.0.0.1:{sample_port}/metrics"
    return [
        Service(
            "cam-test", test, url=test_metrics, setup=generate, metrics=test_metrics, job="capture"
        ),
        Service(
            "cam-sample",
            sample,
            url=sample_metrics,
            setup=generate,
            metrics=sample_metrics,
            job="capture",
        ),
    ]


def _event_sim(settings: StackSettings) -> Service:
    # 200 events/s from 20,000 viewers: enough viewers for a lifelike pace (see
    # services/event-sim/README.md), few enough to start within a couple of minutes.
    port = settings.eventsim_ops_port
    return Service(
        "event-sim",
        [sys.executable, "-m", "rts_eventsim"],
        {"EVENTSIM_RATE": "200", "EVENTSIM_USERS": "20000", "EVENTSIM_OPS_PORT": str(port)},
        url=f"http://127.0.0.1:{port}/metrics",
        metrics=f"http://127.0.0.1:{port}/metrics",
        job="event-sim",
    )


def _gateway(settings: StackSettings, secret: str) -> Service:
    port, ops = settings.gateway_port, settings.gateway_ops_port
    return Service(
        "gateway",
        [sys.executable, "-m", "rts_gateway", "--port", str(port), "--ops-port", str(ops)],
        {"GATEWAY_AUTH_SECRET": secret},
        url=f"http://127.0.0.1:{port}/",
        metrics=f"http://127.0.0.1:{ops}/metrics",
        job="gateway",
    )


def gateway_replica(settings: StackSettings, secret: str, index: int) -> Service:
    """Replica `index` (from 1) behind nginx: its own port and ops port, its name in every
    response."""
    name, port = replica_name(index), settings.gateway_port + index
    ops = settings.gateway_ops_port + index
    return Service(
        name,
        [
            sys.executable,
            "-m",
            "rts_gateway",
            "--port",
            str(port),
            "--host",
            "127.0.0.1",
            "--ops-port",
            str(ops),
            "--ops-host",
            "127.0.0.1",
        ],
        {"GATEWAY_AUTH_SECRET": secret, "GATEWAY_REPLICA": name},
        url=f"http://127.0.0.1:{port}/",
        metrics=f"http://127.0.0.1:{ops}/metrics",
        job="gateway",
    )


def data_path(settings: StackSettings) -> Path:
    return settings.data_dir if settings.data_dir.is_absolute() else repo_root() / settings.data_dir


def gateway_proxy(settings: StackSettings) -> proxy.Proxy:
    return proxy.Proxy(settings.gateway_port, data_path(settings) / "nginx")


def _nginx(settings: StackSettings, replicas: list[Service]) -> Service:
    """nginx on the gateway's port in front of the replicas, like the chart's ingress."""
    front = gateway_proxy(settings)
    config = front.render(
        {s.name: s.url.removeprefix("http://").rstrip("/") for s in replicas if s.url}
    )
    return Service(
        NGINX,
        front.command(proxy.binary() or "nginx"),
        url=f"{front.url}/",
        files={front.config_file: config},
    )


def _probe(settings: StackSettings, secret: str) -> Service:
    """One low-rate viewer per camera, as in the cluster: latency panels have data at once."""
    port = settings.probe_ops_port
    return Service(
        "latency-probe",
        [
            sys.executable,
            "-m",
            "rts_probe",
            "--gateway-url",
            f"http://127.0.0.1:{settings.gateway_port}",
            "--ops-port",
            str(port),
        ],
        {"PROBE_AUTH_SECRET": secret},
        url=f"http://127.0.0.1:{port}/metrics",
        metrics=f"http://127.0.0.1:{port}/metrics",
        job="latency-probe",
    )


def _notifier(settings: StackSettings) -> Service:
    """The notifier with no receiver: its events (the face in cam-test's door, a camera
    going offline) are in its log; NOTIFIER_WEBHOOKS and NOTIFIER_MQTT_HOST push them."""
    port = settings.notifier_ops_port
    return Service(
        "notifier",
        [sys.executable, "-m", "rts_notifier", "--ops-port", str(port)],
        {
            "NOTIFIER_RULES": "*/*=face,person,offline;cam-test/door=motion",
            "NOTIFIER_GATEWAY_URL": f"http://127.0.0.1:{settings.gateway_port}",
            **{k: v for k, v in os.environ.items() if k.startswith("NOTIFIER_")},
        },
        url=f"http://127.0.0.1:{port}/metrics",
        metrics=f"http://127.0.0.1:{port}/metrics",
        job="notifier",
    )


def _prometheus(
    settings: StackSettings, executable: str, services: list[Service], broker_metrics: Sequence[str]
) -> Service:
    """Prometheus scraping the services above and the brokers, with the chart's alerts."""
    targets = [
        prometheus.ScrapeTarget(s.job or s.name, s.name, s.metrics) for s in services if s.metrics
    ]
    targets += [
        prometheus.ScrapeTarget("kafka", f"kafka-{i}", f"http://{address}/metrics")
        for i, address in enumerate(broker_metrics, start=1)
    ]
    cfg = prometheus.config(
        targets,
        rule_files=prometheus.rule_files(repo_root()),
        scrape_interval=settings.scrape_interval,
    )
    home = settings.data_dir / "prometheus"
    config_file = home / "prometheus.yml"
    port = settings.prometheus_port
    return Service(
        "prometheus",
        prometheus.command(executable, config_file, home / "tsdb", port),
        url=f"http://127.0.0.1:{port}/",
        files={config_file: prometheus.render(cfg)},
    )


def gateway_secret(data_dir: Path) -> str:
    """The local gateway's sign-in secret: made once, kept (mode 600) in the data folder,
    so a restarted stack keeps its browsers signed in and `make login-url` works."""
    folder = data_dir if data_dir.is_absolute() else repo_root() / data_dir
    path = folder / GATEWAY_SECRET_FILE
    if not path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(32))
    return path.read_text().strip()


def login_link(base: str, secret: str) -> str:
    """A one-time sign-in link for the local gateway, minted by the gateway's own command."""
    result = subprocess.run(
        [
            sys.executable,
            *"-m rts_gateway login-url --base".split(),
            base,
            *"--subject make-run --role operator".split(),
        ],
        env={**os.environ, "GATEWAY_AUTH_SECRET": secret},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return result.stdout.strip()


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
    for service in services:
        supervisor.start(service)
    _banner(output, kafka, services)
    fleet = None
    if any(s.name == NGINX for s in services):
        fleet = _fleet(settings, supervisor, services, kafka.metrics_targets)
    front = next((s for s in services if s.name in ("gateway", NGINX)), None)
    gateway = next((s for s in services if s.job == "gateway"), None)
    if front is not None and front.url and gateway is not None and gateway.metrics:
        threading.Thread(
            target=_announce_dashboard,
            args=(
                front.url,
                ready_url(gateway.metrics),
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
    services: list[Service],
    broker_metrics: Sequence[str],
) -> Fleet:
    """The replicas `make run` started, to scale them later; Prometheus follows them."""
    secret = gateway_secret(data_path(settings))
    common = next(s.env for s in services if s.name == replica_name(1))
    others = [s for s in services if s.job != "gateway" and s.name != "prometheus"]
    executable = prometheus.binary()

    def replica(index: int) -> Service:
        service = gateway_replica(settings, secret, index)
        return replace(service, env={**common, **service.env})

    def retarget(replicas: list[Service]) -> None:
        if executable is None or not supervisor.running("prometheus"):
            return
        config = _prometheus(settings, executable, [*others, *replicas], broker_metrics)
        supervisor.write_files(config)
        supervisor.signal("prometheus", signal.SIGHUP)

    fleet = Fleet(supervisor, gateway_proxy(settings), proxy.binary() or "nginx", replica, retarget)
    fleet.adopt(services)
    return fleet


def _check_prometheus(
    settings: StackSettings, services: list[Service], output: Output
) -> list[Service]:
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


def _banner(output: Output, kafka: LocalKafka, services: list[Service]) -> None:
    lines = [f"Kafka bootstrap: {kafka.bootstrap}   (data in {kafka.data_root})"]
    lines += [f"Kafka metrics (JMX exporter): http://{a}/metrics" for a in kafka.metrics_targets]
    lines += [f"{s.name}: {s.url}" for s in services if s.url]
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
