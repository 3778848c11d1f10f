import json
import logging
import time

import pytest
from prometheus_client import Counter
from rts_common.logs import ConsoleFormatter, JsonFormatter
from rts_common.metrics import service_registry
from rts_common.ops import OpsServer
from rts_common.tasks import Heartbeat
from rts_devstack.processes import http_get as _get


def _record(msg: str, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("capture", logging.WARNING, __file__, 1, msg, None, None)
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def test_json_log_lines_carry_context_as_keys() -> None:
    line = JsonFormatter("capture").format(_record("source lost", camera="cam-1", attempt=3))
    payload = json.loads(line)
    assert payload["msg"] == "source lost"
    assert payload["level"] == "warning"
    assert payload["service"] == "capture"
    assert (payload["camera"], payload["attempt"]) == ("cam-1", 3)
    assert payload["ts"].endswith("Z")


def test_console_log_lines_are_one_readable_line() -> None:
    line = ConsoleFormatter().format(_record("source lost", camera="cam-1"))
    assert "source lost" in line
    assert "camera=cam-1" in line
    assert "\n" not in line


@pytest.fixture
def ops() -> tuple[OpsServer, dict[str, bool]]:
    state = {"ready": False}
    registry = service_registry("demo")
    Counter("demo_things", "Things", registry=registry).inc(3)
    server = OpsServer(
        registry,
        lambda: (state["ready"], {"source": "up" if state["ready"] else "down"}),
        host="127.0.0.1",
        port=0,
    ).start()
    yield server, state
    server.stop()


def test_ops_server_serves_metrics_health_and_readiness(
    ops: tuple[OpsServer, dict[str, bool]],
) -> None:
    server, state = ops
    base = f"http://127.0.0.1:{server.port}"
    status, body = _get(base + "/metrics")
    assert status == 200
    assert "demo_things_total 3.0" in body
    assert "rts_build_info{" in body
    assert "process_cpu_seconds_total" in body
    assert _get(base + "/healthz")[0] == 200
    status, body = _get(base + "/readyz")
    assert (status, json.loads(body)) == (503, {"ready": False, "source": "down"})
    state["ready"] = True
    assert _get(base + "/readyz")[0] == 200
    assert _get(base + "/nope")[0] == 404


def test_throttle_lets_one_line_per_key_through_per_interval() -> None:
    from rts_common.logs import Throttle

    throttle = Throttle(interval=60)
    assert throttle.allow("broker-down")
    assert not throttle.allow("broker-down")
    assert throttle.allow("corrupt-frame")
    throttle.interval = 0
    assert throttle.allow("broker-down")


def test_health_fails_with_the_reason_when_a_loop_stops_beating() -> None:
    loop = Heartbeat("main-loop", max_silence=0.2)
    server = OpsServer(
        service_registry("demo"), port=0, host="127.0.0.1", components=lambda: [loop]
    ).start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        assert _get(base + "/healthz")[0] == 200  # not started beating: nothing to say
        loop.beat()
        assert _get(base + "/healthz")[0] == 200
        time.sleep(0.3)
        status, body = _get(base + "/healthz")
        assert status == 503
        assert json.loads(body)["problems"]["main-loop"].startswith("no round for")
        loop.done()
        assert _get(base + "/healthz")[0] == 200  # ended on purpose
    finally:
        server.stop()
