"""Whether a loopback port answers, and URLs without their credentials (ports a test binds
are reserved by `rts_devstack.ports`)."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit, urlunsplit


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


def public_url(url: str) -> str:
    """`url` without its user name, password, query and fragment: what logs, metrics and
    dead letters may show of a camera's or a receiver's address."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))
