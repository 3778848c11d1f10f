"""rts-devstack: the local stack (`run`) and the local Kafka broker (`kafka ...`)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from pathlib import Path

from rts_common.lifecycle import shutdown_event
from rts_common.logs import configure_logging

from rts_devstack import ports, run
from rts_devstack.broker import LocalKafka, train_class_archive
from rts_devstack.distribution import BrokerError, KafkaDistribution, repo_root
from rts_devstack.fleet import control_socket, request_scale
from rts_devstack.runlock import Record, live_record
from rts_devstack.stack import gateway_secret, login_link

USAGE = """rts-devstack run [--help]          the whole platform (what `make run` runs)
       rts-devstack scale N [--help]       N gateway replicas in the running platform
       rts-devstack login-url [--help]     a sign-in link for the running platform's dashboard
       rts-devstack kafka ACTION [--help]  the local broker: fetch|start|stop|status|run|topics"""


def _data_dir_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ.get("RTS_DATA_DIR", ".data")),
        help="the running stack's data folder (RTS_DATA_DIR; default .data)",
    )


def _live_run(data_dir: Path, then: str) -> Record | None:
    """The record of the `make run` holding `data_dir`, or None (and why, on stderr)."""
    data = data_dir if data_dir.is_absolute() else repo_root() / data_dir
    record = live_record(data)
    if record is None:
        print(
            f"error: no `make run` is running with the data folder {data}: start one "
            f"({then}), or point RTS_DATA_DIR at the folder of the one that runs",
            file=sys.stderr,
        )
    return record


def scale_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="rts-devstack scale",
        description="Change the number of gateway replicas of a running `rts-devstack run "
        "--gateways N` (what `make scale GATEWAYS=N` runs), as `kubectl scale` does.",
    )
    parser.add_argument("replicas", type=int, help="how many gateway replicas to run")
    _data_dir_argument(parser)
    args = parser.parse_args(argv)
    record = _live_run(args.data_dir, "`make run GATEWAYS=N`")
    if record is None:
        return 1
    return 0 if request_scale(control_socket(Path(record.data_dir)), args.replicas, print) else 1


def login_url_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="rts-devstack login-url",
        description="Print a one-time sign-in link (an operator's, valid 10 minutes) for the "
        "dashboard of the running `rts-devstack run` (what `make login-url` runs). Other "
        "flags go to `gateway login-url`: --camera ID, --role viewer, --subject NAME.",
    )
    _data_dir_argument(parser)
    args, flags = parser.parse_known_args(argv)
    record = _live_run(args.data_dir, "`make run`")
    if record is None:
        return 1
    if not record.dashboard:
        print("error: the running `make run` has no dashboard (--no-services)", file=sys.stderr)
        return 1
    secret = gateway_secret(Path(record.data_dir))
    print(login_link(record.dashboard.rstrip("/"), secret, *flags))
    return 0


def kafka_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="rts-devstack kafka",
        description="A real Apache Kafka broker (or cluster) on 127.0.0.1 in KRaft mode.",
    )
    parser.add_argument(
        "action",
        choices=["fetch", "start", "stop", "status", "run", "topics"],
        help="fetch the jars; start in the background; stop; status; run in the foreground "
        "until Ctrl-C; create the platform's topics",
    )
    parser.add_argument("--port", type=int, default=9092, help="client port of node 1")
    parser.add_argument("--nodes", type=int, default=1, help="number of broker+controller nodes")
    parser.add_argument(
        "--data-dir", type=Path, default=None, help="data folder (default .data/kafka)"
    )
    args = parser.parse_args(argv)
    configure_logging("devstack", "info", "console")
    try:
        if args.action == "fetch":
            return _fetch()
        kafka = LocalKafka(
            args.data_dir or repo_root() / ".data" / "kafka",
            nodes=args.nodes,
            port=args.port,
            detach=args.action == "start",
        )
        return _kafka_action(args.action, kafka)
    except BrokerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _fetch() -> int:
    """The jars, then (once per JDK build) the class archive that speeds up every start."""
    dist = KafkaDistribution.fetch()
    print(f"Kafka {dist.version}: {dist.libs}")
    if not dist.class_archive.is_file():
        print("recording the broker's classes for faster starts (once, some seconds)")
        with ports.reserve(2) as reserved, tempfile.TemporaryDirectory() as data:
            train_class_archive(dist, Path(data), reserved)
    return 0


def _kafka_action(action: str, kafka: LocalKafka) -> int:
    if action == "status":
        running = kafka.running()
        print(f"{kafka.bootstrap}: {'running' if running else 'stopped'} (nodes {running})")
        return 0 if running else 3
    if action == "stop":
        data_root = kafka.data_root.resolve()
        held = live_record(data_root.parent)
        if held is not None and Path(held.data_dir, "kafka").resolve() == data_root:
            print("error: this broker is `make run`'s; stop that instead:", file=sys.stderr)
            for line in held.describe():
                print(f"  {line}", file=sys.stderr)
            return 1
        kafka.stop()
        print("stopped")
        return 0
    if action == "topics":
        print(f"created: {kafka.create_topics()}")
        return 0
    kafka.start()
    created = kafka.create_topics()
    print(f"Kafka {kafka.dist.version} ready on {kafka.bootstrap}; created topics: {created}")
    if action == "run":
        try:
            shutdown_event().wait()
        finally:
            kafka.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    logging.captureWarnings(True)
    if argv and argv[0] == "run":
        return run.main(argv[1:])
    if argv and argv[0] == "kafka":
        return kafka_main(argv[1:])
    if argv and argv[0] == "scale":
        return scale_main(argv[1:])
    if argv and argv[0] == "login-url":
        return login_url_main(argv[1:])
    print(USAGE, file=sys.stderr)
    return 0 if argv and argv[0] in ("-h", "--help") else 2


if __name__ == "__main__":
    sys.exit(main())
