"""capture against a real RTSP server (GStreamer's, serving an H.264 clip whose frames
carry their number): frame for frame, over TCP or UDP, with a password that never leaks,
through a server restart and a stream that stalls, and with a wrong path or password."""

from __future__ import annotations

import json
import time
from pathlib import Path

import cv2
import numpy as np
from confluent_kafka import Message
from rts_common.contracts import (
    VIDEO_CAMERAS,
    VIDEO_DETECTIONS,
    VIDEO_FRAMES,
    CameraStatus,
    Detection,
)
from rts_devstack.cameras import RtspCamera, draw_frame, psnr, read_marker, write_clip
from rts_devstack.processes import http_get

from tests.cameras.conftest import CLIP_FPS, CLIP_SIZE, PASSWORD
from tests.fixtures.capture import Launcher, read_topic
from tests.fixtures.kafka import KafkaUnderTest
from tests.fixtures.processes import ServiceGroup, ServiceProcess, kafka_env, start_gateway

# Short timeouts, so that failures show within seconds.
FAST = (
    "--no-faces --stall-timeout 2 --open-timeout 4 --reconnect-max 1 --status-interval 0.2".split()
)


def _image(record: Message) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(record.value(), np.uint8), cv2.IMREAD_COLOR)


def _markers(records: list[Message]) -> list[int | None]:
    return [read_marker(_image(r)) for r in records]


def _up(capture: ServiceProcess) -> bool:
    return capture.metric("capture_source_up") == 1


def _kinds(records: list[Message]) -> list[str]:
    """The kinds of source events (offline, online) among detections, in order."""
    kinds = [Detection.model_validate_json(r.value()).kind for r in records]
    return [k for k in kinds if k in ("offline", "online")]


def _ups(records: list[Message], camera: str) -> list[bool]:
    """The camera's source_up over time in its status records, repeats collapsed."""
    seen: list[bool] = []
    for record in records:
        status = CameraStatus.model_validate_json(record.value())
        if status.camera == camera and (not seen or seen[-1] != status.source_up):
            seen.append(status.source_up)
    return seen


def test_capture_reads_an_h264_stream_frame_for_frame_and_never_shows_the_password(
    kafka: KafkaUnderTest,
    topic_prefix: str,
    launch_capture: Launcher,
    services: ServiceGroup,
    rtsp_camera: RtspCamera,
) -> None:
    capture = launch_capture("--source", rtsp_camera.url(), "--camera-id", "cam-rtsp", *FAST)
    capture.wait_for(lambda: capture.metric("capture_frames_total") >= 45, 30, "45 frames")
    # The camera goes away: what capture read from it is now final.
    rtsp_camera.stop()
    capture.wait_for(lambda: not _up(capture), 10, "the source to be lost")
    read = capture.metric("capture_source_frames_total")
    published = capture.metric("capture_frames_total")
    skipped = capture.metric("capture_frames_dropped_total", reason="behind")
    records = read_topic(kafka, topic_prefix + VIDEO_FRAMES.name, count=int(published), timeout=30)
    markers = _markers(records)
    # Every source frame, in order, was read: the last one read is frame number read - 1.
    # Each was published or, when a newer one came before it was encoded, skipped (live
    # video shows the newest frame): none lost, none twice, none out of order.
    assert None not in markers
    assert len(markers) == published >= 45
    assert markers == sorted(set(markers))
    assert markers[-1] == read - 1
    assert published + skipped == read
    # The content is the source's, not only its number (H.264 then JPEG: a close copy).
    n = markers[len(markers) // 2]
    assert psnr(_image(records[len(markers) // 2]), draw_frame(n, *CLIP_SIZE)) > 28

    gateway = start_gateway(services, env=kafka_env(kafka.bootstrap, topic_prefix))
    gateway.wait_ready()
    status, cameras = http_get(f"{gateway.url}/api/cameras")
    assert status == 200
    assert "cam-rtsp" in cameras
    metrics = capture.get("/metrics")[1]
    assert capture.terminate() == 0
    for where, text in (("log", capture.log(None)), ("metrics", metrics), ("api", cameras)):
        assert PASSWORD not in text, f"the camera's password is in capture's {where}"
    assert f"rtsp://127.0.0.1:{rtsp_camera.port}/stream" in capture.log(None)
    rtsp_camera.start()  # for the fixture's stop


def test_udp_transport_is_an_option(
    kafka: KafkaUnderTest, topic_prefix: str, launch_capture: Launcher, h264_clip: Path
) -> None:
    with RtspCamera(h264_clip, transport="udp") as camera:
        launch_capture(
            "--source", camera.url(), "--camera-id", "cam-udp", "--rtsp-transport", "udp", *FAST
        )
        records = read_topic(kafka, topic_prefix + VIDEO_FRAMES.name, count=30, timeout=30)
    markers = _markers(records)
    assert len(markers) == 30
    # On the loopback nothing is lost; on a real network a lost packet tears a frame until
    # the next keyframe (README, Cameras): what UDP trades for its lower latency.
    assert None not in markers
    assert markers == sorted(set(markers))


def test_h265_streams_are_read_too(
    kafka: KafkaUnderTest, topic_prefix: str, launch_capture: Launcher, tmp_path: Path
) -> None:
    clip = write_clip(tmp_path / "h265.mp4", frames=150, fps=CLIP_FPS, size=CLIP_SIZE, codec="h265")
    with RtspCamera(clip, codec="h265") as camera:
        launch_capture("--source", camera.url(), "--camera-id", "cam-h265", *FAST)
        records = read_topic(kafka, topic_prefix + VIDEO_FRAMES.name, count=20, timeout=30)
    markers = _markers(records)
    assert len(markers) == 20
    assert None not in markers
    assert markers == sorted(set(markers))  # in order, none twice (some skipped: see above)


def test_a_server_restart_is_a_gap_capture_recovers_from(
    kafka: KafkaUnderTest,
    topic_prefix: str,
    launch_capture: Launcher,
    services: ServiceGroup,
    rtsp_camera: RtspCamera,
) -> None:
    capture = launch_capture("--source", rtsp_camera.url(), "--camera-id", "cam-restart", *FAST)
    capture.wait_for(lambda: _up(capture), 30, "the RTSP stream to be up")
    # The status heartbeat says so too before the server goes (the gauge can be up for
    # less than a status interval before the stop below, and then no status says it was).
    cameras_topic = topic_prefix + VIDEO_CAMERAS.name
    up = read_topic(
        kafka, cameras_topic, timeout=30, until=lambda got: _ups(got, "cam-restart")[-1:] == [True]
    )
    assert _ups(up, "cam-restart")[-1:] == [True]
    before = capture.metric("capture_frames_total")

    rtsp_camera.stop()
    noticed = capture.wait_for(lambda: not _up(capture), 10, "the source to be lost")
    assert capture.readiness()["source"] in ("read_failed", "stalled")
    down_at = time.monotonic()
    capture.wait_for(
        lambda: capture.metric("capture_source_failures_total", reason="open_failed") >= 1,
        10,
        "a reopen to fail while the server is down",
    )
    rtsp_camera.start()
    back = capture.wait_for(lambda: _up(capture), 20, "the source to recover")
    capture.wait_for(
        lambda: capture.metric("capture_frames_total") > before + 10, 10, "frames again"
    )
    print(
        f"\nRTSP server restart: loss noticed in {noticed:.2f} s, frames again "
        f"{back:.2f} s after the server was back (down {time.monotonic() - down_at - back:.1f} s)"
    )
    assert capture.metric("capture_source_reopens_total") >= 1
    statuses = read_topic(
        kafka,
        cameras_topic,
        timeout=30,
        until=lambda got: _ups(got, "cam-restart")[-3:] == [True, False, True],
    )
    assert _ups(statuses, "cam-restart")[-3:] == [True, False, True]

    events = [
        Detection.model_validate_json(r.value())
        for r in read_topic(
            kafka,
            topic_prefix + VIDEO_DETECTIONS.name,
            timeout=30,
            until=lambda got: _kinds(got)[-2:] == ["offline", "online"],
        )
    ]
    offline = [e for e in events if e.kind == "offline"]
    online = [e for e in events if e.kind == "online"]
    assert len(offline) == 1
    assert len(online) == 1
    # The gap: from the last frame before the restart to the first one after it.
    assert online[0].ts - offline[0].ts > 0.5e9
    assert capture.terminate() == 0

    # The player's timeline gets it as marks it draws the gap between.
    gateway = start_gateway(services, env=kafka_env(kafka.bootstrap, topic_prefix))
    gateway.wait_ready()
    status, body = http_get(f"{gateway.url}/api/timeline/cam-restart?step=100")
    assert status == 200, body
    marks = {kind: start for start, kind, _count in json.loads(body)["marks"]}
    assert marks["offline"] < marks["online"]


def test_a_stream_that_stalls_without_closing_is_detected_within_the_stall_timeout(
    launch_capture: Launcher, rtsp_camera: RtspCamera
) -> None:
    capture = launch_capture("--source", rtsp_camera.url(), "--camera-id", "cam-stall", *FAST)
    capture.wait_for(lambda: _up(capture), 30, "the RTSP stream to be up")

    rtsp_camera.stall()
    noticed = capture.wait_for(lambda: not _up(capture), 15, "the stall to be noticed")
    assert capture.get("/readyz")[0] == 503, capture.log()
    rtsp_camera.resume()
    back = capture.wait_for(lambda: _up(capture), 20, "the stream to recover")
    before = capture.metric("capture_frames_total")
    capture.wait_for(lambda: capture.metric("capture_frames_total") > before + 5, 10, "frames")
    print(f"\nRTSP stall: noticed in {noticed:.2f} s (--stall-timeout 2), back in {back:.2f} s")
    # A read timeout, not a hang: the reader's own call returned, no thread was abandoned.
    assert "abandoning a reader" not in capture.log(None)
    # Lost once, back once: the frames FFmpeg hands out as its read timeouts end the reads
    # of a silent stream (those it held back) are not the stream coming back.
    recovered = [r for r in capture.log_records() if r.get("msg") == "source recovered"]
    assert len(recovered) == 1, recovered
    assert capture.terminate() == 0


def test_a_wrong_password_or_path_says_so_and_retries_without_flooding_the_log(
    launch_capture: Launcher, rtsp_camera: RtspCamera
) -> None:
    wrong_password = launch_capture(
        "--source", rtsp_camera.url(password="wrong"), "--camera-id", "cam-pw", *FAST
    )
    wrong_path = launch_capture(
        "--source", rtsp_camera.url(path="/nothing"), "--camera-id", "cam-path", *FAST
    )
    for capture in (wrong_password, wrong_path):
        capture.wait_for(
            lambda c=capture: c.metric("capture_source_failures_total", reason="open_failed") >= 4,
            40,
            "four failed attempts",
        )
        assert capture.readiness()["source"] == "open_failed"
        assert capture.terminate() == 0
    for capture, advice in (
        (wrong_password, "refused the user name or password"),
        (wrong_path, "no stream at that path"),
    ):
        lost = [r for r in capture.log_records() if r.get("msg", "").startswith("source")]
        assert lost, capture.log()
        assert advice in lost[0]["detail"]
        # Four failures or more, one line: the same failure again is counted, not logged.
        assert len(lost) == 1, lost
        assert "wrong" not in capture.log(None)
