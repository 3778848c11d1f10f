"""What "everything came back" means after a fault, measured the same way by every fault
test: each consumer of the gateway in its group or reading, readiness and health, and each
thing a client sees (a new viewer's live frame; on a new dashboard `new_event`, `qoe`,
`detection`, `cameras` and `status` with Kafka up; on a batched one, `batch`), with the
seconds each took."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families
from rts_devstack.processes import ServiceProcess

from tests.fixtures.mjpeg import MjpegClient
from tests.fixtures.socketio import Listener

LIVE_SECONDS = 2.0  # a frame at most this old is live video
DASHBOARD_EVENTS = ("new_event", "qoe", "detection", "cameras", "status")


def consumers(gateway: ServiceProcess) -> dict[str, bool]:
    """Each consumer the gateway reports and whether it does its job now: a group member
    in its group, every part up (`gateway_component_up` covers direct readers too)."""
    status, text = gateway.get("/metrics")
    if status != 200:
        return {}
    state: dict[str, bool] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "gateway_consumer_in_group":
                key = f"group:{sample.labels['consumer']}"
            elif sample.name == "gateway_component_up":
                key = sample.labels["component"]
            else:
                continue
            state[key] = state.get(key, True) and sample.value == 1
    return state


def _live_frame(url: str) -> bool:
    try:
        client = MjpegClient(url, timeout=3.0)
    except (OSError, EOFError):
        return False
    try:
        return client.status == 200 and client.part().age_seconds < LIVE_SECONDS
    except (OSError, EOFError):
        return False
    finally:
        client.close()


@dataclass
class Dashboards:
    """One dashboard as the baseline's page (events one by one) and one batched, connected
    again whenever they are not (a restarted gateway, as the page's own client does)."""

    url: str
    plain: Listener | None = None
    batched: Listener | None = None
    errors: list[str] = field(default_factory=list)

    def connect(self) -> None:
        for name in ("plain", "batched"):
            listener = getattr(self, name)
            if listener is not None and listener.client.connected:
                continue
            try:
                listener = Listener(self.url)
                if name == "batched":
                    listener.client.emit("options", {"batch": True})
                setattr(self, name, listener)
            except Exception as exc:  # not answering yet
                self.errors.append(repr(exc))

    def seen_since(self, started: float) -> set[str]:
        seen: set[str] = set()
        if self.plain is not None:
            for name in DASHBOARD_EVENTS:
                items = self.plain.since(name, started)
                if name == "status":
                    items = [s for s in items if s.get("kafka") is True]
                if items:
                    seen.add(name)
        if self.batched is not None and any(
            b.get("events") for b in self.batched.since("batch", started)
        ):
            seen.add("batch")
        return seen

    def close(self) -> None:
        for listener in (self.plain, self.batched):
            if listener is not None:
                with contextlib.suppress(Exception):
                    listener.close()
        self.plain = self.batched = None


def served_again(
    gateway: ServiceProcess,
    camera: str,
    bound: float,
    dashboards: Dashboards | None = None,
    producers: Sequence[ServiceProcess] = (),
) -> dict[str, float]:
    """Wait until everything is back, at most `bound` seconds; the seconds each took (from
    the call). Fails naming what did not come back, with the gateway's last log lines and
    those of `producers` (the services whose records the views need)."""
    started_wall, started = time.time(), time.monotonic()
    own = dashboards is None
    dashboards = dashboards or Dashboards(gateway.url)
    took: dict[str, float] = {}
    wanted = {"ready", "healthy", "frames", *DASHBOARD_EVENTS, "batch"}
    try:
        while True:
            now = time.monotonic() - started
            state = consumers(gateway)
            for name, up in state.items():
                if up and name not in took:
                    took[name] = now
            if gateway.ready():
                took.setdefault("ready", now)
            if gateway.get("/healthz")[0] == 200:
                took.setdefault("healthy", now)
            if "frames" not in took and _live_frame(f"{gateway.url}/stream/{camera}"):
                took["frames"] = time.monotonic() - started
            dashboards.connect()
            for name in dashboards.seen_since(started_wall):
                took.setdefault(name, time.monotonic() - started)
            missing = (wanted | set(state)) - set(took)
            if not missing and state and all(state.values()):
                return {name: round(seconds, 1) for name, seconds in sorted(took.items())}
            if time.monotonic() - started > bound:
                logs = "\n".join(
                    f"--- {service.name} (running: {service.running})\n{service.log(40)}"
                    for service in (gateway, *producers)
                )
                raise AssertionError(
                    f"not back {bound:.0f}s after the fault healed: {sorted(missing)} "
                    f"(consumers: {state}; dashboard errors: {dashboards.errors[-3:]})\n{logs}"
                )
            time.sleep(0.5)
    finally:
        if own:
            dashboards.close()


def summary(took: dict[str, float]) -> str:
    """What took time to come back, slowest first; the rest as one count."""
    slow = sorted(((t, name) for name, t in took.items() if t >= 1.0), reverse=True)
    rest = len(took) - len(slow)
    return ", ".join(f"{name} {t:.1f}" for t, name in slow) + f" (+{rest} under 1 s)"
