"""Exclusive locks on files (`flock`) that a process holds while it lives: the kernel
releases one when its holder ends, however it ends, so a held lock always means a live
holder. What reserves a port (`ports`) and what holds a data folder for `make run`
(`runlock`) are such locks."""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path


def try_lock(path: Path, mode: int = 0o600) -> int | None:
    """`path` (created with `mode` if missing) locked by us: its file descriptor, which
    children do not inherit; None when another process holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, mode)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EACCES):
            return None
        raise
    return fd
