"""The video article's web app: one module-level Kafka consumer, iterated inside the
Flask response that streams `multipart/x-mixed-replace` parts, served by gunicorn's
default sync worker (one request at a time).

    gunicorn -b 127.0.0.1:PORT bench.baselines.video_app:app
    (KAFKA_BOOTSTRAP and FRAMES_TOPIC in the environment)

The additions, for the benchmark's client: each part carries a Content-Length and the
frame's capture time (X-Frame-Timestamp, from the producer's `ts` header).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from confluent_kafka import Consumer
from flask import Flask, Response

app = Flask(__name__)
TOPIC = os.environ["FRAMES_TOPIC"]
consumer = Consumer(
    {
        "bootstrap.servers": os.environ["KAFKA_BOOTSTRAP"],
        "group.id": f"baseline-{TOPIC}",
        "auto.offset.reset": "latest",
    }
)
consumer.subscribe([TOPIC])


def frames() -> Iterator[bytes]:
    while True:
        msg = consumer.poll(1.0)
        if msg is None or msg.error() is not None:
            continue
        png = msg.value() or b""
        ts = dict(msg.headers() or []).get("ts")
        ts = ts if isinstance(ts, bytes) else b"0"
        yield (
            b"--frame\r\nContent-Type: image/png\r\n"
            + b"Content-Length: "
            + str(len(png)).encode()
            + b"\r\n"
            + b"X-Frame-Timestamp: "
            + ts
            + b"\r\n\r\n"
            + png
            + b"\r\n\r\n"
        )


@app.get("/")
def index() -> str:
    return "baseline video"


@app.get("/kaf")
def kaf() -> Response:
    return Response(frames(), mimetype="multipart/x-mixed-replace; boundary=frame")
