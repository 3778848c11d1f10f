"""The concurrency runtime: eventlet green threads or plain threads, behind one interface.

The gateway's request handlers, Socket.IO and fan-out logic run in the *app context*:
green threads under eventlet, ordinary threads under gthread. Kafka's client is a C
library whose calls block the OS thread; under eventlet that would freeze every green
thread at once (a single `poll(2.0)` stops the whole hub for 2 s). So every Kafka call
runs on a *native* OS thread, and native threads talk to the app context only through
`call_soon_threadsafe`, never by touching app-context locks, queues, metrics or logs
(eventlet turns those into green primitives, which are not safe across OS threads).
"""

from __future__ import annotations

import collections
import contextlib
import os
import select
import socket
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from types import ModuleType
from typing import Any, Literal, Protocol, TypeVar

T = TypeVar("T")
AsyncMode = Literal["eventlet", "threading"]

# How long the eventlet dispatcher runs callbacks before yielding to other green threads.
DISPATCH_SLICE = 0.005


class Flag(Protocol):
    """threading.Event's interface, for one waiter at a time."""

    def set(self) -> None: ...
    def clear(self) -> None: ...
    def is_set(self) -> bool: ...
    def wait(self, timeout: float | None = None) -> bool: ...


class Runtime(ABC):
    mode: AsyncMode

    @abstractmethod
    def start_native_thread(self, target: Callable[[], None], name: str) -> None:
        """Run `target` on a real OS thread (where blocking C calls are harmless)."""

    @abstractmethod
    def call_soon_threadsafe(self, fn: Callable[..., Any], *args: Any) -> None:
        """From a native thread: run `fn(*args)` in the app context, in call order."""

    @abstractmethod
    def spawn(self, fn: Callable[..., Any], *args: Any) -> None:
        """Start a background task in the app context."""

    @abstractmethod
    def sleep(self, seconds: float) -> None:
        """Sleep in the app context (yields to other green threads under eventlet)."""

    @abstractmethod
    def native_sleep(self, seconds: float) -> None:
        """Sleep on a native thread."""

    @abstractmethod
    def offload(self, fn: Callable[..., T], *args: Any) -> T:
        """Run CPU-heavy `fn(*args)` off the app context's thread and return its result.

        Under eventlet, only the calling green thread waits; the others keep running.
        """

    def pending(self) -> int:
        """Callbacks posted by native threads and not yet run (a backlog indicator)."""
        return 0

    @abstractmethod
    def native_event(self) -> threading.Event:
        """An event a native thread can wait on and the app context can set."""

    def flag(self) -> Flag:
        """An event for the app context, waited on by one thread at a time (a viewer's
        mailbox): set thousands of times a second, it must cost little."""
        return threading.Event()

    def call_and_wait(self, fn: Callable[..., T], *args: Any, timeout: float) -> T:
        """From a native thread: run `fn(*args)` in the app context, after every call posted
        before it, and return its result (TimeoutError when the app context is too busy)."""
        done = self.native_event()
        outcome: list[tuple[Any, BaseException | None]] = []

        def run() -> None:
            try:
                outcome.append((fn(*args), None))
            except Exception as exc:  # noqa: BLE001 - re-raised on the waiting thread
                outcome.append((None, exc))
            finally:
                done.set()

        self.call_soon_threadsafe(run)
        if not done.wait(timeout):
            raise TimeoutError(f"the app context did not run {fn!r} within {timeout}s")
        result, error = outcome[0]
        if error is not None:
            raise error
        return result  # type: ignore[no-any-return]

    def serialized(self, fn: Callable[[], None]) -> Callable[[], None]:
        """`fn` to be run by the dispatcher, in turn with the consumers' batches: for a
        periodic task that reads or changes the state those batches change."""
        return lambda: self.call_soon_threadsafe(fn)

    def green_threads(self) -> int:
        """Green threads alive (0 when the runtime has none)."""
        return 0

    # The standard library's own `select` (eventlet's green one has no poll()).
    _select: ModuleType = select

    def peer_closed(self, sock: socket.socket) -> bool:
        """Whether the other end closed `sock` (or it broke), checked without reading from
        it or waiting."""
        try:
            fd = sock.fileno()
        except OSError:
            return True
        if fd < 0:
            return True
        poller = self._select.poll()
        poller.register(fd, self._select.POLLRDHUP | self._select.POLLHUP | self._select.POLLERR)
        return bool(poller.poll(0))


class _CallQueue:
    """A lock-free hand-off: native threads append, one app-context dispatcher runs.

    `collections.deque.append` and `popleft` are atomic under the GIL, so native threads
    never take a lock that the app context could hold.
    """

    def __init__(self) -> None:
        self.calls: collections.deque[tuple[Callable[..., Any], tuple[Any, ...]]] = (
            collections.deque()
        )

    def run_all(self, on_error: Callable[[BaseException], None], budget: float = 0.0) -> None:
        """Run queued calls in order; with a `budget` (seconds), stop once it is spent."""
        deadline = time.monotonic() + budget if budget else 0.0
        while self.calls:
            fn, args = self.calls.popleft()
            try:
                fn(*args)
            except Exception as exc:  # noqa: BLE001 - one bad callback must not stop the rest
                on_error(exc)
            if deadline and time.monotonic() > deadline:
                return


class ThreadingRuntime(Runtime):
    mode: AsyncMode = "threading"

    def __init__(self, on_error: Callable[[BaseException], None] | None = None) -> None:
        self._queue = _CallQueue()
        self._wake = threading.Event()
        self._on_error = on_error or _print_error
        self.start_native_thread(self._dispatch, "runtime-dispatch")

    def start_native_thread(self, target: Callable[[], None], name: str) -> None:
        threading.Thread(target=target, name=name, daemon=True).start()

    def call_soon_threadsafe(self, fn: Callable[..., Any], *args: Any) -> None:
        self._queue.calls.append((fn, args))
        self._wake.set()

    def spawn(self, fn: Callable[..., Any], *args: Any) -> None:
        threading.Thread(target=fn, args=args, daemon=True).start()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def native_sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def offload(self, fn: Callable[..., T], *args: Any) -> T:
        return fn(*args)  # already on a thread of its own

    def pending(self) -> int:
        return len(self._queue.calls)

    def native_event(self) -> threading.Event:
        return threading.Event()

    def _dispatch(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            self._queue.run_all(self._on_error)


class EventletRuntime(Runtime):
    """Native threads wake the hub through a pipe, the way eventlet's own tpool does."""

    mode: AsyncMode = "eventlet"

    def __init__(self, on_error: Callable[[BaseException], None] | None = None) -> None:
        import eventlet
        from eventlet import patcher

        self._eventlet = eventlet
        self._select = patcher.original("select")
        self._native_threading = patcher.original("threading")
        self._native_time = patcher.original("time")
        native_os = patcher.original("os")
        self._write = native_os.write
        self._read = native_os.read
        self._read_fd, self._write_fd = native_os.pipe()
        os.set_blocking(self._read_fd, False)
        os.set_blocking(self._write_fd, False)
        self._queue = _CallQueue()
        self._on_error = on_error or _print_error
        self._wakeups = _Wakeups(self._on_error)
        eventlet.spawn(self._dispatch)

    def start_native_thread(self, target: Callable[[], None], name: str) -> None:
        self._native_threading.Thread(target=target, name=name, daemon=True).start()

    def call_soon_threadsafe(self, fn: Callable[..., Any], *args: Any) -> None:
        self._queue.calls.append((fn, args))
        # A full pipe already holds a wake-up; losing this byte loses nothing.
        with contextlib.suppress(BlockingIOError):
            self._write(self._write_fd, b"\0")

    def spawn(self, fn: Callable[..., Any], *args: Any) -> None:
        self._eventlet.spawn(fn, *args)

    def sleep(self, seconds: float) -> None:
        self._eventlet.sleep(seconds)

    def native_sleep(self, seconds: float) -> None:
        self._native_time.sleep(seconds)

    def offload(self, fn: Callable[..., T], *args: Any) -> T:
        from eventlet import tpool

        result: T = tpool.execute(fn, *args)
        return result

    def pending(self) -> int:
        return len(self._queue.calls)

    def native_event(self) -> threading.Event:
        # The unpatched module's: setting it from a green thread only takes its lock for
        # a moment, and the native thread waiting on it blocks nothing else.
        event: threading.Event = self._native_threading.Event()
        return event

    def flag(self) -> Flag:
        return _GreenFlag(self._wakeups)

    def green_threads(self) -> int:
        import gc

        from eventlet import hubs
        from greenlet import greenlet

        # Green threads are the greenlets whose parent is the hub's: the collector finds
        # what refers to it in C, several times faster than listing every object.
        hub = hubs.get_hub().greenlet
        return sum(
            1
            for g in gc.get_referrers(hub)
            if isinstance(g, greenlet) and g is not hub and not g.dead
        )

    def _dispatch(self) -> None:
        from eventlet.hubs import trampoline

        while True:
            if not self._queue.calls:
                trampoline(self._read_fd, read=True)
            with contextlib.suppress(BlockingIOError):
                while self._read(self._read_fd, 4096):
                    pass
            # A few milliseconds of Kafka work at a time, then every other green thread
            # gets its turn: a backlog of events must not starve requests and probes.
            self._queue.run_all(self._on_error, budget=DISPATCH_SLICE)
            self._eventlet.sleep(0)


class _Wakeups:
    """The green threads whose flags were set in this turn of the event loop, woken by one
    hub timer (a timer each, for every viewer of every frame, was a tenth of the video
    fan-out's cost)."""

    def __init__(self, on_error: Callable[[BaseException], None]) -> None:
        from eventlet import hubs
        from greenlet import getcurrent

        self.get_hub = hubs.get_hub
        self.getcurrent = getcurrent
        self._pending: list[tuple[_GreenFlag, Any]] = []
        self._scheduled = False
        self._on_error = on_error

    def add(self, flag: _GreenFlag, waiter: Any) -> None:
        self._pending.append((flag, waiter))
        if not self._scheduled:
            self._scheduled = True
            self.get_hub().schedule_call_global(0, self._run)

    def _run(self) -> None:
        # On the hub's greenlet: each waiter runs until it waits again, then comes back here.
        self._scheduled = False
        pending, self._pending = self._pending, []
        for flag, waiter in pending:
            try:
                flag.wake(waiter)
            except Exception as exc:  # noqa: BLE001 - the other waiters must still wake
                self._on_error(exc)


class _GreenFlag:
    """A flag one green thread at a time waits on (with no timer unless it gives a
    timeout): a fraction of the work of the green Condition and locks that a
    monkey-patched threading.Event is."""

    __slots__ = ("_set", "_waiter", "_wakeups")

    def __init__(self, wakeups: _Wakeups) -> None:
        self._set = False
        self._waiter: Any = None
        self._wakeups = wakeups

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True
        if self._waiter is not None:
            self._wakeups.add(self, self._waiter)

    def clear(self) -> None:
        self._set = False

    def wake(self, waiter: Any) -> None:
        """Resume `waiter` if it still waits here (a timeout and a set may both fire)."""
        if self._waiter is waiter:
            self._waiter = None
            waiter.switch()

    def wait(self, timeout: float | None = None) -> bool:
        wakeups = self._wakeups
        while not self._set:
            if self._waiter is not None:
                raise RuntimeError("a flag has one waiter at a time")
            hub, current = wakeups.get_hub(), wakeups.getcurrent()
            self._waiter = current
            timer = (
                None if timeout is None else hub.schedule_call_global(timeout, self.wake, current)
            )
            try:
                hub.switch()
            finally:
                if self._waiter is current:
                    self._waiter = None
                if timer is not None:
                    timer.cancel()
            if timeout is not None:
                break
        return self._set


def _print_error(exc: BaseException) -> None:
    import traceback

    traceback.print_exception(exc)


def create_runtime(
    mode: AsyncMode, on_error: Callable[[BaseException], None] | None = None
) -> Runtime:
    if mode == "eventlet":
        return EventletRuntime(on_error)
    return ThreadingRuntime(on_error)
