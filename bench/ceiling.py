"""The loopback ceiling: what one process can push to N MJPEG viewers over loopback with
nothing but `sendall`, the reference the gateway's fan-out throughput is a ratio of.

One thread writes the same part (a real frame of the camera, with the gateway's part
headers) to every connected viewer in turn, with the gateway's default send buffer per
connection; `--fps 0` writes as fast as the viewers take it, `--fps F` paces the parts.
`GET /ready` answers at once; any other GET becomes a viewer.

    python -m bench.ceiling --port P --part FILE [--fps 0]
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import threading
import time
from pathlib import Path

SEND_BUFFER = 64 * 1024  # the gateway's --stream-send-buffer default
HEADER = b"HTTP/1.0 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=frame\r\n\r\n"


class Ceiling:
    def __init__(self, jpeg: bytes, fps: float) -> None:
        self.jpeg = jpeg
        self.fps = fps
        self.viewers: list[socket.socket] = []
        self.lock = threading.Lock()

    def accept(self, server: socket.socket) -> None:
        while True:
            conn, _ = server.accept()
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            request = b""
            while b"\r\n\r\n" not in request:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                request += chunk
            if request.startswith(b"GET /ready"):
                conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")
                conn.close()
                continue
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
            conn.sendall(HEADER)
            with self.lock:
                self.viewers.append(conn)

    def part(self, seq: int) -> bytes:
        head = (
            f"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {len(self.jpeg)}\r\n"
            f"X-Frame-Seq: {seq}\r\nX-Frame-Timestamp: {time.time_ns()}\r\n\r\n"
        ).encode("ascii")
        return head + self.jpeg + b"\r\n"

    def send(self) -> None:
        seq = 0
        interval = 1 / self.fps if self.fps else 0.0
        next_at = time.monotonic()
        while True:
            if interval:
                next_at += interval
                time.sleep(max(0.0, next_at - time.monotonic()))
            with self.lock:
                viewers = list(self.viewers)
            if not viewers:
                time.sleep(0.01)
                continue
            data = self.part(seq)
            seq += 1
            for conn in viewers:
                try:
                    conn.sendall(data)
                except OSError:
                    with self.lock:
                        self.viewers.remove(conn)
                    with contextlib.suppress(OSError):
                        conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--part", type=Path, required=True, help="a JPEG frame")
    parser.add_argument("--fps", type=float, default=0.0)
    args = parser.parse_args()
    ceiling = Ceiling(args.part.read_bytes(), args.fps)
    server = socket.create_server(("127.0.0.1", args.port), backlog=4096)
    threading.Thread(target=ceiling.accept, args=(server,), daemon=True).start()
    ceiling.send()


if __name__ == "__main__":
    main()
