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
    result = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", EVENTLET_HANDOFF],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


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
