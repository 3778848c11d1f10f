"""Ports for the cluster's listeners, chosen below the kernel's ephemeral range.

A port of the ephemeral range (32768-60999 on Linux) that is free now can be taken a
moment later by any process's outgoing connection; the ports a cluster's programs and
host-network pods bind are chosen below that range, where only a listener that asks for
a port by number can be, and checked free on every address (a host-network pod binds
0.0.0.0).
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

LOWEST = 10_000
EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def ephemeral_start() -> int:
    try:
        return int(EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768


def bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def free_ports(count: int, *, rng: random.Random | None = None) -> list[int]:
    """`count` distinct ports below the ephemeral range, free on every address now."""
    rng = rng or random.SystemRandom()
    top = ephemeral_start()
    if top - LOWEST < count * 10:
        raise ValueError(f"the ephemeral range starts at {top}: too few ports below it")
    chosen: list[int] = []
    for _ in range(count * 200):
        port = rng.randrange(LOWEST, top)
        if port not in chosen and bindable(port):
            chosen.append(port)
            if len(chosen) == count:
                return chosen
    raise OSError(f"no {count} free ports between {LOWEST} and {top}")


def port_bound(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0
