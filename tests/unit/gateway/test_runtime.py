import subprocess
import sys
import threading
import time

from rts_gateway.__main__ import wants_eventlet
from rts_gateway.bridge.runtime import ThreadingRuntime


def test_callbacks_from_native_threads_run_in_order_in_the_app_context() -> None:
    runtime = ThreadingRuntime()
    seen: list[int] = []
    done = threading.Event()

    def native() -> None:
        for i in range(1000):
            runtime.call_soon_threadsafe(seen.append, i)
        runtime.call_soon_threadsafe(done.set)

    runtime.start_native_thread(native, "producer")
    assert done.wait(5)
    assert seen == list(range(1000))


def test_a_failing_callback_is_reported_and_does_not_stop_the_others() -> None:
    errors: list[BaseException] = []
    runtime = ThreadingRuntime(on_error=errors.append)
    done = threading.Event()
    runtime.call_soon_threadsafe(lambda: 1 / 0)
    runtime.call_soon_threadsafe(done.set)
    assert done.wait(5)
    assert isinstance(errors[0], ZeroDivisionError)


def test_a_native_thread_waits_for_a_call_in_the_app_context_after_earlier_ones() -> None:
    runtime = ThreadingRuntime()
    seen: list[str] = []
    results: list[object] = []
    done = threading.Event()

    def native() -> None:
        runtime.call_soon_threadsafe(seen.append, "batch")
        results.append(runtime.call_and_wait(lambda: [*seen, "release"], timeout=5))
        try:
            runtime.call_and_wait(lambda: 1 / 0, timeout=5)
        except ZeroDivisionError as exc:
            results.append(type(exc))
        runtime.call_soon_threadsafe(done.set)

    runtime.start_native_thread(native, "rebalance")
    assert done.wait(5)
    assert results == [["batch", "release"], ZeroDivisionError]


def test_waiting_for_a_stuck_app_context_times_out() -> None:
    runtime = ThreadingRuntime()
    release = threading.Event()
    runtime.call_soon_threadsafe(release.wait, 5)  # the dispatcher is busy
    try:
        started = time.monotonic()
        try:
            runtime.call_and_wait(lambda: None, timeout=0.2)
        except TimeoutError:
            pass
        else:
            raise AssertionError("no timeout")
        assert time.monotonic() - started < 2
    finally:
        release.set()


EVENTLET_WAIT = """
import eventlet
eventlet.monkey_patch()
import threading, time
from rts_gateway.bridge.runtime import EventletRuntime
runtime = EventletRuntime()
ticks = []
results = []
done = threading.Event()  # green, after patching
def ticker():
    while not done.is_set():
        ticks.append(time.monotonic())
        eventlet.sleep(0.01)
def native():
    runtime.native_sleep(0.1)
    results.append(runtime.call_and_wait(lambda: len(ticks), timeout=5))
    runtime.call_soon_threadsafe(done.set)
eventlet.spawn(ticker)
runtime.start_native_thread(native, "rebalance")
assert done.wait(5), "the native thread never got its answer"
assert results and results[0] > 0, results
print("ok")
"""


def test_eventlet_runtime_answers_a_waiting_native_thread_without_blocking_the_hub() -> None:
    run_eventlet_script(EVENTLET_WAIT)


EVENTLET_HANDOFF = """
import eventlet
eventlet.monkey_patch()
import threading, time
from rts_gateway.bridge.runtime import EventletRuntime
runtime = EventletRuntime()
seen = []
done = threading.Event()  # green, after patching
def native():
    for i in range(500):
        runtime.call_soon_threadsafe(seen.append, i)
        if i % 100 == 0:
            runtime.native_sleep(0.01)
    runtime.call_soon_threadsafe(done.set)
runtime.start_native_thread(native, "producer")
assert done.wait(5), "hand-off never arrived"
assert seen == list(range(500)), seen[:10]
print("ok")
"""


def test_eventlet_runtime_hands_native_thread_calls_to_green_threads() -> None:
    run_eventlet_script(EVENTLET_HANDOFF)


def test_async_mode_is_known_before_anything_is_imported() -> None:
    assert wants_eventlet([], {})
    assert not wants_eventlet([], {"GATEWAY_ASYNC_MODE": "threading"})
    assert not wants_eventlet(["--async-mode", "threading"], {})
    assert not wants_eventlet(["--async-mode=threading"], {"GATEWAY_ASYNC_MODE": "eventlet"})
    assert wants_eventlet(["--async-mode", "eventlet"], {"GATEWAY_ASYNC_MODE": "threading"})
    time.sleep(0)


def test_a_consumer_loop_that_died_says_so() -> None:
    from rts_common.contracts import VIDEO_FRAMES
    from rts_gateway.bridge import BadRecords, ConsumerLoop, Topic
    from rts_gateway.metrics import GatewayMetrics

    loop = ConsumerLoop(
        ThreadingRuntime(),
        {"bootstrap.servers": "127.0.0.1:1", "group.id": "g", "no.such.setting": "1"},
        Topic(VIDEO_FRAMES, "video-frames"),
        lambda _batch: None,
        BadRecords(GatewayMetrics()),
        name="broken",
    )
    assert loop.problem(time.monotonic()) is None  # not started: nothing to say
    loop.start()
    deadline = time.monotonic() + 5
    while loop.problem(time.monotonic()) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    problem = loop.problem(time.monotonic())
    assert problem is not None
    assert problem.startswith("exited")
    assert "no.such.setting" in problem


EVENTLET_GREEN_THREADS = """
import eventlet
eventlet.monkey_patch()
from rts_gateway.bridge.runtime import EventletRuntime
runtime = EventletRuntime()
eventlet.sleep(0)
before = runtime.green_threads()
stop = eventlet.event.Event()
sleepers = [eventlet.spawn(stop.wait) for _ in range(50)]
eventlet.sleep(0)
during = runtime.green_threads()
stop.send()
for sleeper in sleepers:
    sleeper.wait()
after = runtime.green_threads()
assert (during - before, after) == (50, before), (before, during, after)
print("ok")
"""


def test_eventlet_runtime_counts_its_green_threads() -> None:
    run_eventlet_script(EVENTLET_GREEN_THREADS)


EVENTLET_FLAGS = """
import eventlet
eventlet.monkey_patch()
from rts_gateway.bridge.runtime import EventletRuntime
runtime = EventletRuntime()
flags = [runtime.flag() for _ in range(100)]
woke, timed_out = [], []
def waiter(i):
    assert flags[i].wait() is True
    woke.append(i)
    flags[i].clear()
    timed_out.append(flags[i].wait(0.05))
    flags[i].wait(5)  # set again below, before its timeout
    woke.append(-i - 1)
threads = [eventlet.spawn(waiter, i) for i in range(100)]
eventlet.sleep(0)
for flag in flags:
    flag.set()
eventlet.sleep(0.2)
assert sorted(woke) == list(range(100)), woke
assert timed_out == [False] * 100, timed_out
for flag in flags:
    flag.set()
    flag.set()  # twice in one turn: one wake
for thread in threads:
    thread.wait()
assert sorted(woke) == sorted([*range(100), *range(-100, 0)])
already = runtime.flag()
already.set()
assert already.wait() and already.wait(0)
print("ok")
"""


def test_eventlet_runtime_flags_wake_their_waiters_once_and_time_out() -> None:
    run_eventlet_script(EVENTLET_FLAGS, timeout=60)


def run_eventlet_script(script: str, timeout: float = 30) -> None:
    """Run `script` in a fresh interpreter (eventlet patches a process for good) and
    expect it to print "ok"."""
    result = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", script],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
