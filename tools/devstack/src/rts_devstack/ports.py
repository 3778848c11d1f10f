"""Loopback ports reserved for local stacks, tests and benchmarks, that nothing else takes.

A port found free a moment ago is not a port one may bind later: the kernel hands ports
of its ephemeral range (`/proc/sys/net/ipv4/ip_local_port_range`, 32768-60999 on Linux)
to every outgoing connection, and another test worker, another checkout's test run or
any client on the machine may take it between the check and the bind. So ports are
picked outside that range (`RANGE`, or RTS_PORT_RANGE=lo-hi), and each one is reserved
across processes by an exclusive `flock` on a file named after it in the temp folder:
other reservers skip it, and the lock ends with its holder, however it ends (the kernel
releases it; no stale file to clean). A port is taken only if nothing is bound to it
either (a stack run by hand, a process that outlived its reservation), and it stays
reserved until the `Ports` holding it is released: its holder starts the processes that
bind it, and releases it once they are stopped.
"""

from __future__ import annotations

import contextlib
import os
import random
import socket
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

from rts_devstack.locks import try_lock

# Below Linux's ephemeral range (and macOS's, 49152-65535), clear of the well-known
# defaults `make run` uses (8000, 9090-9130, 9404) and of Kubernetes' NodePorts
# (30000-32767) and kubelet ports (10248-10259).
RANGE = (20000, 29999)
LOCKS = Path(tempfile.gettempdir()) / "rts-ports"


class PortsExhausted(RuntimeError):
    """No free port is left in the range (or no free run of the size asked for)."""


def port_range() -> tuple[int, int]:
    """The range to pick from (both ends included), clipped below the ephemeral range."""
    value = os.environ.get("RTS_PORT_RANGE", "")
    low, high = (int(x) for x in value.split("-")) if value else RANGE
    ephemeral = ephemeral_range()
    if low < ephemeral[0] <= high:
        high = ephemeral[0] - 1
    if low > high or low < 1024 or (ephemeral[0] <= low <= ephemeral[1]):
        raise ValueError(
            f"RTS_PORT_RANGE={value or RANGE} must hold unprivileged ports outside the kernel's "
            f"ephemeral range {ephemeral[0]}-{ephemeral[1]}"
        )
    return low, high


def ephemeral_range() -> tuple[int, int]:
    """The ports the kernel picks for outgoing connections."""
    with contextlib.suppress(OSError, ValueError):
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    return 49152, 65535  # IANA's dynamic range, macOS's default


class Ports(Sequence[int]):
    """Reserved ports (a sequence of int), held until `release()` or the end of a `with`."""

    def __init__(self, ports: list[int], locks: list[int]) -> None:
        self._ports = ports
        self._locks = locks
        self._guard = threading.Lock()

    def __getitem__(self, index: int) -> int:  # type: ignore[override]
        return self._ports[index]

    def __len__(self) -> int:
        return len(self._ports)

    def __repr__(self) -> str:
        return f"Ports({self._ports})"

    def release(self) -> None:
        with self._guard:
            locks, self._locks = self._locks, []
        for fd in locks:
            os.close(fd)  # closing the file ends its flock

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def reserve(count: int = 1, *, contiguous: bool = False, host: str = "127.0.0.1") -> Ports:
    """`count` ports nobody else holds or binds, reserved until released; `contiguous`:
    consecutive ones (a stack whose replicas take `port + i`)."""
    if count < 1:
        raise ValueError("reserve at least one port")
    low, high = port_range()
    LOCKS.mkdir(mode=0o1777, parents=True, exist_ok=True)
    # Runs of `count` consecutive ports, or single ports, from a random start: reservers
    # rarely meet, and when they do the lock decides.
    width = count if contiguous else 1
    starts = list(range(low, high - width + 2))
    if not starts:
        raise PortsExhausted(f"RTS_PORT_RANGE {low}-{high} is narrower than {count} ports")
    first = random.randrange(len(starts))  # noqa: S311 - spreads reservers, not a secret
    held: list[tuple[int, int]] = []
    try:
        for start in starts[first:] + starts[:first]:
            run = _take_run(start, width, host)
            if run is None:
                continue
            held += run
            if len(held) == count:
                return Ports([p for p, _ in held], [fd for _, fd in held])
    except BaseException:
        _close(held)
        raise
    _close(held)
    what = f"{count} consecutive free ports" if contiguous else f"{count} free ports"
    raise PortsExhausted(f"no {what} left in {low}-{high} (RTS_PORT_RANGE)")


def _take_run(start: int, width: int, host: str) -> list[tuple[int, int]] | None:
    """Ports start..start+width-1 with their locks, or None (and no lock) if any is taken."""
    run: list[tuple[int, int]] = []
    for port in range(start, start + width):
        fd = try_lock(LOCKS / str(port), 0o666)
        if fd is not None and not _bindable(port, host):
            os.close(fd)
            fd = None
        if fd is None:
            _close(run)
            return None
        run.append((port, fd))
    return run


def _close(held: list[tuple[int, int]]) -> None:
    for _, fd in held:
        os.close(fd)


def _bindable(port: int, host: str) -> bool:
    """Nothing is bound to the port, on any address (a listener on 0.0.0.0 or on `host`)."""
    for address in {"0.0.0.0", host}:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((address, port))
            except OSError:
                return False
    return True
