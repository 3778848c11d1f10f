"""Reading an MJPEG stream (`multipart/x-mixed-replace`) part by part.

The gateway gives every part a Content-Length and the frame's X-Frame-Seq and
X-Frame-Timestamp (capture time, ns since the epoch), so a part is read by its length,
never by scanning the JPEG for the boundary.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

# Longest header line and most header lines a part may have: a broken stream must not
# make the probe buffer without bound.
MAX_LINE = 1024
MAX_HEADERS = 32


class StreamError(Exception):
    """The stream is not the MJPEG the gateway sends."""


class Readable(Protocol):
    def readline(self, limit: int = -1, /) -> bytes: ...
    def read(self, amount: int = -1, /) -> bytes: ...


@dataclass(frozen=True)
class Part:
    camera: str
    seq: int
    ts_ns: int
    jpeg: bytes


def boundary_of(content_type: str) -> str:
    """The boundary named by a `multipart/x-mixed-replace; boundary=...` content type."""
    kind, _, params = content_type.partition(";")
    if kind.strip().lower() != "multipart/x-mixed-replace":
        raise StreamError(f"not an MJPEG stream: {content_type!r}")
    for param in params.split(";"):
        name, _, value = param.strip().partition("=")
        if name.lower() == "boundary" and value:
            return value.strip('"')
    raise StreamError(f"no boundary in {content_type!r}")


def parts(stream: Readable, boundary: str) -> Iterator[Part]:
    """Each part of the stream until it ends."""
    delimiter = f"--{boundary}".encode()
    while True:
        line = stream.readline(MAX_LINE)
        if not line:
            return
        line = line.rstrip(b"\r\n")
        if not line:
            continue  # the CRLF that ends the previous part's body
        if line == delimiter + b"--":
            return
        if line != delimiter:
            raise StreamError(f"expected the boundary, got {line[:80]!r}")
        headers = _headers(stream)
        try:
            length = int(headers["content-length"])
            part = Part(
                camera=headers.get("x-camera", ""),
                seq=int(headers["x-frame-seq"]),
                ts_ns=int(headers["x-frame-timestamp"]),
                jpeg=b"",
            )
        except (KeyError, ValueError) as exc:
            raise StreamError(f"part without a valid {exc} header") from None
        body = stream.read(length)
        if len(body) < length:
            return  # the connection ended inside a part
        yield Part(part.camera, part.seq, part.ts_ns, body)


def _headers(stream: Readable) -> dict[str, str]:
    headers: dict[str, str] = {}
    for _ in range(MAX_HEADERS):
        line = stream.readline(MAX_LINE).rstrip(b"\r\n")
        if not line:
            return headers
        name, sep, value = line.decode("latin-1").partition(":")
        if not sep:
            raise StreamError(f"bad part header {line[:80]!r}")
        headers[name.strip().lower()] = value.strip()
    raise StreamError(f"more than {MAX_HEADERS} part headers")
