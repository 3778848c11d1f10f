"""How each service process is started, in one place: its command, environment, ports
and the URL that says it is ready.

`make run` (stack.py), `make scale` (fleet.py), the tests' fixtures, the fault tests and
the benchmarks all start the platform's services from these specs, so a flag or a
setting every local run of a service needs is added here once. Services run as users and
the images run them: their console script (`capture`, `event-sim`, `gateway`,
`latency-probe`, `notifier`) from this environment, with flags and environment variables. Each
service's /metrics, /healthz and /readyz listen on its own loopback port (the ops port);
the readiness rule lives with the spec (`Launch.ready`), as ducktape's services and
testcontainers' `waiting_for` keep it with the process.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

BIN = Path(sys.executable).parent
LOOPBACK = "127.0.0.1"
PYTHON = sys.executable


def command(name: str) -> str:
    """A console script of this environment (the services', rts-devstack's)."""
    return str(BIN / name)


@dataclass(frozen=True)
class Launch:
    """One process to start: what the supervisor of `make run`, the tests' ServiceGroup
    and the benchmarks start alike."""

    name: str
    argv: Sequence[str]
    env: Mapping[str, str] = field(default_factory=dict)
    url: str | None = None  # what users reach; printed in `make run`'s banner
    ops: str | None = None  # base URL of its /metrics, /healthz and /readyz
    # Answers 200 once the process is ready (for a service, its /readyz); None: when it runs.
    ready: str | None = None
    job: str = ""  # the kind of service: Prometheus's `job` label
    # Commands run to completion before it starts (generating its input); a failing one
    # keeps it from starting.
    setup: Sequence[Sequence[str]] = ()
    # Files written (path: content) before it starts: its generated configuration.
    files: Mapping[Path, str] = field(default_factory=dict)

    @property
    def metrics(self) -> str | None:
        """Where Prometheus scrapes it."""
        return f"{self.ops}/metrics" if self.ops else None

    def with_env(self, env: Mapping[str, str]) -> Launch:
        """The same launch with more environment variables (its own take precedence)."""
        return replace(self, env={**env, **self.env})


def _service(
    name: str,
    script: str,
    ops_port: int,
    args: Sequence[object],
    env: Mapping[str, str] | None,
    *,
    url: str | None = None,
    job: str,
    setup: Sequence[Sequence[str]] = (),
) -> Launch:
    ops = f"http://{LOOPBACK}:{ops_port}"
    return Launch(
        name,
        # The ops flags first: a flag given again in `args` wins (argparse keeps the last).
        [command(script), *f"--ops-host {LOOPBACK} --ops-port {ops_port}".split(), *map(str, args)],
        dict(env or {}),
        url=url,
        ops=ops,
        ready=f"{ops}/readyz",
        job=job,
        setup=setup,
    )


def capture(
    camera: str,
    *flags: object,
    ops_port: int,
    env: Mapping[str, str] | None = None,
    setup: Sequence[Sequence[str]] = (),
) -> Launch:
    """`capture` of one camera (`flags` choose its source: `--source test`, a file...)."""
    return _service(
        camera,
        "capture",
        ops_port,
        ["--camera-id", camera, *flags],
        env,
        job="capture",
        setup=setup,
    )


def event_sim(
    *flags: object, ops_port: int, env: Mapping[str, str] | None = None, name: str = "event-sim"
) -> Launch:
    return _service(name, "event-sim", ops_port, flags, env, job="event-sim")


def gateway(
    *flags: object,
    port: int,
    ops_port: int,
    host: str | None = LOOPBACK,
    replica: str = "",
    env: Mapping[str, str] | None = None,
    name: str = "",
) -> Launch:
    """The gateway under gunicorn; `url` is what browsers reach, on `host` (None: every
    address, as `make run`'s single gateway listens); `replica` names it in every response
    (a replica behind nginx)."""
    listen = ["--port", port] if host is None else ["--port", port, "--host", host]
    named = {"GATEWAY_REPLICA": replica} if replica else {}
    return _service(
        name or replica or "gateway",
        "gateway",
        ops_port,
        [*listen, *flags],
        {**named, **(env or {})},
        url=f"http://{LOOPBACK}:{port}",
        job="gateway",
    )


def latency_probe(
    *flags: object, gateway_url: str, ops_port: int, env: Mapping[str, str] | None = None
) -> Launch:
    """The latency probe: one low-rate signed-in viewer per camera of `gateway_url`."""
    return _service(
        "latency-probe",
        "latency-probe",
        ops_port,
        ["--gateway-url", gateway_url, *flags],
        env,
        job="latency-probe",
    )


def notifier(*flags: object, ops_port: int, env: Mapping[str, str] | None = None) -> Launch:
    """The notifier: detections that matter pushed to webhooks and MQTT (`flags` or
    NOTIFIER_* variables name the receivers and the rules)."""
    return _service("notifier", "notifier", ops_port, flags, env, job="notifier")


def process(
    name: str,
    argv: Sequence[object],
    env: Mapping[str, str] | None = None,
    *,
    url: str | None = None,
    ready: str | None = None,
    files: Mapping[Path, str] | None = None,
) -> Launch:
    """Any other process (nginx, Prometheus, a Kafka tool, a load generator): `argv[0]` is
    a console script of this environment, a command on the PATH or a path."""
    program = str(argv[0])
    if "/" not in program and (BIN / program).exists():
        program = command(program)
    return Launch(
        name,
        [program, *map(str, argv[1:])],
        dict(env or {}),
        url=url,
        ready=ready,
        files=dict(files or {}),
    )
