"""rts-cluster: the local cluster's commands (the Makefile's cluster targets call them).

rts-cluster up     --dir .data/kwok --bin .cache/k8s/<version> --crds DIR...
rts-cluster images --dir .data/kwok --tag 0.1.0 --tag <commit>
rts-cluster status --dir .data/kwok
rts-cluster down   --dir .data/kwok
rts-cluster smoke  --context kind-rts ...
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from rts_cluster import images, smoke
from rts_cluster.controlplane import REAL_NODE, ControlPlane, State
from rts_cluster.daemons import alive
from rts_cluster.kube import ClusterError
from rts_cluster.node import NodeState, RealNode

WHAT_RUNS = """\
kwok's nodes: pods are scheduled and marked running and ready, but nothing runs in them.
The real node ({node}, {address}) runs pods in containerd, with host networking only:
  works:   images loaded with `make images CLUSTER=kwok` (imagePullPolicy: Never), the
           kubelet's probes, resource limits, security contexts, Secrets, kubectl
           exec/logs, pod deletion and restarts, scheduling by ports (one pod per host port)
  doesn't: a pod network (pods without hostNetwork cannot start), Services (no
           kube-proxy, no cluster DNS), NetworkPolicy enforcement, Ingress, operators
           (Strimzi, Prometheus, KEDA: only their CRDs are installed), pulling images
Only pods that select and tolerate rts/real-node=true land on it (k8s/node.yaml)."""


def cmd_up(args: argparse.Namespace) -> int:
    if args.bin is None:
        raise ClusterError("up needs --bin (the folder make controlplane builds)")
    plane = ControlPlane(args.dir, args.bin, args.nodes)
    node = RealNode(plane) if args.real_node else None
    if node is not None:
        missing = node.missing()
        if missing:
            raise ClusterError("the real node needs: " + "; ".join(missing) + " (or REAL_NODE=no)")
    started = time.monotonic()
    state = plane.up(args.crds)
    node_state = None
    if node is not None:
        try:
            node_state = node.up()
        except BaseException:
            plane.down()
            raise
    nodes = plane.kube.ok(
        "get",
        "nodes",
        "-o",
        "custom-columns=NAME:.metadata.name,READY:.status.conditions[?(@.type=='Ready')].status,"
        "ADDRESS:.status.addresses[0].address,TAINTS:.spec.taints[*].key",
    )
    crds = plane.kube.ok("get", "crd", "-o", "name").split()
    print(
        f"Kubernetes control plane (kwok) at {state.server} in {time.monotonic() - started:.0f} s;"
        f" logs in {plane.logs}"
    )
    print(nodes.rstrip())
    print(f"{len(crds)} CRDs installed (Strimzi, prometheus-operator, KEDA)")
    if node_state is None:
        print(
            "Fake nodes only: pods are scheduled and marked running and ready, but nothing runs"
            " in them. No images, no operators, no pod network."
        )
    else:
        print(WHAT_RUNS.format(node=REAL_NODE, address=node_state.address))
        print(f"The real node's logs: {node.daemons.logs if node else ''}")
    print(f"\nexport KUBECONFIG={plane.kubeconfig}")
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    plane = ControlPlane(args.dir, args.bin)
    node = RealNode(plane)
    stopped = node.down()
    stopped += plane.down()
    left = node.leftovers()
    if left:
        raise ClusterError(f"left behind: {', '.join(left)}")
    print(f"stopped: {', '.join(stopped) or 'nothing was running'}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    state = State.load(args.dir)
    if state is None:
        print("not running")
        return 1
    for name, pid in state.pids.items():
        print(f"{name}: pid {pid} {'running' if alive(pid) else 'STOPPED'}")
    node = NodeState.load(args.dir / "node")
    if node is not None:
        for name, pid in node.pids.items():
            print(f"{name} (real node): pid {pid} {'running' if alive(pid) else 'STOPPED'}")
    print(f"api: {state.server}  kubeconfig: {args.dir / 'kubeconfig'}")
    return 0


def cmd_images(args: argparse.Namespace) -> int:
    plane = ControlPlane(args.dir, args.bin)
    node = RealNode(plane)
    if not node.running():
        raise ClusterError(f"no real node runs from {args.dir}: make cluster-up CLUSTER=kwok first")
    built = images.build(args.root, args.tag, args.root / ".cache" / "images")
    for image in built:
        print(image.line())
    names = [name for image in built for name in image.names]
    started = time.monotonic()
    with tempfile.TemporaryDirectory(dir=node.dir) as workdir:
        archive = images.save(names, Path(workdir) / "images.tar")
        node.load_images(archive)
    print(f"loaded into the real node in {time.monotonic() - started:.0f} s: {', '.join(names)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "smoke":
        return smoke.main(argv[1:])
    parser = argparse.ArgumentParser(prog="rts-cluster", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["up", "down", "status", "images", "smoke"])
    parser.add_argument("--dir", type=Path, default=Path(".data/kwok"), help="state folder")
    parser.add_argument("--bin", type=Path, help="folder of the built programs (make controlplane)")
    parser.add_argument(
        "--crds", type=Path, action="append", default=[], help="folder of CRDs (repeatable)"
    )
    parser.add_argument("--nodes", type=int, default=3, help="kwok's fake nodes")
    parser.add_argument(
        "--real-node",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also start a real node: kubelet and containerd on this machine (root)",
    )
    parser.add_argument("--tag", action="append", default=[], help="image tag (repeatable; images)")
    parser.add_argument("--root", type=Path, default=Path("."), help="the repository (images)")
    args = parser.parse_args(argv)
    args.dir = args.dir.resolve()
    commands = {"up": cmd_up, "down": cmd_down, "status": cmd_status, "images": cmd_images}
    try:
        return commands[args.command](args)
    except ClusterError as exc:
        print(f"rts-cluster {args.command}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
