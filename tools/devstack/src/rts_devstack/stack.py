"""What `make run` runs: its settings, and the plan of processes (one launch spec per
service from launch.py, with `make run`'s ports and configuration). run.py runs it.

Prometheus, when installed, is one more process: it scrapes every other one (the ports
come from this plan, nowhere else) and the broker's JMX exporter, with the labels the
cluster's series have, and evaluates the chart's alert rules.

With `--gateways N` (`make run GATEWAYS=N`), N gateway replicas run behind nginx on the
gateway's port, replica i on the gateway's port + i and its ops port + i, and
`make scale GATEWAYS=N` changes their number (fleet.py).
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

from rts_common.logs import LoggingSettings
from rts_common.settings import setting
from rts_observability import prometheus

from rts_devstack import launch, proxy
from rts_devstack.distribution import repo_root
from rts_devstack.fleet import replica_name
from rts_devstack.launch import Launch

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
    restarts: int = setting(
        5,
        "A process that dies (the broker too) is reported and started again, after 1 s, "
        "then 2, 4... (up to 30 s) while it keeps dying within a minute of starting; after "
        "this many restarts in a row, everything stops with exit code 1 (0: the first death "
        "stops everything)",
        env="RESTARTS",
        ge=0,
        le=100,
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
) -> list[Launch]:
    """The services that exist in this checkout, with their local configuration.

    `broker_metrics`: the brokers' JMX exporter addresses (host:port), for Prometheus;
    `gateway_secret`: the gateway's sign-in secret (empty: no sign-in).
    """
    services: list[Launch] = []
    # Each service adds its processes here as it is written.
    if installed("rts_capture"):
        services += cameras(settings)
    if installed("rts_eventsim"):
        # 200 events/s from 20,000 viewers: enough viewers for a lifelike pace (see
        # services/event-sim/README.md), few enough to start within a couple of minutes.
        rate = {"EVENTSIM_RATE": "200", "EVENTSIM_USERS": "20000"}
        services.append(launch.event_sim(ops_port=settings.eventsim_ops_port, env=rate))
    if installed("rts_gateway"):
        if settings.gateways:
            replicas = [
                gateway_replica(settings, gateway_secret, replica_name(i))
                for i in range(1, settings.gateways + 1)
            ]
            services += [*replicas, nginx(settings, replicas)]
        else:
            services.append(
                launch.gateway(
                    port=settings.gateway_port,
                    ops_port=settings.gateway_ops_port,
                    host=None,
                    env={"GATEWAY_AUTH_SECRET": gateway_secret},
                )
            )
    if installed("rts_probe") and installed("rts_gateway"):
        # One low-rate viewer per camera, as in the cluster: latency panels have data at once.
        services.append(
            launch.latency_probe(
                gateway_url=f"http://127.0.0.1:{settings.gateway_port}",
                ops_port=settings.probe_ops_port,
                env={"PROBE_AUTH_SECRET": gateway_secret},
            )
        )
    if installed("rts_notifier"):
        services.append(notifier(settings))
    common = {
        "KAFKA_BOOTSTRAP": bootstrap,
        "LOG_FORMAT": "console",
        "LOG_LEVEL": settings.log_level,
    }
    services = [s.with_env(common) for s in services]
    executable = prometheus.binary() if settings.prometheus else None
    if executable:
        services.append(prometheus_launch(settings, executable, services, broker_metrics))
    return services


def cameras(settings: StackSettings) -> list[Launch]:
    """Two cameras: the test pattern, and a sample video generated here (none is committed)."""
    samples = settings.data_dir / "samples"
    generate = [[launch.PYTHON, "-m", "rts_capture.sample", str(samples)]]
    test = ["--source", "test"]
    # A door on the right of the pattern (the face walks into it) and the label masked.
    test += ["--zones", "door=0.6,0.05 0.98,0.05 0.98,0.78 0.6,0.78"]
    test += ["--masks", "label=0,0 0.35,0 0.35,0.1 0,0.1"]
    # The face comes from scikit-image, which only the development environment has.
    if installed("skimage"):
        test += ["--test-face", str(samples / "face.png")]
    # Cars and no faces: the face cascade would only cost CPU there.
    sample = ["--source", str(samples / "sample.mp4"), "--loop", "--no-faces"]
    return [
        launch.capture("cam-test", *test, ops_port=settings.test_camera_ops_port, setup=generate),
        launch.capture(
            "cam-sample", *sample, ops_port=settings.sample_camera_ops_port, setup=generate
        ),
    ]


def notifier(settings: StackSettings) -> Launch:
    """The notifier with no receiver: its events (the face in cam-test's door, a camera
    going offline) are in its log; NOTIFIER_WEBHOOKS and NOTIFIER_MQTT_HOST push them."""
    return launch.notifier(
        ops_port=settings.notifier_ops_port,
        env={
            "NOTIFIER_RULES": "*/*=face,person,offline;cam-test/door=motion",
            "NOTIFIER_GATEWAY_URL": f"http://127.0.0.1:{settings.gateway_port}",
            **{k: v for k, v in os.environ.items() if k.startswith("NOTIFIER_")},
        },
    )


def gateway_replica(settings: StackSettings, secret: str, name: str) -> Launch:
    """Replica `gateway-i` behind nginx: the gateway's port + i, its ops port + i."""
    index = int(name.removeprefix("gateway-"))
    return launch.gateway(
        port=settings.gateway_port + index,
        ops_port=settings.gateway_ops_port + index,
        replica=name,
        env={"GATEWAY_AUTH_SECRET": secret},
    )


def data_path(settings: StackSettings) -> Path:
    return settings.data_dir if settings.data_dir.is_absolute() else repo_root() / settings.data_dir


def gateway_proxy(settings: StackSettings) -> proxy.Proxy:
    return proxy.Proxy(settings.gateway_port, data_path(settings) / "nginx")


def nginx(settings: StackSettings, replicas: list[Launch]) -> Launch:
    """nginx on the gateway's port in front of the replicas, like the chart's ingress."""
    addresses = {s.name: (s.url or "").removeprefix("http://") for s in replicas}
    return gateway_proxy(settings).launch(proxy.binary() or "nginx", addresses)


def prometheus_launch(
    settings: StackSettings, executable: str, services: list[Launch], broker_metrics: Sequence[str]
) -> Launch:
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
    return launch.process(
        "prometheus",
        prometheus.command(executable, config_file, home / "tsdb", port),
        url=f"http://127.0.0.1:{port}/",
        ready=f"http://127.0.0.1:{port}/-/ready",
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


def login_link(base: str, secret: str, *flags: str) -> str:
    """A one-time sign-in link for the local gateway, minted by the gateway's own command
    (`flags`: more of its flags, which win: `--camera cam-test`, `--role viewer`)."""
    result = subprocess.run(
        [
            launch.command("gateway"),
            *"login-url --base".split(),
            base,
            *"--subject make-run --role operator".split(),
            *flags,
        ],
        env={**os.environ, "GATEWAY_AUTH_SECRET": secret},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return result.stdout.strip()


# The settings that are ports: `launch_stack` reserves each.
PORT_SETTINGS = (
    "kafka_port",
    "gateway_port",
    "gateway_ops_port",
    "test_camera_ops_port",
    "sample_camera_ops_port",
    "eventsim_ops_port",
    "probe_ops_port",
    "notifier_ops_port",
    "kafka_metrics_port",
    "prometheus_port",
)


def launch_stack(
    data_dir: Path, reserve: Callable[..., Sequence[int]], *flags: str, replicas: int = 0
) -> tuple[Launch, dict[str, int]]:
    """`rts-devstack run` (what `make run` runs) on ports from `reserve(count,
    contiguous=...)` (a ServiceGroup's `ports`), with room for `replicas` gateway replicas
    (port + i); returns it and its ports by setting."""
    ports = {
        "kafka_port": reserve(2, contiguous=True)[0],  # and the controller's, the next one
        "gateway_port": reserve(replicas + 1, contiguous=True)[0],
        "gateway_ops_port": reserve(replicas + 1, contiguous=True)[0],
    }
    rest = [name for name in PORT_SETTINGS if name not in ports]
    ports |= dict(zip(rest, reserve(len(rest)), strict=True))
    argv = ["rts-devstack", "run", "--no-open-browser", "--data-dir", str(data_dir)]
    for name, port in ports.items():
        argv += [f"--{name.replace('_', '-')}", str(port)]
    spec = launch.process(
        "devstack",
        [*argv, *flags],
        {"NO_COLOR": "1"},
        url=f"http://127.0.0.1:{ports['gateway_port']}",
    )
    return spec, ports
