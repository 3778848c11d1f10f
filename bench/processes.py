"""Every process the benchmarks start, in one place: the broker, the services (through
their console scripts, as `make run` and the tests start them), the baselines, the
loopback ceiling, Kafka's own tools and the Node load generators.

Each process gets its own process group (so stopping gunicorn's master also ends its
worker) and a log file in the run's folder, whose tail is shown when it fails.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from rts_common.contracts import TOPICS, TopicSpec
from rts_common.net import free_ports
from rts_devstack.broker import LocalKafka
from rts_devstack.processes import ServiceProcess, process_tree

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[1]
LOADGEN = ROOT / "bench" / "loadgen" / "loadgen.mjs"


class ProcessFailed(RuntimeError):
    """A process of the benchmark exited or never got ready; the message has its log."""


class GeneratorSilent(ProcessFailed):
    """The load generator did not reach a phase in the time allowed."""


class Proc(ServiceProcess):
    """A started process (rts_devstack's one process helper) whose output also goes to
    `log`; failures raise ProcessFailed with the log's tail, as the report expects."""

    def __init__(
        self,
        name: str,
        argv: Sequence[object],
        log: Path,
        env: Mapping[str, str] | None = None,
        *,
        priority: int = 0,
        ops_port: int | None = None,
    ) -> None:
        """`priority`: a nice value below 0 raises it (where allowed, as root);
        `ops_port`: where its /metrics and /readyz are, when not on its main port."""
        log.parent.mkdir(parents=True, exist_ok=True)
        ops = f"http://127.0.0.1:{ops_port}" if ops_port else None
        super().__init__(
            name,
            argv,
            {"LOG_FORMAT": "console", **(env or {})},
            log_file=log,
            priority=priority,
            ops=ops,
        )
        self.ops_port = ops_port

    @property
    def pid(self) -> int:
        return self.proc.pid

    def worker_pid(self) -> int:
        """gunicorn's worker (the process that serves), or this process if it has none."""
        children = process_tree(self.pid)[1:]
        return children[0] if children else self.pid

    def tail(self, lines: int = 40) -> str:
        return self.log(lines)

    def check(self) -> None:
        if not self.running:
            raise ProcessFailed(
                f"{self.name} exited with {self.proc.returncode}; its log {self.log_file}:\n"
                f"{self.tail()}"
            )

    def wait_http(self, url: str, timeout: float = 60.0, status: int = 200) -> None:
        try:
            super().wait_http(url, timeout, status)
        except AssertionError as failed:
            raise ProcessFailed(str(failed)) from None

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise ProcessFailed(f"{self.name} did not finish in {timeout:.0f}s") from None

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM (a graceful stop), then SIGKILL to the whole group."""
        with contextlib.suppress(AssertionError):
            self.terminate(timeout)
        self.kill()


@contextlib.contextmanager
def running(*procs: Proc) -> Iterator[None]:
    """Stop these processes however the block ends."""
    try:
        yield
    finally:
        for proc in reversed(procs):
            proc.stop()


# --- the broker and topics ------------------------------------------------------------


@contextlib.contextmanager
def local_broker(heap: str = "1g") -> Iterator[LocalKafka]:
    """A fresh single-node broker on free ports with a scratch data folder."""
    with tempfile.TemporaryDirectory(prefix="rts-bench-") as tmp:
        ports = free_ports(2)
        kafka = LocalKafka(Path(tmp), ports=ports[:1], controller_ports=ports[1:], heap=heap)
        with kafka:
            yield kafka


def broker_pid(kafka: LocalKafka) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int(kafka.nodes[0].pid_file.read_text())
    return None


def fresh_topics(kafka: LocalKafka, specs: Iterable[TopicSpec[Any]] = TOPICS) -> str:
    """The platform's topics under a new prefix; returns the prefix."""
    prefix = f"bench{uuid.uuid4().hex[:8]}."
    kafka.create_topics(specs, prefix=prefix)
    return prefix


def kafka_env(kafka: LocalKafka, prefix: str) -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP": kafka.bootstrap,
        "KAFKA_TOPIC_PREFIX": prefix,
        "LOG_LEVEL": "warning",
        "LOG_FORMAT": "console",
    }


# --- the services -------------------------------------------------------------------------


def gateway(
    logs: Path,
    kafka: LocalKafka,
    prefix: str,
    mode: str,
    *,
    name: str = "",
    ready: bool = True,
    **settings: Any,
) -> tuple[Proc, int]:
    """The gateway under gunicorn (its own `gateway` command), ready unless `ready=False`;
    returns it and its port (its /metrics and /readyz are on `proc.ops_port`). `settings`
    are its GATEWAY_* settings."""
    port, ops = free_ports(2)
    env = kafka_env(kafka, prefix) | {
        f"GATEWAY_{key.upper()}": str(value) for key, value in settings.items()
    }
    argv = [
        BIN / "gateway",
        "--port",
        port,
        "--host",
        "127.0.0.1",
        "--async-mode",
        mode,
        "--ops-host",
        "127.0.0.1",
        "--ops-port",
        ops,
    ]
    proc = Proc(
        name or f"gateway-{mode}",
        argv,
        logs / f"{name or 'gateway-' + mode}.log",
        env,
        ops_port=ops,
    )
    if not ready:
        return proc, port
    try:
        proc.wait_http(f"http://127.0.0.1:{ops}/readyz")
    except BaseException:
        proc.stop()
        raise
    return proc, port


def capture(
    logs: Path, kafka: LocalKafka, prefix: str, camera: str, *args: Any
) -> tuple[Proc, int]:
    """The `capture` service on the test pattern; returns it and its metrics port."""
    port = free_ports(1)[0]
    argv = [
        BIN / "capture",
        "--source",
        "test",
        "--camera-id",
        camera,
        "--ops-host",
        "127.0.0.1",
        "--ops-port",
        port,
        *args,
    ]
    proc = Proc(f"capture-{camera}", argv, logs / f"capture-{camera}.log", kafka_env(kafka, prefix))
    try:
        proc.wait_http(f"http://127.0.0.1:{port}/metrics", timeout=30)
    except BaseException:
        proc.stop()
        raise
    return proc, port


def event_sim(logs: Path, kafka: LocalKafka, prefix: str, *args: Any, name: str = "") -> Proc:
    argv = [BIN / "event-sim", "--ops-host", "127.0.0.1", "--ops-port", "0", *args]
    env = kafka_env(kafka, prefix) | {"LOG_LEVEL": "info", "LOG_FORMAT": "json"}
    return Proc(name or "event-sim", argv, logs / f"{name or 'event-sim'}.log", env)


def metrics(port: int) -> dict[str, float]:
    """Every sample of a service's /metrics, summed over labels by sample name."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            values[sample.name] = values.get(sample.name, 0.0) + float(sample.value)
    return values


def labelled_metrics(port: int, label: str) -> dict[str, float]:
    """Samples of a service's /metrics keyed `name:value-of-label` where they carry it."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = f"{sample.name}:{sample.labels[label]}" if label in sample.labels else sample.name
            values[key] = values.get(key, 0.0) + float(sample.value)
    return values


# --- the baselines and the loopback ceiling -----------------------------------------------


def baseline_video_producer(
    logs: Path, kafka: LocalKafka, topic: str, camera: str, width: int, height: int
) -> Proc:
    argv = [
        sys.executable,
        "-m",
        "bench.baselines.video_producer",
        "--bootstrap",
        kafka.bootstrap,
        "--topic",
        topic,
        "--width",
        width,
        "--height",
        height,
    ]
    return Proc(f"baseline-producer-{camera}", argv, logs / f"baseline-producer-{camera}.log")


def baseline_video_app(logs: Path, kafka: LocalKafka, topic: str, camera: str) -> tuple[Proc, int]:
    """The baseline's MJPEG app under gunicorn's default (sync) worker."""
    port = free_ports(1)[0]
    argv = [
        BIN / "gunicorn",
        "-b",
        f"127.0.0.1:{port}",
        "--timeout",
        "0",
        "bench.baselines.video_app:app",
    ]
    env = {"KAFKA_BOOTSTRAP": kafka.bootstrap, "FRAMES_TOPIC": topic}
    proc = Proc(f"baseline-app-{camera}", argv, logs / f"baseline-app-{camera}.log", env)
    try:
        proc.wait_http(f"http://127.0.0.1:{port}/", timeout=30)
    except BaseException:
        proc.stop()
        raise
    return proc, port


def baseline_events_app(logs: Path, kafka: LocalKafka, topic: str) -> tuple[Proc, int]:
    """The baseline's Socket.IO app, run as the article runs it (`socketio.run`)."""
    port = free_ports(1)[0]
    argv = [
        sys.executable,
        "-m",
        "bench.baselines.events_app",
        "--bootstrap",
        kafka.bootstrap,
        "--topic",
        topic,
        "--port",
        port,
    ]
    proc = Proc("baseline-events", argv, logs / "baseline-events.log")
    try:
        proc.wait_http(f"http://127.0.0.1:{port}/", timeout=30)
    except BaseException:
        proc.stop()
        raise
    return proc, port


def ceiling(logs: Path, part_file: Path, fps: float) -> tuple[Proc, int]:
    """The loopback ceiling: raw sendall of one MJPEG part to every viewer, one thread."""
    port = free_ports(1)[0]
    argv = [
        sys.executable,
        "-m",
        "bench.ceiling",
        "--port",
        port,
        "--part",
        part_file,
        "--fps",
        fps,
    ]
    proc = Proc("ceiling", argv, logs / f"ceiling-{fps:g}fps.log")
    try:
        proc.wait_http(f"http://127.0.0.1:{port}/ready", timeout=15)
    except BaseException:
        proc.stop()
        raise
    return proc, port


# --- Kafka's tools and the load generators --------------------------------------------------


def kafka_tool(
    logs: Path, kafka: LocalKafka, tool: str, *args: Any, timeout: float = 600
) -> tuple[str, float]:
    """Run one of Kafka's own tools (org.apache.kafka.tools.<tool>) to the end; returns its
    stdout and the CPU seconds it used."""
    argv = kafka.dist.java(f"org.apache.kafka.tools.{tool}", *(str(a) for a in args), heap="1g")
    proc = Proc(tool, argv, logs / f"kafka-{tool}.log")
    cpu = 0.0
    deadline = time.monotonic() + timeout
    while proc.running:  # its CPU is read while it lives: a finished process has none
        cpu = max(cpu, proc.cpu_seconds())
        if time.monotonic() > deadline:
            proc.stop()
            raise ProcessFailed(f"{tool} did not finish in {timeout:.0f}s")
        time.sleep(0.2)
    code = proc.wait(60)
    out = proc.log(None)
    if code != 0:
        raise ProcessFailed(f"{tool} exited with {code}:\n{out[-3000:]}")
    return out, cpu


class LoadGenerator:
    """The Node load generator (bench/loadgen): `phase("measuring")` blocks until every
    client is connected and warm, `phase("window-closed")` until the measured window
    ends, `result()` until it reports."""

    def __init__(self, logs: Path, mode: str, config: Mapping[str, Any], name: str) -> None:
        argv = ["node", LOADGEN, mode, json.dumps(config)]
        # The scheduler shares the CPU per thread: a server with a thread per connection
        # (gthread, the baselines) would starve this one-thread generator of CPU and
        # make it the bottleneck. It gets precedence where the OS allows.
        self.proc = Proc(name, argv, logs / f"{name}.log", priority=-10)
        self._seen = 0

    def _next(self, timeout: float) -> dict[str, Any]:
        """The generator's next report: a JSON object on a line of its own."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ended = not self.proc.running
            if ended:
                self.proc.wait_exit(10)  # every line it wrote has been read
            message = self._report()
            if message is not None:
                return message
            if ended:
                raise ProcessFailed(
                    f"the load generator ended without reporting "
                    f"({self.proc.proc.returncode}):\n{self.proc.tail()}"
                )
            time.sleep(0.05)
        self.proc.stop()
        raise GeneratorSilent(f"the load generator said nothing for {timeout:.0f}s")

    def _report(self) -> dict[str, Any] | None:
        """The first report among the lines not looked at yet, if there is one."""
        lines, total = self.proc.lines_after(self._seen)
        first = total - len(lines)  # the line number of lines[0]
        for i, line in enumerate(lines):
            if line.startswith("{"):
                self._seen = first + i + 1
                message: dict[str, Any] = json.loads(line)
                return message
        self._seen = total
        return None

    def phase(self, name: str, timeout: float) -> None:
        """Wait for the generator to announce `name` (measuring, window-closed)."""
        if self._next(timeout).get("phase") != name:
            raise ProcessFailed(f"load generator: expected {name}:\n{self.proc.tail()}")

    def result(self, timeout: float) -> dict[str, Any]:
        message = self._next(timeout)
        self.proc.wait(30)
        return message


def node_version() -> str:
    try:
        out = subprocess.run(["node", "--version"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError) as err:
        raise ProcessFailed("Node.js 20+ runs the load generators: install it") from err
    return out.stdout.strip()


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def camera_720p(logs: Path, kafka: LocalKafka, prefix: str, camera: str) -> Proc:
    """A 1280x720 15 fps test-pattern camera without detection (the camera costs little)."""
    proc, _ = capture(
        logs,
        kafka,
        prefix,
        camera,
        *"--fps 15 --test-width 1280 --test-height 720 --max-width 0".split(),
        *"--no-motion --no-faces".split(),
    )
    return proc


def wait_frame(server: Proc, port: int, camera: str, timeout: float = 60.0) -> bytes:
    """The newest JPEG of `camera` from the gateway, once it has one."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        server.check()
        with contextlib.suppress(OSError):
            status, body = http_get(f"http://127.0.0.1:{port}/snapshot/{camera}.jpg")
            if status == 200:
                return body
        time.sleep(0.3)
    raise ProcessFailed(
        f"no frame of {camera} from the gateway in {timeout:.0f}s:\n{server.tail()}"
    )
