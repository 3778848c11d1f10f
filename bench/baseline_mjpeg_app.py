"""The baseline's way of serving MJPEG, for comparison only: a Kafka consumer per viewer,
iterated inside the response generator, every frame of the topic relayed to the viewer
(served here by gunicorn's gthread worker; confluent-kafka instead of kafka-python so the
client library is not what is compared).

    gunicorn -k gthread --threads 256 -b 127.0.0.1:PORT bench.baseline_mjpeg_app:app
    (KAFKA_BOOTSTRAP and FRAMES_TOPIC in the environment)
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

from confluent_kafka import Consumer
from flask import Flask, Response

app = Flask(__name__)
BOOTSTRAP = os.environ["KAFKA_BOOTSTRAP"]
TOPIC = os.environ["FRAMES_TOPIC"]


def frames(camera: str) -> Iterator[bytes]:
    consumer = Consumer(
        {"bootstrap.servers": BOOTSTRAP, "group.id": f"baseline-{uuid.uuid4()}",
         "auto.offset.reset": "latest", "enable.auto.commit": False}
    )  # fmt: skip
    consumer.subscribe([TOPIC])
    try:
        while True:
            msg = consumer.poll(1.0)
            if msg is None or msg.error() is not None or msg.key() != camera.encode():
                continue
            headers = dict(msg.headers() or [])
            jpeg = msg.value() or b""
            # Content-Length is the one addition to the baseline's parts: the benchmark's
            # client reads both servers the same way.
            yield (
                b"--frame\r\nContent-Type: image/jpeg\r\n"
                + b"Content-Length: "
                + str(len(jpeg)).encode()
                + b"\r\n"
                + b"X-Frame-Timestamp: "
                + headers.get("ts", b"0")
                + b"\r\n\r\n"
                + jpeg
                + b"\r\n"
            )
    finally:
        consumer.close()


@app.get("/kaf/<camera>")
def kaf(camera: str) -> Response:
    return Response(frames(camera), mimetype="multipart/x-mixed-replace; boundary=frame")
