"""The past Kafka still holds, over real HTTP: a snapshot at a time, clips, the timeline,
all behind the sign-in and one per-process limit. Real capture test patterns (one with a
face), the real broker, the gateway under gunicorn; answers are compared with what the
test reads from Kafka itself."""

from __future__ import annotations

import collections
import dataclasses
import io
import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from confluent_kafka import Message, Producer
from PIL import Image
from rts_capture.sample import write_face
from rts_common.contracts import TOPICS, VIDEO_DETECTIONS, CameraStatus, Detection, FrameMeta
from rts_common.signin import Authenticator, Role

from tests.fixtures.capture import read_topic
from tests.fixtures.kafka import KafkaUnderTest
from tests.fixtures.mjpeg import MjpegClient
from tests.fixtures.processes import (
    ServiceGroup,
    ServiceProcess,
    kafka_env,
    start_capture,
    start_gateway,
)

FACE_CAMERA = "cam-face"
OTHER = "cam-plain"
FPS = 5
SECRET = "integration-secret-of-some-length"
MAX_READS = 3


@dataclass
class Stack:
    gateway: ServiceProcess
    kafka: KafkaUnderTest
    prefix: str
    session: str
    started: float

    @property
    def base(self) -> str:
        return self.gateway.url

    def get(
        self, path: str, *, session: bool = True, token: str | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        token = token or self.session
        headers = {"Authorization": f"Bearer {token}"} if session else {}
        request = urllib.request.Request(self.base + path, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read()

    def json(self, path: str) -> tuple[int, dict[str, Any]]:
        status, _headers, body = self.get(path)
        return status, json.loads(body)

    def metric(self, name: str, **labels: str) -> float:
        return self.gateway.metric(name, **labels)

    def wait_for_history(self, seconds: float) -> None:
        """Until Kafka holds `seconds` of the cameras' video."""

        def held() -> bool:
            for camera in (FACE_CAMERA, OTHER):
                status, timeline = self.json(f"/api/timeline/{camera}?kinds=face")
                earliest = timeline.get("earliest_ms") if status == 200 else None
                if earliest is None or time.time() - earliest / 1000 < seconds:
                    return False
            return True

        self.gateway.wait_for(held, seconds + 30, f"{seconds} s of video in Kafka")


def session_token(role: Role = "operator", cameras: list[str] | None = None) -> str:
    auth = Authenticator(SECRET, login_ttl=600, session_ttl=3600)
    return auth.issue("integration", role=role, cameras=cameras).token


def iso(epoch_seconds: float) -> str:
    """As browsers write it (Date.toISOString): UTC with a Z, nothing to escape in a URL."""
    moment = datetime.fromtimestamp(epoch_seconds, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@pytest.fixture(scope="module")
def stack(kafka: KafkaUnderTest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    prefix = f"hist{uuid.uuid4().hex[:8]}."
    kafka.create_topics(list(TOPICS), prefix)
    face = tmp_path_factory.mktemp("face") / "face.png"
    assert write_face(face)
    env = kafka_env(kafka.bootstrap, prefix, GATEWAY_AUTH_SECRET=SECRET)
    with ServiceGroup(env) as group:
        started = time.time()
        for camera, flags in (
            (FACE_CAMERA, ["--test-face", str(face), "--face-every", "2"]),
            (OTHER, ["--no-faces"]),
        ):
            start_capture(
                group,
                camera,
                "--source",
                "test",
                "--fps",
                str(FPS),
                *"--test-width 320 --test-height 240".split(),
                *flags,
            )
        gateway = start_gateway(group, "--max-replays", str(MAX_READS))
        gateway.wait_ready(timeout=60)
        stack = Stack(gateway, kafka, prefix, session_token(), started)
        gateway.wait_for(
            lambda: len(stack.json("/api/cameras")[1]["cameras"]) == 2,
            30,
            "both cameras in the directory",
        )
        yield stack


def frames_of(stack: Stack, camera: str) -> list[Message]:
    """Every frame of `camera` Kafka holds now, oldest first."""
    records = read_topic(stack.kafka, stack.prefix + "video-frames", idle=2.0, timeout=30)
    return sorted((m for m in records if m.key() == camera.encode()), key=lambda m: m.offset())


def capture_ns(message: Message) -> int:
    return FrameMeta.from_record(message.key(), message.headers()).ts_ns


def test_every_route_into_the_past_needs_the_session(stack: Stack) -> None:
    for path in (
        f"/stream/{FACE_CAMERA}?from=-5s",
        f"/snapshot/{FACE_CAMERA}.jpg?at=-5s",
        f"/clip/{FACE_CAMERA}?from=-10s",
        f"/api/timeline/{FACE_CAMERA}",
    ):
        status, _headers, body = stack.get(path, session=False)
        assert status == 401, path
        assert json.loads(body)["reason"] == "missing"
    assert stack.metric("gateway_kafka_reads_opened_total") == 0


def test_the_past_needs_an_operator_and_a_camera_the_sign_in_covers(stack: Stack) -> None:
    viewer, other_camera = session_token("viewer"), session_token(cameras=[OTHER])
    opened = stack.metric("gateway_kafka_reads_opened_total")
    for path in (
        f"/stream/{FACE_CAMERA}?from=-5s",
        f"/snapshot/{FACE_CAMERA}.jpg?at=-5s",
        f"/clip/{FACE_CAMERA}?from=-10s",
        f"/api/timeline/{FACE_CAMERA}",
    ):
        status, _headers, body = stack.get(path, token=viewer)
        assert status == 403, (path, body[:200])
        status, _headers, body = stack.get(path, token=other_camera)
        assert status == 404, (path, body[:200])
        assert FACE_CAMERA not in json.loads(body)["cameras"]
    assert stack.metric("gateway_kafka_reads_opened_total") == opened
    # What a viewer may do: the live stream's newest frame.
    status, _headers, _body = stack.get(f"/snapshot/{FACE_CAMERA}.jpg", token=viewer)
    assert status == 200


def test_a_snapshot_at_a_time_is_the_frame_captured_nearest_it(stack: Stack) -> None:
    stack.wait_for_history(12)
    frames = frames_of(stack, FACE_CAMERA)
    target = next(m for m in reversed(frames) if capture_ns(m) < time.time_ns() - 5 * 10**9)
    moment = capture_ns(target) / 1e9 + 0.04  # 40 ms after it: still the nearest at 5 fps
    status, headers, body = stack.get(f"/snapshot/{FACE_CAMERA}.jpg?at={iso(moment)}")
    assert status == 200, body[:300]
    assert headers["Content-Type"] == "image/jpeg"
    assert int(headers["X-Frame-Timestamp"]) == capture_ns(target)
    assert body == target.value()
    assert Image.open(io.BytesIO(body)).size == (320, 240)


def test_moments_kafka_does_not_hold_are_a_416_that_says_what_it_holds(stack: Stack) -> None:
    for at, words in (("-2h", "older than"), (iso(time.time() + 600), "future")):
        status, _headers, body = stack.get(f"/snapshot/{FACE_CAMERA}.jpg?at={at}")
        assert status == 416, at
        answer = json.loads(body)
        assert words in answer["error"]
        held_from = datetime.fromisoformat(answer["earliest"]).timestamp()
        assert stack.started - 15 < held_from < time.time(), answer
    status, _headers, body = stack.get(f"/clip/{FACE_CAMERA}?from=-1h&to=-59m")
    assert status == 416
    status, _headers, body = stack.get(f"/stream/{FACE_CAMERA}?from=-1h")
    assert status == 416


def test_a_ten_second_clip_decodes_to_the_frames_kafka_holds_for_that_range(
    stack: Stack, tmp_path: Path
) -> None:
    stack.wait_for_history(16)
    end = time.time() - 2
    start = end - 10
    status, headers, body = stack.get(f"/clip/{FACE_CAMERA}?from={iso(start)}&to={iso(end)}")
    assert status == 200, body[:300]
    assert headers["Content-Type"] == "video/x-msvideo"
    assert headers["Content-Disposition"].startswith('attachment; filename="cam-face_')
    assert int(headers["Content-Length"]) == len(body)
    first_ns, end_ns = int(start * 1000) * 10**6, int(end * 1000) * 10**6
    expected = [m for m in frames_of(stack, FACE_CAMERA) if first_ns <= capture_ns(m) < end_ns]
    path = tmp_path / "clip.avi"
    path.write_bytes(body)
    capture = cv2.VideoCapture(str(path))
    assert capture.isOpened()
    fps = capture.get(cv2.CAP_PROP_FPS)
    decoded = []
    while True:
        ok, image = capture.read()
        if not ok:
            break
        decoded.append(image)
    capture.release()
    assert len(decoded) == len(expected) == int(headers["X-Clip-Frames"])
    assert len(expected) >= 0.8 * FPS * 10
    assert len(decoded) / fps == pytest.approx(10.0, abs=0.5)
    assert {image.shape for image in decoded} == {(240, 320, 3)}
    # The frames are the ones Kafka holds, in order: each decodes closer to its own
    # original than to its neighbour's (decoders differ by a level here and there).
    for image, own, neighbour in (
        (decoded[0], expected[0], expected[1]),
        (decoded[-1], expected[-1], expected[-2]),
    ):
        assert _difference(image, own) < 4
        assert _difference(image, own) < _difference(image, neighbour)


def _difference(image: np.ndarray, message: Message) -> float:  # type: ignore[type-arg]
    original = cv2.imdecode(np.frombuffer(message.value(), np.uint8), cv2.IMREAD_COLOR)
    return float(np.abs(image.astype(int) - original.astype(int)).mean())


def test_the_timeline_gives_the_window_and_the_detections_kafka_holds(stack: Stack) -> None:
    stack.wait_for_history(20)
    now = time.time()
    start, end = now - 15, now - 5
    end_ns = int(end * 1000) * 10**6

    later: set[str] = set()

    def past_the_range(messages: list[Message]) -> bool:
        """Detections of both kinds captured after the range are in Kafka, so every one
        of the range is (the detector publishes a camera's results in frame order)."""
        last = messages[-1]
        detection = VIDEO_DETECTIONS.decode(last.key(), last.value(), last.headers())
        if detection.camera == FACE_CAMERA and detection.ts >= end_ns:
            later.add(detection.kind)
        return later == {"face", "motion"}

    records = read_topic(
        stack.kafka, stack.prefix + "video-detections", until=past_the_range, timeout=60
    )
    assert later == {"face", "motion"}
    detections = [VIDEO_DETECTIONS.decode(m.key(), m.value(), m.headers()) for m in records]
    status, timeline = stack.json(f"/api/timeline/{FACE_CAMERA}?from={iso(start)}&to={iso(end)}")
    assert status == 200, timeline
    expected = {
        (d.kind, d.seq)
        for d in detections
        if d.camera == FACE_CAMERA and int(start * 1000) * 10**6 <= d.ts < int(end * 1000) * 10**6
    }
    got = [(d["kind"], d["seq"]) for d in timeline["detections"]]
    assert timeline["truncated"] is False  # read whole within the gateway's time limit
    assert {"face", "motion"} <= {kind for kind, _seq in expected}
    assert set(got) == expected
    assert len(got) == len(expected)
    assert [d["ts"] for d in timeline["detections"]] == sorted(
        d["ts"] for d in timeline["detections"]
    )
    oldest = min(capture_ns(m) for m in frames_of(stack, FACE_CAMERA)) / 1e6
    assert timeline["earliest_ms"] <= oldest + 1  # the partition's oldest record
    assert timeline["earliest_ms"] >= stack.started * 1000 - 15_000
    status, marks = stack.json(
        f"/api/timeline/{FACE_CAMERA}?from={iso(start)}&to={iso(end)}&step=1000"
    )
    assert status == 200, marks
    buckets = collections.Counter(
        (marks["from_ms"] + (d.ts // 10**6 - marks["from_ms"]) // 1000 * 1000, d.kind)
        for d in detections
        if d.camera == FACE_CAMERA and int(start * 1000) * 10**6 <= d.ts < int(end * 1000) * 10**6
    )
    assert marks["step_ms"] == 1000
    assert {(ms, kind): count for ms, kind, count in marks["marks"]} == dict(buckets)
    status, faces = stack.json(f"/api/timeline/{FACE_CAMERA}?kinds=face")
    assert status == 200
    assert faces["detections"]
    assert {d["kind"] for d in faces["detections"]} == {"face"}
    assert faces["from_ms"] == faces["earliest_ms"]
    status, plain = stack.json(f"/api/timeline/{OTHER}?kinds=face")
    assert (status, plain["detections"]) == (200, [])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_replays_clips_and_timelines_share_one_limit_per_process(stack: Stack) -> None:
    stack.wait_for_history(10)
    # A session each, so that the sessions' own limit is not the one reached.
    replays = [
        MjpegClient(f"{stack.base}/stream/{OTHER}?from=-8s", headers=bearer(session_token()))
        for _ in range(MAX_READS)
    ]
    for replay in replays:
        assert replay.status == 200
        replay.part()
    assert stack.metric("gateway_kafka_reads", kind="replay") == MAX_READS
    for path in (
        f"/api/timeline/{OTHER}",
        f"/clip/{OTHER}?from=-5s",
        f"/snapshot/{OTHER}.jpg?at=-3s",
        f"/stream/{OTHER}?from=-3s",
    ):
        status, answer_headers, body = stack.get(path, token=session_token())
        assert status == 429, path
        assert json.loads(body)["limit"] == "replays"
        assert int(answer_headers["Retry-After"]) > 0
    assert stack.metric("gateway_kafka_reads_refused_total") >= 4
    replays.pop().close()
    stack.gateway.wait_for(
        lambda: stack.metric("gateway_kafka_reads", kind="replay") == MAX_READS - 1,
        15,
        "a replay's read closed when its viewer left",
    )
    assert stack.get(f"/api/timeline/{OTHER}")[0] == 200
    for replay in replays:
        replay.close()
    stack.gateway.wait_for(
        lambda: stack.metric("gateway_kafka_reads") == 0, 15, "every read closed"
    )


def test_detections_are_found_when_the_two_topics_have_different_partition_counts(
    kafka: KafkaUnderTest, tmp_path: Path
) -> None:
    """An operator grew video-detections: a camera's detections may then sit in any of its
    partitions, and the timeline reads them all, by key."""
    prefix = f"histp{uuid.uuid4().hex[:8]}."
    grown = dataclasses.replace(VIDEO_DETECTIONS, local_partitions=5)
    kafka.create_topics([grown, *(t for t in TOPICS if t.name != VIDEO_DETECTIONS.name)], prefix)
    face = tmp_path / "face.png"
    assert write_face(face)
    with ServiceGroup(kafka_env(kafka.bootstrap, prefix)) as group:
        start_capture(
            group,
            FACE_CAMERA,
            "--source",
            "test",
            "--fps",
            str(FPS),
            "--test-face",
            str(face),
            *"--face-every 2 --test-width 320 --test-height 240".split(),
        )
        gateway = start_gateway(group)
        gateway.wait_ready(timeout=60)
        url = f"{gateway.url}/api/timeline/{FACE_CAMERA}?kinds=face&to=-2s"

        def faces() -> list[dict[str, Any]]:
            try:
                with urllib.request.urlopen(url, timeout=30) as response:
                    return list(json.loads(response.read())["detections"])
            except urllib.error.HTTPError:
                return []  # not in the directory yet

        gateway.wait_for(lambda: len(faces()) >= 5, 60, "face detections in the timeline")
        answer = faces()
        with urllib.request.urlopen(f"{gateway.url}/api/cameras", timeout=10) as response:
            (camera,) = json.loads(response.read())["cameras"]
    records = read_topic(kafka, prefix + "video-detections", idle=2.0, timeout=30)
    # Not the frames' partition number, or this would not show anything.
    assert {m.partition() for m in records} == {2} != {camera["partition"]}
    by_seq = {
        d.seq: d
        for d in (VIDEO_DETECTIONS.decode(m.key(), m.value(), m.headers()) for m in records)
        if d.kind == "face"
    }
    assert {d["seq"] for d in answer} <= set(by_seq)
    assert all(d["ts"] == by_seq[d["seq"]].ts for d in answer)


def test_a_camera_whose_detections_reach_kafka_late_still_has_them_on_its_timeline(
    kafka: KafkaUnderTest,
) -> None:
    """Two cameras share a detections partition and one's detector runs behind: a detection
    of a later moment (the other camera's) sits before some of the range's in the log.
    Kafka's offset for the range's end is that record's: the timeline must read on."""
    prefix = f"histl{uuid.uuid4().hex[:8]}."
    kafka.create_topics(list(TOPICS), prefix)
    late, ahead = "cam-late", "cam-ahead"
    base_ns = time.time_ns() - 60 * 10**9
    producer = Producer(kafka.config())

    def produce(topic: str, camera: str, value: str | bytes, ts_ns: int, **extra: Any) -> None:
        producer.produce(
            prefix + topic, value, key=camera, partition=0, timestamp=ts_ns // 10**6, **extra
        )

    def detection(camera: str, seq: int) -> str:
        return Detection(
            camera=camera, seq=seq, ts=base_ns + seq * 10**9, kind="motion", boxes=[], score=0.0
        ).model_dump_json()

    for seq in range(12):
        frame = FrameMeta(late, seq, base_ns + seq * 10**9, 320, 240)
        produce(
            "video-frames", late, b"\xff\xd8frame\xff\xd9", frame.ts_ns, headers=frame.headers()
        )
    # The log's order: the late camera's 0-4, the other camera 20 s on, the late one's 5-11.
    for camera, seq in (
        [(late, s) for s in range(5)] + [(ahead, 20)] + [(late, s) for s in range(5, 12)]
    ):
        produce("video-detections", camera, detection(camera, seq), base_ns + seq * 10**9)
    status = CameraStatus(
        camera=late,
        ts=time.time_ns(),
        source="test",
        source_up=True,
        fps=1.0,
        width=320,
        height=240,
        partition=0,
    )
    producer.produce(prefix + "video-cameras", status.model_dump_json(), key=late)
    assert producer.flush(30) == 0
    with ServiceGroup(kafka_env(kafka.bootstrap, prefix)) as group:
        gateway = start_gateway(group)
        gateway.wait_ready(timeout=60)
        span = f"from={iso(base_ns / 1e9)}&to={iso(base_ns / 1e9 + 10)}"

        def timeline() -> dict[str, Any] | None:
            try:
                url = f"{gateway.url}/api/timeline/{late}?{span}"
                with urllib.request.urlopen(url, timeout=30) as response:
                    return dict(json.loads(response.read()))
            except urllib.error.HTTPError:
                return None  # not in the directory yet

        gateway.wait_for(lambda: timeline() is not None, 30, "the camera in the directory")
        answer = timeline()
    assert answer is not None
    assert answer["truncated"] is False
    assert [d["seq"] for d in answer["detections"]] == list(range(10))
