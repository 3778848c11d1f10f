"""The video article's producer: read a frame, encode it as PNG, send it, sleep 0.2 s.

The frames are the capture service's test pattern at the same size (the article reads a
camera or a file), so both pipelines carry the same pictures. The one addition: a `ts`
header with the time the frame was read, for the benchmark's latency.

    python -m bench.baselines.video_producer --bootstrap HOST:PORT --topic T [--width W]
"""

from __future__ import annotations

import argparse
import signal
import time

import cv2
from confluent_kafka import Producer
from rts_capture.sources.pattern import TestPattern

SLEEP = 0.2  # the article's fixed pause after each frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    args = parser.parse_args()
    producer = Producer({"bootstrap.servers": args.bootstrap})
    source = TestPattern(args.width, args.height, 15)
    stop = False

    def on_term(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    sent = 0
    started = time.monotonic()
    while not stop:
        frame = source.read()
        read_at = time.time_ns()
        if frame is None:
            continue
        ok, buffer = cv2.imencode(".png", frame)
        if ok:
            producer.produce(args.topic, buffer.tobytes(), headers={"ts": str(read_at)})
            producer.poll(0)
            sent += 1
        time.sleep(SLEEP)
    producer.flush(5)
    print(f"sent {sent} frames, {sent / (time.monotonic() - started):.2f} fps", flush=True)


if __name__ == "__main__":
    main()
