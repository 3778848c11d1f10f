"""The report's figures (PNG, matplotlib's non-interactive backend)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib as mpl

mpl.use("Agg")
import matplotlib.pyplot as plt

from bench.machine import CoreSampler


def latency_cdfs(
    path: Path,
    title: str,
    curves: Mapping[str, Sequence[float]],
    markers: Mapping[str, Mapping[str, float]] | None = None,
) -> None:
    """CDFs from 201 quantiles each (0 %, 0.5 %, … 100 %), log-scaled latency; `markers`:
    references known only by a few percentiles ({"p50": ms, "p99": ms})."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    fractions = [i / 200 for i in range(201)]
    for label, quantiles in curves.items():
        if quantiles:
            ax.plot([max(q, 0.01) for q in quantiles], fractions[: len(quantiles)], label=label)
    for label, points in (markers or {}).items():
        xs = [points[k] for k in ("p50", "p99", "p999") if k in points]
        ys = [
            {"p50": 0.5, "p99": 0.99, "p999": 0.999}[k]
            for k in ("p50", "p99", "p999")
            if k in points
        ]
        ax.plot(xs, ys, "o--", label=label)
    ax.set_xscale("log")
    ax.set_xlabel("latency (ms, log scale)")
    ax.set_ylabel("fraction received within")
    ax.set_ylim(0, 1.01)
    ax.grid(True, which="both", alpha=0.3)
    ax.axhline(0.99, color="grey", lw=0.6, ls=":")
    ax.set_title(title)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def against_load(
    path: Path,
    title: str,
    xlabel: str,
    series: Mapping[str, Sequence[tuple[float, float, float]]],
    left: str,
    right: str,
    log_x: bool = True,
) -> None:
    """Two panels sharing x: `left` (e.g. fps) and `right` (e.g. p99 ms) per series of
    (x, left value, right value) points."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for label, points in series.items():
        pts = sorted(points)
        xs = [p[0] for p in pts]
        ax1.plot(xs, [p[1] for p in pts], "o-", label=label)
        ax2.plot(xs, [p[2] for p in pts], "o-", label=label)
    for ax, ylabel in ((ax1, left), (ax2, right)):
        if log_x:
            ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
    ax2.set_yscale("log")
    ax1.set_ylim(bottom=0)
    ax1.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def cpu_per_core(path: Path, title: str, sampler: CoreSampler, start: float, end: float) -> None:
    """Busy % of each core over a scenario, with its measured steps shaded and labelled."""
    samples = [(t, b) for t, b in sampler.samples if start <= t <= end]
    if not samples:
        return
    fig, ax = plt.subplots(figsize=(10, 3.5))
    cores = len(samples[0][1])
    for core in range(cores):
        ax.plot(
            [t - start for t, _ in samples],
            [b[core] for _, b in samples],
            lw=0.8,
            label=f"core {core}",
        )
    spans = [s for s in sampler.spans if start <= s.start and s.end <= end]
    for i, span in enumerate(spans):
        ax.axvspan(span.start - start, span.end - start, alpha=0.12, color=f"C{i % 10}")
        ax.text(
            (span.start + span.end) / 2 - start,
            101,
            span.label,
            rotation=60,
            fontsize=6,
            ha="left",
            va="bottom",
        )
    ax.set_ylim(0, 100)
    ax.set_xlabel("seconds into the scenario")
    ax.set_ylabel("busy %")
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title(title, pad=60 if spans else 6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
