"""The events article's server: a background thread iterates a Kafka consumer and emits
every playback event to every browser as one Socket.IO `new_event` message, run with
`socketio.run` (Flask-SocketIO's threading mode: the article installs no eventlet).

    python -m bench.baselines.events_app --bootstrap HOST:PORT --topic T --port P
"""

from __future__ import annotations

import argparse
import json
import threading
from typing import Any

from confluent_kafka import Consumer
from flask import Flask
from flask_socketio import SocketIO

app = Flask(__name__)
socketio = SocketIO(app, cors_allowed_origins="*", async_mode="threading")


def kafka_listener(bootstrap: str, topic: str) -> None:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "realtime-demo",
            "auto.offset.reset": "latest",
            "enable.auto.commit": True,
        }
    )
    consumer.subscribe([topic])
    while True:
        msg = consumer.poll(1.0)
        if msg is None or msg.error() is not None:
            continue
        event: dict[str, Any] = json.loads(msg.value() or b"{}")
        socketio.emit("new_event", event)


@app.get("/")
def index() -> str:
    return "baseline events"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    threading.Thread(target=kafka_listener, args=(args.bootstrap, args.topic), daemon=True).start()
    socketio.run(app, host="127.0.0.1", port=args.port, allow_unsafe_werkzeug=True)


if __name__ == "__main__":
    main()
