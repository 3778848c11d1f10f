"""Leaders killed and brokers restarted one by one on a three-node cluster, under load:
every event acknowledged to event-sim is counted once in the gateway's totals, and live
video comes back after each failover, on a stream held open through all of them (as a
browser's <img> holds it) and for a viewer who arrives after each."""

from __future__ import annotations

import collections
import threading
import time

import pytest
from rts_common.kafka import admin_client

from tests.faults.conftest import FaultStack, MakeStack
from tests.fixtures.mjpeg import MjpegClient, Part

CAMERA = "cam-failover"
EVENTS = 40_000
LIVE_SECONDS = 2.0  # a frame at most this old is live video


class OpenStream:
    """One viewer's stream kept open through every failover and read all the time, so the
    gateway never sees a slow client. A stream that ends is the failure this test is
    about; a quiet one is not (the gateway re-sends its last frame every 10 s)."""

    def __init__(self, url: str) -> None:
        self.client = MjpegClient(url, timeout=120)
        assert self.client.status == 200, self.client.status
        self.parts: collections.deque[Part] = collections.deque(maxlen=100)
        self.ended: BaseException | None = None
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            while True:
                self.parts.append(self.client.part())
        except Exception as exc:  # what ended the stream, for the assertion
            self.ended = exc

    def live_since(self, started: float) -> bool:
        if self.ended is not None:
            raise AssertionError(f"the gateway ended a viewer's stream: {self.ended!r}")
        return any(p.received > started and p.age_seconds < LIVE_SECONDS for p in list(self.parts))


def _new_viewer_is_live(url: str) -> bool:
    """Whether a viewer arriving now gets a live frame first. A request the gateway has
    not answered yet is "not yet", whether the client's 5 s ran out first or the server's
    own 5 s (gunicorn drops a connection whose request it could not read by then, which
    an overloaded machine can delay); a stream that began and then ended is a failure."""
    try:
        client = MjpegClient(url, timeout=5.0)
    except (OSError, EOFError):
        return False  # no answer yet
    try:
        assert client.status == 200, f"a new viewer was answered {client.status}"
        try:
            return client.part().age_seconds < LIVE_SECONDS
        except EOFError as exc:
            raise AssertionError(f"the gateway ended a new viewer's stream: {exc!r}") from exc
    finally:
        client.close()


def _leader(stack: FaultStack, partition: int) -> int:
    topic = stack.prefix + "playback-events"
    admin = admin_client({"bootstrap.servers": stack.kafka.bootstrap}, quiet=True)
    return int(admin.list_topics(topic, timeout=10).topics[topic].partitions[partition].leader)


def _video_back(gateway: object, watching: OpenStream) -> tuple[float, float]:
    """Seconds until the open stream showed live video again, and until a new viewer got
    it."""
    started, wall = time.monotonic(), time.time()
    url = f"{gateway.url}/stream/{CAMERA}"  # type: ignore[attr-defined]
    gateway.wait_for(  # type: ignore[attr-defined]
        lambda: watching.live_since(wall), 90, "live video again on the open stream"
    )
    open_back = time.monotonic() - started
    gateway.wait_for(  # type: ignore[attr-defined]
        lambda: _new_viewer_is_live(url), 90, "live video for a new viewer"
    )
    return open_back, time.monotonic() - started


@pytest.mark.timeout(900)
def test_every_acknowledged_event_is_counted_once_through_leader_kills_and_restarts(
    make_stack: MakeStack,
) -> None:
    stack = make_stack(nodes=3)
    camera = stack.camera(CAMERA)
    gateway = stack.gateway()
    gateway.wait_ready(timeout=90)
    url = f"{gateway.url}/stream/{CAMERA}"
    gateway.wait_for(lambda: _new_viewer_is_live(url), 60, "a live frame")
    watching = OpenStream(url)
    # It may finish while the rolling restart has a broker down: it waits for every
    # acknowledgement rather than give up on what is queued after the default 10 s.
    sim = stack.event_sim(
        "--count",
        str(EVENTS),
        *"--rate 400 --users 4000 --seed 21 --flush-timeout 120".split(),
    )
    counted = "gateway_playback_events_total"
    gateway.wait_for(lambda: gateway.metric(counted) > 2000, 60, "events counted")

    recoveries = []
    for kill in range(3):
        node = _leader(stack, partition=kill)
        stack.kafka.stop_node(node, kill=True)
        recoveries.append(_video_back(gateway, watching))
        stack.kafka.start_node(node)
        stack.kafka.wait_ready(90)
    for node in (1, 2, 3):  # a rolling restart
        stack.kafka.stop_node(node)
        stack.kafka.start_node(node)
        stack.kafka.wait_ready(90)
    recoveries.append(_video_back(gateway, watching))
    print(
        "live video back after each failover (s), on the open stream / for a new viewer:",
        [(round(a, 1), round(b, 1)) for a, b in recoveries],
    )
    assert watching.ended is None, f"the open stream ended: {watching.ended!r}"

    assert sim.wait_exit(300) == 0, sim.log()
    (finished,) = [r for r in sim.log_records() if r.get("msg") == "finished"]
    assert (finished["delivered"], finished["failed"]) == (EVENTS, 0), finished
    gateway.wait_for(lambda: gateway.metric(counted) >= EVENTS, 120, "every event counted")
    time.sleep(5)  # anything counted twice would show up by now
    assert gateway.metric(counted) == EVENTS
    for service in (camera, gateway):
        assert service.running, f"{service.name} exited:\n{service.log()}"
