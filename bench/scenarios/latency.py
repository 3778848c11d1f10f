"""Video latency: several 720p 15 fps cameras, many viewers each, through the gateway in
each async mode; against Kafka's own EndToEndLatency at the same record size and the
baseline article's PNG pipeline on the same cameras and viewers."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from rts_common.contracts import VIDEO_FRAMES

from bench import plots
from bench.context import Bench, Section, ms, pct, ratio, times, verdict
from bench.load import drive, limit_note
from bench.processes import (
    Proc,
    baseline_video_app,
    baseline_video_producer,
    camera_720p,
    fresh_topics,
    gateway,
    kafka_tool,
    running,
    wait_frame,
)

TITLE = "Video latency, 720p 15 fps, several cameras and viewers"
MODES = ("eventlet", "threading")


def end_to_end_latency(bench: Bench, record_size: int, records: int) -> dict[str, float]:
    """Kafka's EndToEndLatency: one record produced (acks=1), consumed, then the next."""
    spec = dataclasses.replace(VIDEO_FRAMES, name="e2e-latency", local_partitions=1)
    prefix = fresh_topics(bench.kafka, [spec])
    out, _ = kafka_tool(
        bench.logs,
        bench.kafka,
        "EndToEndLatency",
        bench.kafka.bootstrap,
        prefix + spec.name,
        records,
        1,
        record_size,
    )
    avg = re.search(r"Avg latency: ([\d.]+) ms", out)
    pcts = re.search(r"50th = (\d+), 99th = (\d+), 99.9th = (\d+)", out)
    if not avg or not pcts:
        raise RuntimeError(f"unexpected EndToEndLatency output:\n{out[-2000:]}")
    return {
        "mean": float(avg[1]),
        "p50": float(pcts[1]),
        "p99": float(pcts[2]),
        "p999": float(pcts[3]),
        "records": records,
        "record_size": record_size,
    }


def run(bench: Bench) -> Section:
    cameras = bench.pick(1, 4)
    per_camera = bench.pick(2, 20)
    modes = bench.pick(MODES[:1], MODES)
    seconds = bench.pick(3, 20)
    warmup = bench.pick(1, 2)
    viewers = cameras * per_camera
    section = Section(
        "latency",
        TITLE,
        f"""
{cameras} `capture` test patterns at 1280x720, 15 fps (detection off), {per_camera} viewers
each ({viewers} in all, from the Node load generator, measured {seconds} s after a {warmup} s
warm-up): capture → viewer latency through the gateway, in {" and ".join(modes)} mode. References,
in the same run: Kafka's `EndToEndLatency` (org.apache.kafka.tools, from the broker's
jars: produce one record with acks=1, consume it, repeat) at the mean JPEG size of these
cameras; and the baseline article's pipeline on the same pictures and viewers: a
producer per camera that encodes PNG and sleeps 0.2 s (`bench/baselines/video_producer.py`),
and per camera the article's app, one module-level consumer iterated inside the Flask
response under gunicorn's sync worker (`bench/baselines/video_app.py`), which serves one
viewer at a time: the others wait in its listen queue.
""",
    )
    kafka = bench.kafka
    prefix = fresh_topics(kafka)
    names = [f"bench-cam-{i}" for i in range(cameras)]
    results: dict[str, dict[str, Any]] = {}
    sizes: list[int] = []
    with running(*[camera_720p(bench.logs, kafka, prefix, name) for name in names]):
        for mode in modes:
            server, port = gateway(bench.logs, kafka, prefix, mode, name=f"gateway-latency-{mode}")
            with running(server):
                sizes = [len(wait_frame(server, port, name)) for name in names]
                config = {
                    "targets": [f"http://127.0.0.1:{port}/stream/{n}" for n in names],
                    "viewers": viewers,
                    "seconds": seconds,
                    "warmup": warmup,
                }
                results[mode] = r = drive(
                    bench,
                    [server],
                    "mjpeg",
                    config,
                    f"{mode} {viewers} viewers",
                    profile_as=f"latency-{mode}",
                )
                print(
                    f"  {mode:9}: {r['fps_per_viewer']:5.1f} fps, p50 {ms(r['latency_ms']['p50'])},"
                    f" p99 {ms(r['latency_ms']['p99'])}",
                    flush=True,
                )
    record_size = round(sum(sizes) / len(sizes))
    kafka_ref = end_to_end_latency(bench, record_size, bench.pick(100, 3000))
    print(
        f"  EndToEndLatency {record_size} B: p50 {kafka_ref['p50']:.0f} ms, "
        f"p99 {kafka_ref['p99']:.0f} ms",
        flush=True,
    )

    specs = [
        dataclasses.replace(VIDEO_FRAMES, name=f"baseline-{n}", local_partitions=1) for n in names
    ]
    base_prefix = fresh_topics(kafka, specs)
    producers = [
        baseline_video_producer(bench.logs, kafka, base_prefix + s.name, n, 1280, 720)
        for s, n in zip(specs, names, strict=True)
    ]
    with running(*producers):
        apps: list[tuple[Proc, int]] = []
        try:
            for spec, name in zip(specs, names, strict=True):
                apps.append(baseline_video_app(bench.logs, kafka, base_prefix + spec.name, name))
            config = {
                "targets": [f"http://127.0.0.1:{port}/kaf" for _, port in apps],
                "viewers": viewers,
                "seconds": seconds,
                "warmup": warmup,
                "connect_timeout": bench.pick(5, 10),
            }
            results["baseline"] = r = drive(
                bench, [p for p, _ in apps], "mjpeg", config, f"baseline {viewers} viewers"
            )
        finally:
            for proc, _ in apps:
                proc.stop()
    print(
        f"  baseline : {r['served']}/{viewers} viewers served, {r['fps_per_viewer']:.1f} fps "
        f"per viewer, p50 {ms(r['latency_ms']['p50'])}, p99 {ms(r['latency_ms']['p99'])}",
        flush=True,
    )

    table = section.table(
        f"{cameras} cameras x {per_camera} viewers (fps: mean over all viewers; served: "
        "viewers that got any frame)",
        "pipeline",
        "served",
        "fps/viewer",
        "frames arrived",
        "p50",
        "p99",
        "p99.9",
        "server CPU",
        "loadgen CPU",
    )
    for key, r in results.items():
        lat = r["latency_ms"]
        table.add(
            key,
            f"{r['served']}/{viewers}",
            f"{r['fps_per_viewer']:.1f}",
            pct(r["delivered"], 1),
            ms(lat["p50"]),
            ms(lat["p99"]),
            ms(lat["p999"]),
            f"{r['server_cpu_percent']:.0f} %",
            f"{r['cpu_percent']:.0f} %",
        )
        note = limit_note(key, r)
        if note:
            section.notes.append(note)
    table.add(
        f"Kafka EndToEndLatency, {record_size:,} B",
        "",
        "",
        "",
        ms(kafka_ref["p50"]),
        ms(kafka_ref["p99"]),
        ms(kafka_ref["p999"]),
        "",
        "",
    )
    base = results["baseline"]["latency_ms"]["p99"] or float("nan")
    for mode in modes:
        p99 = results[mode]["latency_ms"]["p99"] or float("nan")
        to_kafka, below_base = ratio(p99, kafka_ref["p99"]), ratio(base, p99)
        section.stand(
            f"{mode}: p99 capture → viewer",
            ms(p99),
            f"EndToEndLatency p99 {ms(kafka_ref['p99'])}; baseline p99 {ms(base)}",
            f"{times(to_kafka)} Kafka's; the baseline's is {times(below_base)} this",
            "≤ 3x Kafka's p99, ≥ 20x below the baseline's",
            verdict(to_kafka <= 3 and below_base >= 20),
        )
    section.notes.append(
        f"the baseline served {results['baseline']['served']} of {viewers} viewers: its "
        "sync worker streams to one viewer at a time; its latency is over those it served"
    )
    section.data = {"results": results, "kafka_end_to_end": kafka_ref, "record_size": record_size}
    plots.latency_cdfs(
        bench.out / "latency-cdf.png",
        f"Capture → viewer, {cameras} cameras x {per_camera} viewers",
        {key: r["latency_ms"]["cdf"] for key, r in results.items()},
        {f"Kafka EndToEndLatency ({record_size:,} B)": kafka_ref},
    )
    section.figures.append(
        (
            "latency-cdf.png",
            "Latency CDFs: the gateway in each mode, the "
            "baseline, and Kafka's EndToEndLatency percentiles",
        )
    )
    return section
