"""The services write nowhere but their temp dir: what a read-only root filesystem needs.

In the cluster every container's root filesystem is read-only and only the gateway gets
a writable /tmp (an emptyDir). Without a container runtime here, each service runs
against the real broker with a Python audit hook that records every file it opens for
writing, every directory it creates and every file it renames or removes; the test
fails on any such path outside the temp dir.
"""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from rts_common.contracts import TOPICS

from tests.fixtures.kafka import KafkaUnderTest
from tests.fixtures.processes import (
    ServiceGroup,
    kafka_env,
    start_capture,
    start_event_sim,
    start_gateway,
)

pytestmark = pytest.mark.integration

AUDIT_HOOK = """
import os, sys

_log = os.open(os.environ["RTS_WRITE_AUDIT"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
_WRITING = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
_EVENTS = {"os.mkdir", "os.rename", "os.remove", "os.rmdir", "os.symlink", "os.link",
           "os.truncate", "shutil.copyfile", "shutil.move"}

def _record(event, path):
    if isinstance(path, int) or path is None:
        return
    path = os.fsdecode(path)
    os.write(_log, f"{os.getpid()} {event} {os.path.abspath(path)}\\n".encode())

def _hook(event, args):
    if event == "open":
        path, mode, flags = (tuple(args) + (None, None, None))[:3]
        if (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
            isinstance(flags, int) and flags & _WRITING
        ):
            _record(event, path)
    elif event in _EVENTS:
        _record(event, args[0])

sys.addaudithook(_hook)
"""


def writes(audit: Path) -> list[tuple[str, str]]:
    if not audit.exists():
        return []
    return [
        (parts[1], parts[2])
        for parts in (line.split(" ", 2) for line in audit.read_text().splitlines())
    ]


def outside(paths: list[tuple[str, str]], allowed: Path) -> list[tuple[str, str]]:
    return [
        (event, path)
        for event, path in paths
        if not path.startswith(str(allowed) + os.sep) and not path.startswith("/dev/")
    ]


def test_the_audit_hook_sees_writes(tmp_path: Path) -> None:
    hook_dir = tmp_path / "hook"
    hook_dir.mkdir()
    (hook_dir / "sitecustomize.py").write_text(AUDIT_HOOK)
    audit = tmp_path / "audit.log"
    target = tmp_path / "elsewhere.txt"
    subprocess.run(
        [
            sys.executable,
            "-c",
            f"open({str(target)!r}, 'w').close(); import os; os.mkdir({str(tmp_path / 'd')!r})",
        ],
        env={**os.environ, "PYTHONPATH": str(hook_dir), "RTS_WRITE_AUDIT": str(audit)},
        check=True,
    )
    assert ("open", str(target)) in writes(audit)
    assert ("os.mkdir", str(tmp_path / "d")) in writes(audit)


def test_services_write_only_to_their_temp_dir(kafka: KafkaUnderTest, tmp_path: Path) -> None:
    prefix = f"ro{os.getpid()}."
    kafka.create_topics(list(TOPICS), prefix)
    hook_dir = tmp_path / "hook"
    hook_dir.mkdir()
    (hook_dir / "sitecustomize.py").write_text(AUDIT_HOOK)
    scratch = tmp_path / "scratch"  # the emptyDir at /tmp
    scratch.mkdir()
    home = tmp_path / "home"  # the images' user has no home directory
    audits = {name: tmp_path / f"{name}.audit" for name in ("capture", "event-sim", "gateway")}
    common = kafka_env(
        kafka.bootstrap,
        prefix,
        PYTHONPATH=str(hook_dir),
        PYTHONDONTWRITEBYTECODE="1",
        TMPDIR=str(scratch),
        HOME=str(home),
    )

    def audited(name: str) -> dict[str, str]:
        return {"RTS_WRITE_AUDIT": str(audits[name])}

    with ServiceGroup(common) as group:
        started = [
            start_capture(group, "ro", "--source", "test", "--fps", "10", env=audited("capture")),
            start_event_sim(group, "--rate", "50", "--users", "500", env=audited("event-sim")),
            start_gateway(group, env={**audited("gateway"), "GATEWAY_GROUP_ID": f"ro-{prefix}"}),
        ]
        for service in started:
            service.wait_ready(timeout=60)
        gateway = started[2]
        # the full path: a frame through Kafka and the gateway
        gateway.wait_for(
            lambda: _jpeg(f"{gateway.url}/snapshot/ro.jpg"),
            30,
            "a snapshot through Kafka and the gateway",
        )
        for service in started:
            assert service.terminate() == 0, service.log()
    for name, audit in audits.items():
        assert outside(writes(audit), scratch) == [], name
    # The gateway needs the temp dir (gunicorn's worker heartbeat file): the chart mounts it.
    assert any(path.startswith(str(scratch)) for _, path in writes(audits["gateway"]))
    assert not home.exists()


def _jpeg(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=5) as response:
        return bool(response.read(2) == b"\xff\xd8")
