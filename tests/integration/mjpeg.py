"""A minimal MJPEG reader on a raw socket, so tests control how fast it reads."""

from __future__ import annotations

import re
import socket
import time
from dataclasses import dataclass


@dataclass
class Part:
    headers: dict[str, str]
    jpeg: bytes
    received: float


class MjpegClient:
    """A minimal MJPEG reader on a raw socket, so tests control how fast it reads."""

    def __init__(
        self, url: str, rcvbuf: int | None = None, headers: dict[str, str] | None = None
    ) -> None:
        match = re.match(r"http://([^:/]+):(\d+)(/.*)", url)
        assert match
        host, port, path = match.group(1), int(match.group(2)), match.group(3)
        self.sock = socket.socket()
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(10)
        self.sock.connect((host, port))
        extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n".encode())
        self.raw = b""
        self.buffer = b""
        while b"\r\n\r\n" not in self.raw:
            self._recv()
        head, _, self.raw = self.raw.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers = {k.lower(): v for k, v in (line.split(": ", 1) for line in lines[1:])}
        self.chunked = self.headers.get("transfer-encoding") == "chunked"

    def _recv(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("connection closed")
        self.raw += data

    def _fill(self) -> None:
        """Move at least one more byte of body into `buffer`, de-chunking if needed."""
        if not self.chunked:
            if not self.raw:
                self._recv()
            self.buffer, self.raw = self.buffer + self.raw, b""
            return
        while b"\r\n" not in self.raw:
            self._recv()
        size_line, _, rest = self.raw.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            raise EOFError("stream ended")
        while len(rest) < size + 2:
            self._recv()
            rest = self.raw.partition(b"\r\n")[2]
        self.buffer += rest[:size]
        self.raw = rest[size + 2 :]

    def _until(self, marker: bytes) -> bytes:
        while marker not in self.buffer:
            self._fill()
        head, _, self.buffer = self.buffer.partition(marker)
        return head

    def _exactly(self, n: int) -> bytes:
        while len(self.buffer) < n:
            self._fill()
        out, self.buffer = self.buffer[:n], self.buffer[n:]
        return out

    def part(self) -> Part:
        """The next multipart part."""
        boundary = self._until(b"\r\n")
        while boundary == b"":
            boundary = self._until(b"\r\n")
        assert boundary == b"--frame", boundary
        head = self._until(b"\r\n\r\n").decode()
        headers = dict(line.split(": ", 1) for line in head.split("\r\n"))
        jpeg = self._exactly(int(headers["Content-Length"]))
        assert self._exactly(2) == b"\r\n"
        return Part(headers, jpeg, time.time())

    def parts_for(self, seconds: float) -> list[Part]:
        end = time.monotonic() + seconds
        parts = []
        while time.monotonic() < end:
            parts.append(self.part())
        return parts

    def close(self) -> None:
        self.sock.close()
