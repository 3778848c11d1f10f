"""Faults for fault tests: a network partition a test controls, and a disk that fills up.

`TcpProxy` forwards one port to another and can be blocked: while blocked it moves no
byte in either direction and takes no new connection, as a partition between two hosts
does (TCP connections stay open, nothing arrives; the kernel queues what it can and
the peers' own timeouts decide what gives). `SmallDisk` mounts a size-limited tmpfs for
a broker's log directory (root only) and fills it to the last byte on demand.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import socket
import subprocess
import threading
from pathlib import Path
from types import TracebackType
from typing import Self


class TcpProxy:
    def __init__(self, listen_port: int, target_port: int, host: str = "127.0.0.1") -> None:
        self.host, self.listen_port, self.target_port = host, listen_port, target_port
        self._open = threading.Event()
        self._open.set()
        self._stop = threading.Event()
        self._server = socket.create_server((host, listen_port), reuse_port=False)
        self._threads: list[threading.Thread] = []
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    @property
    def blocked(self) -> bool:
        return not self._open.is_set()

    def block(self) -> None:
        self._open.clear()

    def heal(self) -> None:
        self._open.set()

    def start(self) -> Self:
        self._spawn(self._accept)
        return self

    def stop(self) -> None:
        self._stop.set()
        self._open.set()
        self._server.close()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _spawn(self, target: object, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        thread.start()
        self._threads.append(thread)

    def _accept(self) -> None:
        while not self._stop.is_set():
            self._open.wait()
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection((self.host, self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, upstream]
            self._spawn(self._relay, client, upstream)

    def _relay(self, a: socket.socket, b: socket.socket) -> None:
        """Both directions of one connection, paused (not dropped) while blocked."""
        selector = selectors.DefaultSelector()
        selector.register(a, selectors.EVENT_READ, b)
        selector.register(b, selectors.EVENT_READ, a)
        try:
            while not self._stop.is_set():
                self._open.wait()
                for key, _ in selector.select(timeout=0.2):
                    if not self._open.is_set():
                        break  # leave it in the kernel's buffers until healed
                    source: socket.socket = key.fileobj  # type: ignore[assignment]
                    data = source.recv(65536)
                    if not data:
                        return
                    key.data.sendall(data)
        except OSError:
            return
        finally:
            selector.close()
            for sock in (a, b):
                with contextlib.suppress(OSError):
                    sock.close()


class SmallDisk:
    """A tmpfs of `size_mb` at `path` (needs root to mount), for a broker's data."""

    def __init__(self, path: Path, size_mb: int) -> None:
        self.path = path
        self.size_mb = size_mb
        self._filler = path / "filler"

    def __enter__(self) -> Self:
        self.path.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={self.size_mb}m", "tmpfs", str(self.path)],
            check=True,
            capture_output=True,
        )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        subprocess.run(["umount", "-l", str(self.path)], check=False, capture_output=True)

    def free_bytes(self) -> int:
        stats = os.statvfs(self.path)
        return stats.f_bavail * stats.f_frsize

    def fill(self) -> None:
        """Take every free byte (until `release`)."""
        fd = os.open(self._filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            for size in (1 << 20, 4096, 1):  # big steps, then what is left
                with contextlib.suppress(OSError):  # ENOSPC: full, as intended
                    while os.write(fd, b"\0" * size):
                        pass
        finally:
            os.close(fd)

    def release(self) -> None:
        self._filler.unlink(missing_ok=True)
