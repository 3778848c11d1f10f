"""MJPEG fan-out: more and more viewers of one 720p 15 fps camera on one gateway process,
in each async mode, against the loopback ceiling (bench/ceiling.py) at the same viewer
counts: unpaced for the most bytes one process can push, and paced at 15 fps for the
latency of the writes alone."""

from __future__ import annotations

from typing import Any

from bench import plots
from bench.context import Bench, Section, ms, pct, ratio, times, verdict
from bench.load import drive, limit_note
from bench.processes import camera_720p, ceiling, fresh_topics, gateway, running, wait_frame

TITLE = "MJPEG fan-out, one gateway process, 720p 15 fps"
CAMERA = "bench-fanout"
MODES = ("eventlet", "threading")
MB = 1e6


def run(bench: Bench) -> Section:
    levels = bench.pick([10], [1, 100, 300, 1000])
    seconds = bench.pick(3, 15)
    warmup = bench.pick(1, 2)
    top = max(levels)
    section = Section(
        "mjpeg",
        TITLE,
        f"""
One `capture` test pattern at 1280x720, 15 fps (detection off), and the gateway under
gunicorn in each async mode; the Node load generator opens {", ".join(map(str, levels))}
MJPEG viewers of `/stream/{CAMERA}` (500 new connections a second), lets them run {warmup} s and
measures {seconds} s: frames received per viewer, the share of the camera's frames that
arrived (by sequence number), latency from capture to the part's last byte, the
gateway's CPU and peak RSS. The loopback ceiling writes a frame of the same camera, with
the same part headers and send buffer, to the same number of viewers from one thread:
unpaced (its throughput is the reference) and, in a full run, at 15 fps.
""",
    )
    kafka = bench.kafka
    prefix = fresh_topics(kafka)
    results: dict[str, dict[int, dict[str, Any]]] = {}
    idle_rss: dict[str, int] = {}
    jpeg = b""
    with running(camera_720p(bench.logs, kafka, prefix, CAMERA)):
        for mode in MODES:
            # gthread holds a thread per stream: give it one per viewer.
            server, port = gateway(
                bench.logs,
                kafka,
                prefix,
                mode,
                name=f"gateway-mjpeg-{mode}",
                threads=max(256, top + 64),
            )
            with running(server):
                jpeg = wait_frame(server, port, CAMERA)
                idle_rss[mode] = server.rss_bytes()
                results[mode] = {}
                for n in levels:
                    config = {
                        "targets": [f"http://127.0.0.1:{port}/stream/{CAMERA}"],
                        "viewers": n,
                        "seconds": seconds,
                        "warmup": warmup,
                        "ramp_per_second": 500,
                    }
                    r = drive(
                        bench,
                        [server],
                        "mjpeg",
                        config,
                        f"{mode} {n} viewers",
                        profile_as=f"mjpeg-{mode}-{n}" if n == top else "",
                    )
                    results[mode][n] = r
                    print(
                        f"  {mode:9} {n:5} viewers: {r['fps_per_viewer']:5.1f} fps, "
                        f"{pct(r['delivered'])} of frames, p99 {ms(r['latency_ms']['p99'])}, "
                        f"gateway CPU {r['server_cpu_percent']:.0f} %, "
                        f"loadgen CPU {r['cpu_percent']:.0f} %",
                        flush=True,
                    )
    part_file = bench.out / "logs" / "frame.jpg"
    part_file.write_bytes(jpeg)
    for fps in bench.pick((0.0,), (0.0, 15.0)):
        key = "ceiling" if fps == 0 else "ceiling 15 fps"
        results[key] = {}
        server, port = ceiling(bench.logs, part_file, fps)
        with running(server):
            for n in levels:
                config = {
                    "targets": [f"http://127.0.0.1:{port}/stream"],
                    "viewers": n,
                    "seconds": seconds,
                    "warmup": warmup,
                    "ramp_per_second": 500,
                }
                r = drive(bench, [server], "mjpeg", config, f"{key} {n} viewers")
                results[key][n] = r
                print(
                    f"  {key:14} {n:5} viewers: {r['fps_per_viewer']:6.1f} fps, "
                    f"{r['bytes_per_second'] / MB:7.1f} MB/s, p99 "
                    f"{ms(r['latency_ms']['p99'])}",
                    flush=True,
                )

    table = section.table(
        "Per async mode and viewer count (throughput: bytes received by all viewers per "
        "second; ceiling: the unpaced loopback ceiling at the same count)",
        "server",
        "viewers",
        "fps/viewer",
        "frames arrived",
        "p50",
        "p99",
        "server CPU",
        "RSS",
        "throughput",
        "÷ ceiling",
        "loadgen CPU",
    )
    for key, per_level in results.items():
        for n, r in per_level.items():
            ceiling_bps = results["ceiling"][n]["bytes_per_second"]
            table.add(
                key,
                n,
                f"{r['fps_per_viewer']:.1f}",
                pct(r["delivered"], 1),
                ms(r["latency_ms"]["p50"]),
                ms(r["latency_ms"]["p99"]),
                f"{r['server_cpu_percent']:.0f} %",
                f"{r['server_rss_bytes'] / 2**20:.0f} MiB",
                f"{r['bytes_per_second'] / MB:.1f} MB/s",
                times(ratio(r["bytes_per_second"], ceiling_bps)),
                f"{r['cpu_percent']:.0f} %",
            )
            note = limit_note(f"{key}, {n} viewers", r)
            if note:
                section.notes.append(note)

    paced = results.get("ceiling 15 fps")
    for mode in MODES:
        r = results[mode][top]
        ok = (r["delivered"] or 0) >= 0.95 and (r["latency_ms"]["p99"] or 1e9) <= 100
        section.stand(
            f"{top} viewers, {mode}: frames arrived, p99",
            f"{pct(r['delivered'], 1)}, {ms(r['latency_ms']['p99'])}",
            f"ceiling at 15 fps: p99 {ms(paced[top]['latency_ms']['p99'])}" if paced else "",
            "",
            "≥ 95 % of frames, p99 ≤ 100 ms",
            verdict(ok),
        )
        share = ratio(r["bytes_per_second"], results["ceiling"][top]["bytes_per_second"])
        section.stand(
            f"{top} viewers, {mode}: throughput",
            f"{r['bytes_per_second'] / MB:.0f} MB/s",
            f"loopback ceiling {results['ceiling'][top]['bytes_per_second'] / MB:.0f} MB/s",
            times(share),
            "≥ 0.5x the ceiling",
            verdict(share >= 0.5),
        )
        per_viewer = (
            float("nan")
            if r.get("unmeasured")
            else (r["server_rss_bytes"] - idle_rss[mode]) / max(1, r["connected"])
        )
        section.stand(
            f"gateway RSS per MJPEG viewer ({mode})",
            f"{per_viewer / 1024:.0f} KiB",
            f"idle {idle_rss[mode] / 2**20:.0f} MiB",
            "",
            "reported",
            "reported",
        )
        section.data[f"rss_per_viewer_{mode}"] = per_viewer
    section.data["results"] = {k: {str(n): r for n, r in v.items()} for k, v in results.items()}
    section.data["idle_rss"] = idle_rss

    plots.against_load(
        bench.out / "mjpeg-load.png",
        f"{TITLE}: per viewer",
        "viewers",
        {
            k: [(n, r["fps_per_viewer"], r["latency_ms"]["p99"] or 0) for n, r in v.items()]
            for k, v in results.items()
            if k != "ceiling"
        },
        "fps per viewer",
        "p99 latency (ms)",
    )
    section.figures.append(("mjpeg-load.png", "fps per viewer and p99 latency against viewers"))
    plots.latency_cdfs(
        bench.out / "mjpeg-cdf.png",
        f"{TITLE}: latency at {top} viewers",
        {k: v[top]["latency_ms"]["cdf"] for k, v in results.items() if k != "ceiling"},
    )
    section.figures.append(("mjpeg-cdf.png", f"Capture → viewer latency at {top} viewers"))
    return section
