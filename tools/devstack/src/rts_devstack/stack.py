"""`make run`: the broker, the topics and every service, under one supervisor.

Order matters both ways: the broker and topics come up before any service, and on
Ctrl-C the services stop first (flushing producers, committing offsets) while the broker
they flush to is still there.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import secrets
import sys
import threading
import time
import urllib.request
import webbrowser
from dataclasses import replace
from pathlib import Path

from rts_common.lifecycle import shutdown_event
from rts_common.logs import LoggingSettings, configure_logging
from rts_common.settings import setting

from rts_devstack.broker import BrokerError, LocalKafka, repo_root
from rts_devstack.supervisor import Output, Service, Supervisor

log = logging.getLogger("devstack")

GATEWAY_SECRET_FILE = "gateway-secret"  # noqa: S105 - a file name, not a secret


class StackSettings(LoggingSettings):
    """Run the whole platform locally on a real single-node Kafka broker."""

    program = "rts-devstack run"
    kafka_port: int = setting(9092, "Broker port on 127.0.0.1 (the controller uses the next one)",
                              env="KAFKA_PORT", ge=1024, le=65534)  # fmt: skip
    data_dir: Path = setting(
        Path(".data"), "Folder for broker data and generated samples", env="RTS_DATA_DIR"
    )
    gateway_port: int = setting(8000, "Port of the gateway (dashboard and streams)",
                                env="GATEWAY_PORT", ge=1, le=65535)  # fmt: skip
    services: bool = setting(True, "Start the services (--no-services: broker and topics only)")
    open_browser: bool = setting(
        True, "Open the dashboard in a browser once the gateway is ready (when there is a display)"
    )


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def plan(settings: StackSettings, bootstrap: str) -> list[Service]:
    """The services that exist in this checkout, with their local configuration."""
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
        services.append(_event_sim())
    if installed("rts_gateway"):
        services.append(_gateway(settings))
    return [replace(s, env={**common, **s.env}) for s in services]


def _capture(settings: StackSettings) -> list[Service]:
    """Two cameras: the test pattern, and a sample video generated here (none is committed)."""
    samples = settings.data_dir / "samples"
    generate = [[sys.executable, "-m", "rts_capture.sample", str(samples)]]
    capture = [sys.executable, "-m", "rts_capture"]
    test = [*capture, "--source", "test", "--camera-id", "cam-test", "--ops-port", "9101"]
    # The face comes from scikit-image, which only the development environment has.
    if installed("skimage"):
        test += ["--test-face", str(samples / "face.png")]
    video = str(samples / "sample.mp4")
    sample = [*capture, "--source", video, "--camera-id", "cam-sample", "--loop"]
    # Cars and no faces: the face cascade would only cost CPU there.
    sample += ["--no-faces", "--ops-port", "9102"]
    return [
        Service("cam-test", test, url="http://127.0.0.1:9101/metrics", setup=generate),
        Service("cam-sample", sample, url="http://127.0.0.1:9102/metrics", setup=generate),
    ]


def _event_sim() -> Service:
    # 200 events/s from 20,000 viewers: enough viewers for a lifelike pace (see
    # services/event-sim/README.md), few enough to start within a couple of minutes.
    return Service(
        "event-sim",
        [sys.executable, "-m", "rts_eventsim"],
        {"EVENTSIM_RATE": "200", "EVENTSIM_USERS": "20000", "EVENTSIM_OPS_PORT": "9110"},
        url="http://127.0.0.1:9110/metrics",
    )


def _gateway(settings: StackSettings) -> Service:
    port = settings.gateway_port
    return Service(
        "gateway",
        [sys.executable, "-m", "rts_gateway", "--port", str(port)],
        {"GATEWAY_AUTH_SECRET": gateway_secret(settings.data_dir)},
        url=f"http://127.0.0.1:{port}/",
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
    """A one-time sign-in link for the local gateway (what `gateway login-url` prints)."""
    from rts_gateway.auth import Authenticator

    auth = Authenticator(secret, login_ttl=600, session_ttl=3600)
    return f"{base.rstrip('/')}/login?token={auth.login_token('make-run')}"


def run(settings: StackSettings) -> int:
    stop = shutdown_event()
    output = Output()
    root = repo_root()
    data = settings.data_dir if settings.data_dir.is_absolute() else root / settings.data_dir
    kafka = LocalKafka(data / "kafka", port=settings.kafka_port)
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
    created = kafka.create_topics()
    elapsed = time.monotonic() - started
    created_text = ", ".join(created) or "none (all existed)"
    output.line("devstack", f"Kafka ready in {elapsed:.1f}s; topics created: {created_text}")
    supervisor = Supervisor(output, cwd=root)
    services = plan(settings, kafka.bootstrap) if settings.services else []
    for service in services:
        supervisor.start(service)
    _banner(output, kafka, services)
    for service in services:
        if service.name == "gateway" and service.url:
            secret = service.env.get("GATEWAY_AUTH_SECRET", "")
            threading.Thread(
                target=_announce_dashboard,
                args=(service.url, secret, output, settings.open_browser, stop),
                daemon=True,
            ).start()
    try:
        while not stop.wait(0.5):
            for name, code in supervisor.exited().items():
                output.line("devstack", f"{name} exited with code {code}")
    finally:
        output.line("devstack", "stopping services")
        supervisor.stop_all()
        output.line("devstack", "stopping Kafka")
        kafka.stop()
        output.line("devstack", "stopped")
    return 0


def _announce_dashboard(
    url: str, secret: str, output: Output, open_browser: bool, stop: threading.Event
) -> None:
    """Say (and show) the dashboard, with a sign-in link, once the gateway answers ready."""
    while not stop.wait(0.5):
        try:
            with urllib.request.urlopen(url + "readyz", timeout=2) as response:  # noqa: S310
                if response.status == 200:
                    break
        except OSError:
            continue
    else:
        return
    if secret:
        url = login_link(url, secret)
        output.line("devstack", f"dashboard ready: {url}")
        output.line("devstack", "(a one-time sign-in link, valid 10 minutes; `make login-url` "
                    "prints another)")  # fmt: skip
    else:
        output.line("devstack", f"dashboard ready: {url}")
    has_display = sys.platform == "darwin" or any(
        os.environ.get(v) for v in ("DISPLAY", "WAYLAND_DISPLAY")
    )
    if open_browser and has_display:
        webbrowser.open(url)


def _banner(output: Output, kafka: LocalKafka, services: list[Service]) -> None:
    lines = [f"Kafka bootstrap: {kafka.bootstrap}   (data in {kafka.data_root})"]
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
