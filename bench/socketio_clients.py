"""Many simulated dashboard clients in one process: each connects over WebSocket,
receives `new_event`, and records now - the event's ts. Prints one JSON line.

    .venv/bin/python bench/socketio_clients.py URL CLIENTS SECONDS
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from datetime import datetime

import socketio
from support import percentile


def event_time(ts: str) -> float:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


async def client(
    url: str, start: float, until: float, latencies: list[float], connected: list[int]
) -> None:
    sio = socketio.AsyncClient(reconnection=False)

    @sio.on("new_event")
    async def on_event(event: dict) -> None:  # type: ignore[type-arg]
        now = time.time()
        if start <= now < until:
            latencies.append(now - event_time(event["ts"]))

    try:
        await sio.connect(url, transports=["websocket"], wait_timeout=30)
    except socketio.exceptions.ConnectionError:
        return
    connected.append(1)
    await asyncio.sleep(max(0.0, until - time.time()))
    await sio.disconnect()


async def main(url: str, clients: int, seconds: float) -> None:
    latencies: list[float] = []
    connected: list[int] = []
    # Connect gradually, then measure for `seconds` once everybody is in.
    start = time.time() + clients / 100 + 5
    until = start + seconds
    tasks = []
    for _ in range(clients):
        tasks.append(asyncio.create_task(client(url, start, until, latencies, connected)))
        await asyncio.sleep(0.01)
    await asyncio.gather(*tasks)
    print(json.dumps({
        "clients": clients, "connected": len(connected), "received": len(latencies),
        "p50_ms": percentile(latencies, 0.5) * 1000, "p99_ms": percentile(latencies, 0.99) * 1000,
    }))  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3])))
