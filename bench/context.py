"""What a scenario gets (the run's broker, folders, scale and CPU sampler) and what it
returns (a report section: tables, figures, notes, and where it stands on its target)."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from rts_devstack.broker import LocalKafka

from bench.machine import CoreSampler, load_average

T = TypeVar("T")


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)

    def add(self, *cells: Any) -> None:
        self.rows.append([str(c) for c in cells])


@dataclass
class Standing:
    """One row of the summary: a figure, its reference, and its target."""

    scenario: str
    measure: str
    value: str
    reference: str
    ratio: str
    target: str
    verdict: str  # "met", "not met", or "reported" where the target is only to report


@dataclass
class Section:
    key: str
    title: str
    description: str
    tables: list[Table] = field(default_factory=list)
    figures: list[tuple[str, str]] = field(default_factory=list)  # (file name, caption)
    notes: list[str] = field(default_factory=list)
    standings: list[Standing] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    error: str = ""

    def table(self, title: str, *columns: str) -> Table:
        table = Table(title, list(columns))
        self.tables.append(table)
        return table

    def stand(
        self, measure: str, value: str, reference: str, ratio: str, target: str, verdict: str
    ) -> None:
        self.standings.append(
            Standing(self.title, measure, value, reference, ratio, target, verdict)
        )


@dataclass
class Bench:
    quick: bool
    out: Path
    kafka: LocalKafka
    cores: CoreSampler
    profile: bool = False

    @property
    def logs(self) -> Path:
        path = self.out / "logs"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def pick(self, quick: T, full: T) -> T:
        return quick if self.quick else full

    @contextlib.contextmanager
    def span(self, label: str) -> Iterator[dict[str, Any]]:
        """Measure a step: yields a dict that gets the machine's busy % per core and the
        load average over the step."""
        start = self.cores.now()
        info: dict[str, Any] = {}
        yield info
        span = self.cores.span(label, start)
        info["cores_busy"] = self.cores.busy(span.start, span.end)
        info["load_average"] = load_average()


def ms(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if value >= 100:
        return f"{value:,.0f} ms"
    return f"{value:.1f} ms"


def pct(value: float | None, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{100 * value:.{digits}f} %"


def ratio(value: float, reference: float) -> float:
    return value / reference if reference else math.nan


def times(value: float) -> str:
    if math.isnan(value) or math.isinf(value):
        return "-"
    return f"{value:.2f}x" if value < 10 else f"{value:.0f}x"


def verdict(ok: bool) -> str:
    return "met" if ok else "not met"


def saturated(busy: list[float]) -> bool:
    """The machine had no core to spare during a step."""
    return bool(busy) and sum(busy) / len(busy) >= 90
