"""Check a deployed platform end to end on a live cluster (`make cluster-smoke`).

In order: every pod of the release and of its Kafka cluster is ready; the gateway serves
a JPEG frame from /snapshot; a Socket.IO client receives a `new_event`; the gateway,
scaled to 3 replicas, spreads the playback-events partitions over all of them (each
pod's /metrics: gateway_partitions_assigned); Prometheus holds the frame and event
latency series, and the latency probe's. It talks to the cluster with kubectl
(port-forwards), nothing else.
"""

from __future__ import annotations

import argparse
import re
import sys
import threading
import time
from typing import Any

import requests
import socketio
from rts_cluster.kube import ClusterError, Kube, eventually

EVENTS_TOPIC = "playback-events"
PARTITIONS_SAMPLE = re.compile(
    r"^gateway_partitions_assigned\{(?P<labels>[^}]*)\}\s+(?P<value>[0-9.eE+-]+)$", re.M
)


class SmokeFailure(ClusterError):
    pass


def say(message: str) -> None:
    print(message, flush=True)


# --- the checks ---------------------------------------------------------------------------


def unready_pods(pods: dict[str, Any]) -> list[str]:
    """Names of pods that should serve but are not ready (finished test pods don't count)."""
    names = []
    for pod in pods["items"]:
        if pod["status"].get("phase") == "Succeeded":
            continue
        conditions = {c["type"]: c["status"] for c in pod["status"].get("conditions", [])}
        if conditions.get("Ready") != "True":
            names.append(pod["metadata"]["name"])
    return names


def check_pods_ready(kube: Kube, release: str, timeout: float) -> None:
    selectors = [f"app.kubernetes.io/instance={release}"]
    kafkas = kube.json("get", "kafka", "-l", f"app.kubernetes.io/instance={release}")["items"]
    selectors += [f"strimzi.io/cluster={k['metadata']['name']}" for k in kafkas]

    def ready() -> bool:
        pending = []
        for selector in selectors:
            pods = kube.json("get", "pods", "-l", selector)
            if not pods["items"]:
                raise SmokeFailure(f"no pods match {selector}")
            pending += unready_pods(pods)
        if pending:
            raise SmokeFailure(f"not ready: {', '.join(pending)}")
        return True

    eventually("all pods ready", ready, timeout)
    say(f"ok  all pods ready ({', '.join(selectors)})")


def sign_in(kube: Kube, release: str, url: str) -> requests.Session:
    """A session signed in with a one-time link from the gateway itself (when sign-in is on)."""
    http = requests.Session()
    try:
        link = kube.ok(
            "exec", f"deploy/{release}-gateway", "--", "gateway", "login-url", "--base", url
        ).strip()
    except ClusterError:
        say("--  no sign-in link (GATEWAY_AUTH_SECRET not set): continuing signed out")
        return http
    # What the link's page does in a browser: the token from the fragment, POSTed.
    token = link.partition("#token=")[2]
    response = http.post(f"{url}/login", data={"token": token}, allow_redirects=False, timeout=10)
    if response.status_code != 200 or not http.cookies:
        raise SmokeFailure(f"the login link answered {response.status_code}, no session")
    say("ok  signed in with a one-time login link")
    return http


def check_snapshot(http: requests.Session, url: str, timeout: float) -> str:
    def first_camera() -> str:
        cameras = http.get(f"{url}/api/cameras", timeout=5).json()["cameras"]
        return str(cameras[0]["camera"]) if cameras else ""

    camera = eventually("a camera listed in /api/cameras", first_camera, timeout)

    def frame() -> bytes:
        response = http.get(f"{url}/snapshot/{camera}.jpg", timeout=10)
        if response.status_code != 200:
            raise SmokeFailure(f"/snapshot/{camera}.jpg answered {response.status_code}")
        return response.content

    jpeg = eventually(f"a frame of {camera}", frame, timeout)
    if not (jpeg.startswith(b"\xff\xd8") and jpeg.rstrip(b"\x00").endswith(b"\xff\xd9")):
        raise SmokeFailure(f"/snapshot/{camera}.jpg is not a JPEG")
    say(f"ok  /snapshot/{camera}.jpg: {len(jpeg)}-byte JPEG")
    return camera


def watch_stream(http: requests.Session, url: str, camera: str, seconds: float) -> int:
    """Read the MJPEG stream a while (the gateway measures frame latency for viewers)."""
    parts = 0
    deadline = time.monotonic() + seconds
    with http.get(f"{url}/stream/{camera}", stream=True, timeout=10) as response:
        response.raise_for_status()
        for chunk in response.iter_content(64 * 1024):
            parts += chunk.count(b"\xff\xd8")
            if time.monotonic() > deadline:
                break
    if not parts:
        raise SmokeFailure(f"/stream/{camera} sent no frame in {seconds:.0f}s")
    say(f"ok  /stream/{camera}: {parts} frames in {seconds:.0f}s")
    return parts


def check_socketio_event(http: requests.Session, url: str, timeout: float) -> None:
    received = threading.Event()
    client = socketio.Client(reconnection=False)
    client.on("new_event", lambda _data: received.set())
    cookie = "; ".join(f"{k}={v}" for k, v in http.cookies.items())
    headers = {"Cookie": cookie} if cookie else {}
    client.connect(url, headers=headers, transports=["websocket"], wait_timeout=10)
    try:
        if not received.wait(timeout):
            raise SmokeFailure(f"no new_event over Socket.IO within {timeout:.0f}s")
    finally:
        client.disconnect()
    say("ok  Socket.IO new_event received")


def partitions_assigned(metrics: str, topic_suffix: str = EVENTS_TOPIC) -> int:
    """The pod's gateway_partitions_assigned for the events topic (any prefix)."""
    total = 0.0
    for sample in PARTITIONS_SAMPLE.finditer(metrics):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', sample.group("labels")))
        if labels.get("topic", "").endswith(topic_suffix):
            total += float(sample.group("value"))
    return int(total)


def spread_problem(assigned: dict[str, int], partitions: int) -> str:
    """Why `assigned` (pod → partitions) is not a full spread over every pod, or ""."""
    if sum(assigned.values()) != partitions:
        return f"{sum(assigned.values())} of {partitions} partitions assigned: {assigned}"
    idle = [pod for pod, count in assigned.items() if count == 0]
    if idle and len(assigned) <= partitions:
        return f"replicas without a partition: {idle} ({assigned})"
    return ""


def check_scaling(kube: Kube, release: str, replicas: int, partitions: int, timeout: float) -> None:
    deployment = f"{release}-gateway"
    kube.ok("scale", f"deployment/{deployment}", f"--replicas={replicas}")
    kube.ok("rollout", "status", f"deployment/{deployment}", "--timeout=300s", timeout=320)
    spec = kube.json("get", "deployment", deployment)["spec"]
    selector = ",".join(f"{k}={v}" for k, v in spec["selector"]["matchLabels"].items())
    (container,) = spec["template"]["spec"]["containers"]
    # /metrics is on the ops port, which no Service routes publicly: one pod at a time.
    port = next(p["containerPort"] for p in container["ports"] if p["name"] == "ops")

    def spread() -> dict[str, int]:
        pods = [
            p["metadata"]["name"]
            for p in kube.json("get", "pods", "-l", selector)["items"]
            if p["metadata"].get("deletionTimestamp") is None
        ]
        assigned = {}
        for pod in pods:
            with kube.port_forward(f"pod/{pod}", port) as url:
                metrics = requests.get(f"{url}/metrics", timeout=5).text
            assigned[pod] = partitions_assigned(metrics)
        if len(assigned) != replicas:
            raise SmokeFailure(f"{len(assigned)} gateway pods, want {replicas}")
        problem = spread_problem(assigned, partitions)
        if problem:
            raise SmokeFailure(problem)
        return assigned

    assigned = eventually("partitions spread over the gateway replicas", spread, timeout, every=5)
    say(f"ok  {replicas} gateway replicas share {partitions} partitions: {assigned}")


def check_prometheus(kube_monitoring: Kube, service: str, namespace: str, timeout: float) -> None:
    queries = {
        "frame latency": f'sum(gateway_frame_latency_seconds_count{{namespace="{namespace}"}})',
        "event latency": f'sum(gateway_event_latency_seconds_count{{namespace="{namespace}"}})',
        # The in-cluster probe's viewers: latency with nobody watching.
        "probe latency": f'sum(probe_frame_latency_seconds_count{{namespace="{namespace}"}})',
    }
    with kube_monitoring.port_forward(f"svc/{service}", 9090) as url:
        for name, query in queries.items():

            def present(query: str = query) -> float:
                body = requests.get(f"{url}/api/v1/query", params={"query": query}, timeout=10)
                result = body.json()["data"]["result"]
                return float(result[0]["value"][1]) if result else 0.0

            value = eventually(f"{name} series in Prometheus", present, timeout, every=5)
            say(f"ok  Prometheus has {name} samples ({query} = {value:.0f})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--context", required=True, help="kubectl context of the cluster")
    parser.add_argument("--namespace", default="rts")
    parser.add_argument("--release", default="streaming")
    parser.add_argument("--replicas", type=int, default=3, help="gateway replicas to scale to")
    parser.add_argument("--partitions", type=int, default=6, help="partitions of playback-events")
    parser.add_argument("--monitoring-namespace", default="monitoring")
    parser.add_argument("--prometheus-service", default="kube-prometheus-stack-prometheus")
    parser.add_argument("--timeout", type=float, default=180, help="seconds per check")
    args = parser.parse_args(argv)

    kube = Kube(context=args.context, namespace=args.namespace)
    try:
        check_pods_ready(kube, args.release, args.timeout)
        service = kube.json("get", "service", f"{args.release}-gateway")
        with kube.port_forward(
            f"svc/{args.release}-gateway", service["spec"]["ports"][0]["port"]
        ) as url:
            http = sign_in(kube, args.release, url)
            camera = check_snapshot(http, url, args.timeout)
            check_socketio_event(http, url, min(args.timeout, 60))
            watch_stream(http, url, camera, 10)
        check_scaling(kube, args.release, args.replicas, args.partitions, args.timeout)
        check_prometheus(
            kube.in_namespace(args.monitoring_namespace),
            args.prometheus_service,
            args.namespace,
            args.timeout,
        )
    except ClusterError as failure:
        say(f"FAIL {failure}")
        return 1
    say("cluster smoke test passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
