"""Every process the benchmarks start, in one place: the broker, the services (from their
launch specs, rts_devstack.launch, as `make run` and the tests start them), the
baselines, the loopback ceiling, Kafka's own tools and the Node load generators.

Each process gets its own process group (so stopping gunicorn's master also ends its
worker) and a log file in the run's folder, whose tail is shown when it fails.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from rts_common.contracts import TOPICS, TopicSpec
from rts_devstack import launch, ports
from rts_devstack.broker import LocalKafka
from rts_devstack.launch import Launch
from rts_devstack.ports import Ports
from rts_devstack.processes import ServiceProcess, process_tree

ROOT = Path(__file__).resolve().parents[1]
LOADGEN = ROOT / "bench" / "loadgen" / "loadgen.mjs"


class ProcessFailed(RuntimeError):
    """A process of the benchmark exited or never got ready; the message has its log."""


class GeneratorSilent(ProcessFailed):
    """The load generator did not reach a phase in the time allowed."""


class Proc(ServiceProcess):
    """A started process (rts_devstack's one process helper, from its launch spec) whose
    output also goes to `log`; failures raise ProcessFailed with the log's tail, as the
    report expects."""

    def __init__(self, launch: Launch, log: Path, *, priority: int = 0) -> None:
        """`priority`: a nice value below 0 raises it (where allowed, as root)."""
        log.parent.mkdir(parents=True, exist_ok=True)
        super().__init__(launch, {"LOG_FORMAT": "console"}, log_file=log, priority=priority)

    @property
    def ops_port(self) -> int | None:
        """The port of its /metrics and /readyz, when it has one."""
        return int(self.ops.rsplit(":", 1)[1]) if self.ops else None

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
    """A fresh single-node broker on reserved ports with a scratch data folder, its JVM
    tuned for a long life (C2), as a production broker runs."""
    with tempfile.TemporaryDirectory(prefix="rts-bench-") as tmp, ports.reserve(2) as reserved:
        kafka = LocalKafka.on_ports(Path(tmp), reserved, heap=heap, fast_start=False)
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


def port() -> int:
    """A port reserved for the rest of this run (rts_devstack.ports)."""
    reserved = ports.reserve(1)
    _RESERVED.append(reserved)
    return reserved[0]


_RESERVED: list[Ports] = []


def started(spec: Launch, log: Path, ready: str | None = None, timeout: float = 60.0) -> Proc:
    """Start `spec` and wait until it is ready (its launch's readiness URL, or `ready`);
    stopped again if it never gets there."""
    proc = Proc(spec, log)
    try:
        proc.wait_http(ready or spec.ready or "", timeout=timeout)
    except BaseException:
        proc.stop()
        raise
    return proc


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
    name = name or f"gateway-{mode}"
    env = kafka_env(kafka, prefix) | {
        f"GATEWAY_{key.upper()}": str(value) for key, value in settings.items()
    }
    spec = launch.gateway("--async-mode", mode, port=port(), ops_port=port(), env=env, name=name)
    gateway_port = int((spec.url or "").rsplit(":", 1)[1])
    if not ready:
        return Proc(spec, logs / f"{name}.log"), gateway_port
    return started(spec, logs / f"{name}.log"), gateway_port


def capture(
    logs: Path, kafka: LocalKafka, prefix: str, camera: str, *args: Any
) -> tuple[Proc, int]:
    """The `capture` service on the test pattern; returns it and its metrics port."""
    spec = launch.capture(
        camera, "--source", "test", *args, ops_port=port(), env=kafka_env(kafka, prefix)
    )
    proc = started(spec, logs / f"capture-{camera}.log", timeout=30)
    return proc, proc.ops_port or 0


def event_sim(logs: Path, kafka: LocalKafka, prefix: str, *args: Any, name: str = "") -> Proc:
    env = kafka_env(kafka, prefix) | {"LOG_LEVEL": "info", "LOG_FORMAT": "json"}
    name = name or "event-sim"
    return Proc(launch.event_sim(*args, ops_port=port(), env=env, name=name), logs / f"{name}.log")


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
    name = f"baseline-producer-{camera}"
    argv: list[object] = [launch.PYTHON, *"-m bench.baselines.video_producer".split()]
    argv += ["--bootstrap", kafka.bootstrap, "--topic", topic, "--width", width, "--height", height]
    return Proc(launch.process(name, argv), logs / f"{name}.log")


def baseline_video_app(logs: Path, kafka: LocalKafka, topic: str, camera: str) -> tuple[Proc, int]:
    """The baseline's MJPEG app under gunicorn's default (sync) worker."""
    app = port()
    argv = [
        "gunicorn",
        "-b",
        f"127.0.0.1:{app}",
        *"--timeout 0 bench.baselines.video_app:app".split(),
    ]
    env = {"KAFKA_BOOTSTRAP": kafka.bootstrap, "FRAMES_TOPIC": topic}
    name = f"baseline-app-{camera}"
    spec = launch.process(name, argv, env, ready=f"http://127.0.0.1:{app}/")
    return started(spec, logs / f"{name}.log", timeout=30), app


def baseline_events_app(logs: Path, kafka: LocalKafka, topic: str) -> tuple[Proc, int]:
    """The baseline's Socket.IO app, run as the article runs it (`socketio.run`)."""
    app = port()
    argv: list[object] = [launch.PYTHON, *"-m bench.baselines.events_app".split()]
    argv += ["--bootstrap", kafka.bootstrap, "--topic", topic, "--port", app]
    spec = launch.process("baseline-events", argv, ready=f"http://127.0.0.1:{app}/")
    return started(spec, logs / "baseline-events.log", timeout=30), app


def ceiling(logs: Path, part_file: Path, fps: float) -> tuple[Proc, int]:
    """The loopback ceiling: raw sendall of one MJPEG part to every viewer, one thread."""
    server = port()
    argv = [launch.PYTHON, *"-m bench.ceiling --port".split(), server]
    argv += ["--part", part_file, "--fps", fps]
    spec = launch.process("ceiling", argv, ready=f"http://127.0.0.1:{server}/ready")
    return started(spec, logs / f"ceiling-{fps:g}fps.log", timeout=15), server


# --- Kafka's tools and the load generators --------------------------------------------------


def kafka_tool(
    logs: Path, kafka: LocalKafka, tool: str, *args: Any, timeout: float = 600
) -> tuple[str, float]:
    """Run one of Kafka's own tools (org.apache.kafka.tools.<tool>) to the end; returns its
    stdout and the CPU seconds it used."""
    argv = kafka.dist.java(f"org.apache.kafka.tools.{tool}", *(str(a) for a in args), heap="1g")
    proc = Proc(launch.process(tool, argv), logs / f"kafka-{tool}.log")
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
        self.proc = Proc(launch.process(name, argv), logs / f"{name}.log", priority=-10)
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
