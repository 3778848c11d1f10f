"""The chart's pods on a real node, in the order a user meets them: every pod running and
ready under the chart's security context as the runtime enforces it; a frame and an
event through the gateway pod, signed in with `make cluster-login-url`; `helm test`;
Prometheus finding the pods through the API server and every dashboard panel answering;
a deleted gateway pod replaced while a Socket.IO client reconnects; a deleted event-sim
pod losing no acknowledged event; `helm upgrade` rolling the pods; and a second gateway
replica refused by the scheduler for its ports.

The tests share one release (the session's) and run in this file's order.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import requests
import socketio
from rts_cluster import smoke
from rts_cluster.controlplane import PROMETHEUS, REAL_NODE
from rts_cluster.discovery import ApiServer, Discovery
from rts_cluster.kube import ClusterError, eventually
from rts_cluster.monitoring import scrape_configs
from rts_cluster.node import cgroup_version
from rts_cluster.ports import free_ports
from rts_common.contracts import PLAYBACK_EVENTS
from rts_common.signin import SESSION_COOKIE
from rts_observability import prometheus as local_prometheus
from rts_observability.dashboards import DASHBOARDS
from rts_observability.verify import Prometheus, Result, rate_interval, verify

from tests.node.conftest import ROOT, SCRAPE_SECONDS, Release, ready

# The first test's setup may build the images and start the cluster (a cold run: 30 min).
pytestmark = pytest.mark.timeout(3600)
DASHBOARD_FILES = ROOT / "helm" / "streaming" / "files" / "dashboards"
USER = 10001


def containers(release: Release) -> list[tuple[dict[str, Any], dict[str, Any], int]]:
    """(pod, container spec, the container's main process id on this machine)."""
    tasks = {}
    for line in release.node.ctr("tasks", "list").stdout.splitlines()[1:]:
        task, pid, *_ = line.split()
        tasks[task] = int(pid)
    found = []
    for pod in release.pods():
        specs = {c["name"]: c for c in pod["spec"]["containers"]}
        for status in pod["status"]["containerStatuses"]:
            task = status["containerID"].split("://", 1)[1]
            found.append((pod, specs[status["name"]], tasks[task]))
    return found


def proc_status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {k: v.strip() for k, _, v in (line.partition(":") for line in lines)}


def root_mount_options(pid: int) -> list[str]:
    for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines():
        fields = line.split()
        if fields[4] == "/":
            return fields[5].split(",")
    raise AssertionError(f"no / in the mounts of {pid}")


def memory_limit(pid: int) -> int:
    """The memory limit the runtime put on the process's cgroup, in bytes."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if cgroup_version() == 1 and "memory" in controllers.split(","):
            return int(Path(f"/sys/fs/cgroup/memory{path}/memory.limit_in_bytes").read_text())
        if cgroup_version() == 2 and controllers == "":
            return int(Path(f"/sys/fs/cgroup{path}/memory.max").read_text())
    raise AssertionError(f"no memory cgroup for {pid}")


QUANTITY = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30}


def quantity(text: str) -> int:
    unit = text[-2:]
    return int(text[:-2]) * QUANTITY[unit] if unit in QUANTITY else int(text)


def test_every_pod_runs_ready_under_the_charts_security_context(release: Release) -> None:
    pods = release.pods()
    components = sorted(p["metadata"]["labels"]["app.kubernetes.io/component"] for p in pods)
    assert components == ["capture", "capture", "event-sim", "gateway", "latency-probe"]
    address = release.node.state.address if release.node.state else ""
    for pod in pods:
        name = pod["metadata"]["name"]
        assert pod["status"]["phase"] == "Running", name
        assert ready(pod), name
        assert pod["spec"]["nodeName"] == REAL_NODE, name
        assert pod["spec"]["hostNetwork"] is True
        assert pod["status"]["podIP"] == address
    checked = containers(release)
    assert len(checked) == len(pods)
    for pod, spec, pid in checked:
        name = pod["metadata"]["name"]
        status = proc_status(pid)
        # What the kernel holds for the running process, not what the spec asks for.
        assert status["Uid"].split() == [str(USER)] * 4, (name, status["Uid"])
        assert status["Gid"].split() == [str(USER)] * 4, (name, status["Gid"])
        for capabilities in ("CapPrm", "CapEff", "CapBnd", "CapAmb"):
            assert int(status[capabilities], 16) == 0, (name, capabilities, status[capabilities])
        assert status["NoNewPrivs"] == "1", name
        assert status["Seccomp"] == "2", name  # a filter: the runtime's default profile
        assert "ro" in root_mount_options(pid), name
        limit = quantity(spec["resources"]["limits"]["memory"])
        assert memory_limit(pid) == limit, name
        refused = release.kube.kubectl(
            "exec", name, "-c", spec["name"], "--", "python", "-c", "open('/written', 'w')"
        )
        assert refused.returncode != 0
        assert "Read-only file system" in refused.output, refused.output


def make_login_url(release: Release) -> str:
    plane = release.node.plane
    out = subprocess.run(
        [
            *"make --no-print-directory cluster-login-url CLUSTER=kwok".split(),
            f"KWOK_DIR={plane.dir}",
            f"K8S_BIN={plane.bin}",
            f"NAMESPACE={release.namespace}",
            f"RELEASE={release.name}",
            f"BASE={release.gateway_url}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout.strip()


@pytest.fixture(scope="module")
def signed_in(release: Release) -> requests.Session:
    """A browser's session, opened with a one-time link from `make cluster-login-url`."""
    link = make_login_url(release)
    assert link.startswith(release.gateway_url), link
    http = requests.Session()
    token = link.partition("#token=")[2]
    answer = http.post(f"{release.gateway_url}/login", data={"token": token}, timeout=10)
    assert answer.status_code == 200, answer.text
    assert SESSION_COOKIE in http.cookies
    return http


def test_a_frame_and_an_event_through_the_gateway_pod(
    release: Release, signed_in: requests.Session
) -> None:
    url = release.gateway_url
    camera = smoke.check_snapshot(signed_in, url, timeout=120)
    assert camera in ("lobby", "parking")
    smoke.check_socketio_event(signed_in, url, timeout=60)
    assert smoke.watch_stream(signed_in, url, camera, seconds=3) > 0


def test_helm_test_passes(release: Release) -> None:
    out = release.helm("test", release.name, "--logs", "--timeout", "4m", timeout=300)
    assert re.search(r"camera lobby: a \d+-byte JPEG frame", out), out


# --- Prometheus ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def prometheus(release: Release, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    """Debian's Prometheus, its targets from the API server as the chart's monitors select
    them, and the local broker (outside the cluster) as a target of the release's namespace."""
    folder = tmp_path_factory.mktemp("prometheus")
    plane = release.node.plane
    kubeconfig = plane.write_kubeconfig(folder / "kubeconfig", PROMETHEUS)
    discovery = Discovery(ApiServer(kubeconfig)).start()
    monitors = release.kube.json("get", "podmonitors,servicemonitors")["items"]
    assert {m["kind"] for m in monitors} == {"PodMonitor", "ServiceMonitor"}
    jobs = scrape_configs(monitors, discovery.url, refresh=f"{SCRAPE_SECONDS:g}s")
    jobs.append(
        {
            "job_name": "kafka",
            "static_configs": [
                {
                    "targets": [release.broker.metrics],
                    "labels": {"namespace": release.namespace, "pod": "kafka-local"},
                }
            ],
        }
    )
    interval = f"{SCRAPE_SECONDS:g}s"
    config = {
        "global": {
            "scrape_interval": interval,
            "scrape_timeout": interval,
            "evaluation_interval": interval,
        },
        "scrape_configs": jobs,
    }
    (folder / "prometheus.yml").write_text(json.dumps(config, indent=2))
    binary = local_prometheus.binary()
    assert binary, "prometheus is missing: tools/system-deps.sh installs Debian's"
    (port,) = free_ports(1)
    argv = local_prometheus.command(binary, folder / "prometheus.yml", folder / "data", port)
    with (folder / "prometheus.log").open("wb") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"

    def answers_ready() -> bool:
        """Its API answers 503 until its storage is open (once, here, at the first query
        on a busy machine)."""
        assert process.poll() is None, (folder / "prometheus.log").read_text()[-3000:]
        return requests.get(f"{url}/-/ready", timeout=5).status_code == 200

    try:
        eventually("Prometheus ready", answers_ready, 120, every=0.5)
        yield Prometheus(url)
    finally:
        process.terminate()
        process.wait(30)
        discovery.stop()
        assert discovery.errors == 0


def targets_up(prometheus: Prometheus, pods: list[str]) -> dict[str, list[dict[str, str]]]:
    """Prometheus's targets by scrape pool, once every pod of `pods` is one that is up."""
    up: dict[str, list[dict[str, str]]] = {}
    down = []
    for target in prometheus.get("/api/v1/targets")["activeTargets"]:
        if target["health"] == "up":
            up.setdefault(target["scrapePool"], []).append(target["labels"])
        else:
            down.append(f"{target['labels'].get('pod')}: {target['lastError'] or 'not scraped'}")
    found = sorted(t["pod"] for pool in up.values() for t in pool)
    if found != sorted(pods):
        raise ClusterError(f"targets up: {found}; down: {down}")
    return up


def panels(results: list[Result], title: str) -> list[Result]:
    return [r for r in results if r.query.panel == title]


def report(results: list[Result]) -> str:
    return "\n".join(
        f"{'ok  ' if r.ok else 'FAIL'} {r.query.dashboard} / {r.query.panel} [{r.query.ref_id}]"
        f" {r.series} series {r.sample!r} {'; '.join(r.problems)}"
        for r in results
    )


class Viewers:
    """An MJPEG viewer of every camera and a Socket.IO dashboard, until stopped."""

    def __init__(self, url: str, cameras: list[str], http: requests.Session) -> None:
        self._stop = threading.Event()
        self.frames = dict.fromkeys(cameras, 0)
        self.errors: list[str] = []
        self.events = 0
        cookie = f"{SESSION_COOKIE}={http.cookies[SESSION_COOKIE]}"
        self.client = socketio.Client(reconnection=False)
        self.client.on("new_event", self._on_event)
        self.client.connect(url, headers={"Cookie": cookie}, transports=["websocket"])
        self._threads = [
            threading.Thread(target=self._watch, args=(http, url, c), daemon=True) for c in cameras
        ]
        for thread in self._threads:
            thread.start()

    def _on_event(self, _data: Any) -> None:
        self.events += 1

    def _watch(self, http: requests.Session, url: str, camera: str) -> None:
        try:
            with http.get(f"{url}/stream/{camera}", stream=True, timeout=10) as stream:
                for chunk in stream.iter_content(65536):
                    self.frames[camera] += chunk.count(b"\xff\xd8")
                    if self._stop.is_set():
                        return
        except requests.RequestException as exc:
            self.errors.append(f"{camera}: {exc}")

    def stop(self) -> None:
        self._stop.set()
        self.client.disconnect()
        for thread in self._threads:
            thread.join(10)


def test_prometheus_finds_the_pods_and_every_panel_has_their_data(
    release: Release, prometheus: Prometheus, signed_in: requests.Session
) -> None:
    pods = {p["metadata"]["name"]: p for p in release.pods()}

    up = eventually(
        "every pod a target that is up",
        lambda: targets_up(prometheus, [*pods, "kafka-local"]),
        120,
        every=SCRAPE_SECONDS,
    )
    for pool, labels in up.items():
        for target in labels:
            assert target["namespace"] == release.namespace, (pool, target)
            if pool != "kafka":
                component = pods[target["pod"]]["metadata"]["labels"]["app.kubernetes.io/component"]
                assert pool.startswith(
                    "serviceMonitor/" if component == "gateway" else "podMonitor/"
                )
    print(f"\nPrometheus targets: { {pool: len(t) for pool, t in up.items()} }")

    dashboards = [json.loads((DASHBOARD_FILES / name).read_text()) for name in DASHBOARDS]
    prefer = {"namespace": release.namespace}
    window = 6 * SCRAPE_SECONDS

    def probe_latency() -> list[Result]:
        results = verify(
            dashboards, prometheus, scrape_interval=SCRAPE_SECONDS, window=window, prefer=prefer
        )
        probe = panels(results, "Capture → probe latency per camera")
        return probe if probe and all(r.ok for r in probe) else []

    # The latency probe is the only viewer yet: its panel has data at once.
    probe = eventually("the probe's latency panel", probe_latency, 120, every=SCRAPE_SECONDS)
    print(report(probe))

    cameras = ["lobby", "parking"]
    viewers = Viewers(release.gateway_url, cameras, signed_in)
    started = time.time()
    try:
        warm_up = rate_interval(SCRAPE_SECONDS, SCRAPE_SECONDS) + 2 * SCRAPE_SECONDS
        eventually(
            "rates that cover only time with viewers",
            lambda: time.time() > started + warm_up + window,
            warm_up + window + 10,
            every=1,
        )

        def every_panel() -> list[Result]:
            results = verify(
                dashboards, prometheus, scrape_interval=SCRAPE_SECONDS, window=window, prefer=prefer
            )
            return results if all(r.problems != ("no series",) for r in results) else []

        try:
            results = eventually("every panel with series", every_panel, 90, every=SCRAPE_SECONDS)
        except ClusterError:
            results = verify(
                dashboards, prometheus, scrape_interval=SCRAPE_SECONDS, window=window, prefer=prefer
            )
        print(report(results))
        assert all(r.ok for r in results), report([r for r in results if not r.ok])
        assert len(results) >= 80
        assert viewers.events > 0
        assert all(viewers.frames.values()), viewers.frames
        assert viewers.errors == []
    finally:
        viewers.stop()


# --- pods deleted, upgraded, scaled --------------------------------------------------------


def wait_component_ready(release: Release, component: str, not_named: set[str]) -> str:
    def new_ready() -> str:
        fresh = [p for p in release.pods(component) if p["metadata"]["name"] not in not_named]
        return fresh[0]["metadata"]["name"] if len(fresh) == 1 and ready(fresh[0]) else ""

    return eventually(f"a new {component} pod ready", new_ready, 240, every=1)


def test_a_deleted_gateway_pod_is_replaced_and_a_socketio_client_reconnects(
    release: Release, signed_in: requests.Session
) -> None:
    cookie = {"Cookie": f"{SESSION_COOKIE}={signed_in.cookies[SESSION_COOKIE]}"}
    # Attempts bounded: about 2 minutes of them.
    client = socketio.Client(
        reconnection_attempts=60, reconnection_delay=0.5, reconnection_delay_max=2
    )
    connects: list[float] = []
    disconnects: list[str] = []
    events: list[float] = []
    client.on("connect", lambda: connects.append(time.monotonic()))
    client.on("disconnect", lambda *reason: disconnects.append(str(reason[0]) if reason else ""))
    client.on("new_event", lambda _data: events.append(time.monotonic()))
    client.connect(release.gateway_url, headers=cookie, transports=["websocket"], wait_timeout=10)
    try:
        eventually("an event before", lambda: events, 60)
        (old,) = [p["metadata"]["name"] for p in release.pods("gateway")]
        release.kube.ok("delete", "pod", old, "--wait=false")
        # The gateway closes its sessions as it stops (on SIGTERM), on purpose: a client
        # does not reconnect by itself after that, and the dashboard's page connects again
        # (frontend/src/main.js); this client does what the page does.
        eventually("the gateway closing the connection", lambda: disconnects, 90)
        assert disconnects == ["server disconnect"], disconnects
        client.connect(
            release.gateway_url,
            headers=cookie,
            transports=["websocket"],
            wait_timeout=10,
            retry=True,
        )
        new = wait_component_ready(release, "gateway", {old})
        print(f"\ngateway {old} replaced by {new}")
        eventually("the client connected to the new pod", lambda: len(connects) >= 2, 90)
        eventually("an event from the new pod", lambda: events[-1] > connects[-1], 60)
    finally:
        client.disconnect()


class ContainerLog:
    """A container's log file on the node, held open from before its pod is deleted.

    Not `kubectl logs --follow`: once, here, it ended with exit code 0 as its container
    stopped, without event-sim's last line (the kubelet ends the stream when it finds
    the container exited, and the runtime may not have written its last lines to the
    file by then), and the pod, deleted, could not be asked again. An open file outlives
    the kubelet removing it with the pod, so every line the container wrote is read,
    and waited for.
    """

    def __init__(self, release: Release, pod: str, container: str) -> None:
        uid = release.kube.json("get", "pod", pod)["metadata"]["uid"]
        # The kubelet's layout: <podLogsDir>/<namespace>_<pod>_<uid>/<container>/<restarts>.log
        folder = release.node.pod_logs / f"{release.namespace}_{pod}_{uid}" / container
        newest = max(folder.glob("*.log"), key=lambda path: int(path.stem))
        self.handle = newest.open(encoding="utf-8", errors="replace")
        self.lines: list[str] = []
        self._partial = ""

    def read(self) -> list[str]:
        """The container's output so far, whole lines (CRI format: time, stream, P for a
        partial line or F for its last part, text)."""
        for entry in self.handle.read().splitlines():
            parts = entry.split(" ", 3)
            if len(parts) < 3:
                continue  # a line the runtime is still writing comes whole next time
            text = parts[3] if len(parts) == 4 else ""
            if parts[2] == "P":
                self._partial += text
            else:
                self.lines.append(self._partial + text)
                self._partial = ""
        return self.lines

    def close(self) -> None:
        self.handle.close()


def finished(log: ContainerLog, timeout: float = 90) -> dict[str, Any]:
    """event-sim's last words: how many events the broker acknowledged, and failed."""

    def summary() -> list[dict[str, Any]]:
        records = [json.loads(line) for line in log.read() if line.startswith("{")]
        return [r for r in records if r.get("msg") == "finished"]

    try:
        (record,) = eventually("event-sim's 'finished' record", summary, timeout, every=0.5)
    finally:
        log.close()
    return record


def test_a_deleted_event_sim_pod_loses_no_acknowledged_event(release: Release) -> None:
    deployment = f"deployment/{release.name}-event-sim"
    gateway_ops = release.ports.gateway_ops
    counted = "gateway_playback_events_total"

    events_topic = f"{release.broker.prefix}{PLAYBACK_EVENTS.name}"
    owned = f'gateway_partitions_assigned{{topic="{events_topic}"}}'

    def settled() -> list[float]:
        """[the gateway's count] once it owns the events' partitions, nothing is produced
        and its lag is 0 (over a scrape interval); [] while it still moves. A gateway that
        owns no partition yet has no lag either: the one the previous test started, not in
        its group yet on a busy machine, once looked settled at 0, then counted the events
        it had to catch up on."""
        first = release.metric(gateway_ops, counted)
        lag = release.metric(gateway_ops, "gateway_consumer_lag")
        partitions = release.metric(gateway_ops, owned)
        time.sleep(SCRAPE_SECONDS)
        still = release.metric(gateway_ops, counted) == first
        return [first] if partitions > 0 and lag == 0 and still else []

    release.kube.ok("scale", deployment, "--replicas=0")
    eventually("event-sim stopped", lambda: not release.pods("event-sim"), 120)
    (before,) = eventually("the gateway's count settled", settled, 120)
    release.kube.ok("scale", deployment, "--replicas=1")
    first = wait_component_ready(release, "event-sim", set())
    ops = release.ports.eventsim_ops
    eventually(
        "events acknowledged", lambda: release.metric(ops, "eventsim_events_total") > 300, 90
    )
    log = ContainerLog(release, first, "event-sim")
    release.kube.ok("delete", "pod", first, "--wait=false")
    deleted = finished(log)
    second = wait_component_ready(release, "event-sim", {first})
    eventually(
        "events acknowledged", lambda: release.metric(ops, "eventsim_events_total") > 300, 90
    )
    log = ContainerLog(release, second, "event-sim")
    release.kube.ok("scale", deployment, "--replicas=0")
    scaled_down = finished(log)
    print(f"\nevent-sim {first}: {deleted}\nevent-sim {second}: {scaled_down}")
    assert deleted["failed"] == scaled_down["failed"] == 0
    acknowledged = deleted["delivered"] + scaled_down["delivered"]
    expected = before + acknowledged
    eventually(
        "every acknowledged event counted",
        lambda: release.metric(gateway_ops, counted) >= expected,
        120,
    )
    assert settled() == [expected]
    release.kube.ok("scale", deployment, "--replicas=1")
    wait_component_ready(release, "event-sim", {first, second})


def test_helm_upgrade_with_a_changed_value_rolls_every_pod_once_ready(release: Release) -> None:
    before = {p["metadata"]["name"] for p in release.pods()}
    out = release.upgrade("--set", "logging.level=debug")
    returned = time.time()
    assert "STATUS: deployed" in out, out
    after = release.pods()
    assert before.isdisjoint(p["metadata"]["name"] for p in after), (before, after)
    for pod in after:
        (container,) = pod["spec"]["containers"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["LOG_LEVEL"] == "debug", pod["metadata"]["name"]
        (condition,) = [c for c in pod["status"]["conditions"] if c["type"] == "Ready"]
        assert condition["status"] == "True"
        # helm returned only once the kubelet's readiness probes passed.
        became_ready = datetime.fromisoformat(
            condition["lastTransitionTime"].replace("Z", "+00:00")
        )
        assert became_ready.timestamp() <= returned + 1
    for deployment in release.kube.json("get", "deployments")["items"]:
        status, name = deployment["status"], deployment["metadata"]["name"]
        assert status["observedGeneration"] == deployment["metadata"]["generation"], name
        assert status["updatedReplicas"] == status["readyReplicas"] == 1, (name, status)


def test_a_second_gateway_on_the_one_real_node_is_refused_for_its_ports(release: Release) -> None:
    deployment = f"deployment/{release.name}-gateway"
    (running,) = [p["metadata"]["name"] for p in release.pods("gateway")]
    release.kube.ok("scale", deployment, "--replicas=2")
    try:

        def refused() -> str:
            for pod in release.pods("gateway"):
                for condition in pod["status"].get("conditions") or []:
                    if condition["type"] == "PodScheduled" and condition["status"] == "False":
                        return f"{condition['reason']}: {condition['message']}"
            return ""

        reason = eventually("the second replica refused", refused, 60)
        print(f"\nscheduler: {reason}")
        assert reason.startswith("Unschedulable: "), reason
        assert "1 node(s) didn't have free ports for the requested pod ports" in reason
        # kwok's fake nodes are not candidates: the gateway selects the real node.
        assert "didn't match Pod's node affinity/selector" in reason
    finally:
        release.kube.ok("scale", deployment, "--replicas=1")
    eventually(
        "one gateway again, the same",
        lambda: [p["metadata"]["name"] for p in release.pods("gateway")] == [running],
        60,
    )
