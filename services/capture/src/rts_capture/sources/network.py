"""Network cameras: why a stream URL did not open, and cameras that serve one JPEG per
request (snapshot URLs).

OpenCV's FFmpeg backend says only "not opened": it does not tell a wrong password from a
wrong path or a camera that is off. When a URL fails, `diagnose` asks the camera itself
(an RTSP DESCRIBE, an HTTP GET) and turns its answer into what to fix. Neither ever
puts the URL's credentials in a message.
"""

from __future__ import annotations

import base64
import hashlib
import re
import socket
import urllib.error
import urllib.request
from typing import cast
from urllib.parse import SplitResult, unquote, urlsplit, urlunsplit

import cv2
import numpy as np
from rts_common.net import public_url as public

from rts_capture.sources import Image, Source, SourceError

RTSP_PORT = 554
HTTP_STATUS = {
    401: "the camera refused the user name or password",
    403: "the camera forbids this user that stream",
    404: "the camera has no stream at that path",
    454: "the camera has no such session",
    503: "the camera is busy (too many clients?)",
}


def credentials(parts: SplitResult) -> tuple[str, str]:
    return unquote(parts.username or ""), unquote(parts.password or "")


def diagnose(url: str, timeout: float) -> str:
    """What the camera at `url` says when asked directly, as advice; never raises."""
    parts = urlsplit(url)
    try:
        if parts.scheme.lower() in ("rtsp", "rtsps"):
            return _rtsp(parts, timeout)
        return _http(url, timeout)
    except Exception as exc:  # noqa: BLE001 - a diagnosis must not become a new failure
        return f"no diagnosis: {type(exc).__name__}"


def _connect_error(host: str, port: int, exc: OSError) -> str:
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve {host} (DNS)"
    if isinstance(exc, ConnectionRefusedError):
        return f"nothing listens at {host}:{port} (camera off, or another port)"
    if isinstance(exc, TimeoutError):
        return f"{host}:{port} does not answer (unreachable, or a firewall drops it)"
    return f"{host}:{port}: {exc.strerror or type(exc).__name__}"


def _rtsp(parts: SplitResult, timeout: float) -> str:
    host, port = parts.hostname or "", parts.port or RTSP_PORT
    target = urlunsplit((parts.scheme, f"{host}:{port}", parts.path or "/", parts.query, ""))
    user, password = credentials(parts)
    try:
        with socket.create_connection((host, port), timeout=timeout) as conn:
            conn.settimeout(timeout)
            status, headers = _describe(conn, target, 1, "")
            challenge = headers.get("www-authenticate", "")
            if status == 401 and user:
                authorization = _authorization(challenge, user, password, target)
                status, headers = _describe(conn, target, 2, authorization)
    except OSError as exc:
        return _connect_error(host, port, exc)
    if status == 200:
        return "the camera answers and describes the stream, but it did not decode (codec?)"
    if status == 401 and not user:
        return "the camera needs a user name and password (rtsp://user:password@host/...)"
    return HTTP_STATUS.get(status, f"the camera answered RTSP status {status}")


def _describe(conn: socket.socket, url: str, seq: int, auth: str) -> tuple[int, dict[str, str]]:
    request = f"DESCRIBE {url} RTSP/1.0\r\nCSeq: {seq}\r\nAccept: application/sdp\r\n"
    if auth:
        request += f"Authorization: {auth}\r\n"
    conn.sendall((request + "\r\n").encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    match = re.match(r"RTSP/\d\.\d (\d{3})", lines[0])
    if match is None:
        raise OSError("not an RTSP server")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0") or 0)
    while len(body) < length:  # read the SDP off the connection before the next request
        chunk = conn.recv(length - len(body))
        if not chunk:
            break
        body += chunk
    return int(match.group(1)), headers


def _authorization(challenge: str, user: str, password: str, url: str) -> str:
    """Basic or Digest (RFC 2617, MD5, as RTSP cameras use it) for a DESCRIBE of `url`."""
    if not challenge.lower().startswith("digest"):
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        return f"Basic {token}"
    fields = dict(re.findall(r'(\w+)="?([^",]*)"?', challenge))
    realm, nonce = fields.get("realm", ""), fields.get("nonce", "")

    def md5(text: str) -> str:
        return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()

    response = md5(f"{md5(f'{user}:{realm}:{password}')}:{nonce}:{md5(f'DESCRIBE:{url}')}")
    return (
        f'Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="{url}", '
        f'response="{response}"'
    )


def _opener(url: str) -> tuple[urllib.request.OpenerDirector, str]:
    """An opener that answers Basic and Digest challenges with the URL's credentials, and
    the URL without them (urllib would put them in the Host header otherwise)."""
    parts = urlsplit(url)
    user, password = credentials(parts)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    bare = urlunsplit((parts.scheme, host, parts.path, parts.query, ""))
    handlers: list[urllib.request.BaseHandler] = []
    if user:
        passwords = urllib.request.HTTPPasswordMgrWithDefaultRealm()
        passwords.add_password(None, bare, user, password)
        handlers += [
            urllib.request.HTTPBasicAuthHandler(passwords),
            urllib.request.HTTPDigestAuthHandler(passwords),
        ]
    return urllib.request.build_opener(*handlers), bare


def _http(url: str, timeout: float) -> str:
    opener, bare = _opener(url)
    parts = urlsplit(bare)
    host, port = parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with opener.open(bare, timeout=timeout) as response:
            kind = response.headers.get_content_type()
    except urllib.error.HTTPError as err:
        return HTTP_STATUS.get(err.code, f"the camera answered HTTP status {err.code}")
    except urllib.error.URLError as err:
        reason = err.reason
        if isinstance(reason, OSError):
            return _connect_error(host, port, reason)
        return str(reason)
    except OSError as exc:
        return _connect_error(host, port, exc)
    if kind == "image/jpeg":
        return "the URL serves one JPEG per request: a snapshot URL (pass --snapshot)"
    return f"the camera answers with {kind}, which did not decode as video"


class SnapshotSource(Source):
    """A camera's snapshot URL: one JPEG per GET, polled at the reader's pace."""

    kind = "url"
    paced = True

    def __init__(self, url: str, fps: float, timeout: float) -> None:
        self.fps = fps
        self._opener, self._url = _opener(url)
        self._timeout = timeout
        self._public = public(url)

    def read(self) -> Image | None:
        try:
            with self._opener.open(self._url, timeout=self._timeout) as response:
                body = response.read()
        except (OSError, ValueError):
            return None
        image = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
        return None if image is None else cast(Image, image)


def open_snapshot(url: str, fps: float, timeout: float) -> Source:
    """The snapshot source, once one GET gave a JPEG (else SourceError saying why)."""
    source = SnapshotSource(url, fps, timeout)
    if source.read() is None:
        raise SourceError(f"{public(url)} gave no JPEG: {diagnose(url, timeout)}")
    return source
