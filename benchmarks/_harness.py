"""What every benchmark script shares: interleaved rounds, the table, the JSON result.

A *case* compares our code with a baseline in the same run: its two functions are timed
in alternating rounds (ours, baseline, ours, ...), so machine noise hits both sides, and
the medians of the rounds are compared.  A row has one of three kinds:

* ``ratio``: ours / baseline, target is the highest acceptable ratio;
* ``delta``: ours - baseline in seconds, target is the highest acceptable difference;
* ``absolute``: ours alone in seconds (no baseline), target is the highest acceptable value.

``--json PATH`` writes the rows with the machine and versions they were measured on;
``benchmarks/charts.py`` turns such files into the performance page's charts and tables.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from typing import Any

Loop = Callable[[int], Awaitable[float]]


@dataclass
class Row:
    bench: str
    backend: str
    case: str
    ours: float  # seconds (per operation / item / sample)
    baseline: float | None
    target: float
    kind: str = "ratio"  # ratio | delta | absolute
    baseline_label: str = ""
    unit: str = "s"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def value(self) -> float:
        if self.kind == "ratio":
            assert self.baseline is not None
            return self.ours / self.baseline
        if self.kind == "delta":
            assert self.baseline is not None
            return self.ours - self.baseline
        return self.ours

    @property
    def ok(self) -> bool:
        return self.value <= self.target


async def compare(ours: Loop, base: Loop, n: int, rounds: int, warmup: bool = True) -> tuple[float, float]:
    """Medians over ``rounds`` of ``ours(n) / n`` and ``base(n) / n``, interleaved."""
    if warmup:
        await ours(max(1, n // 4))
        await base(max(1, n // 4))
    a, b = [], []
    for _ in range(rounds):
        a.append(await ours(n) / n)
        b.append(await base(n) / n)
    return statistics.median(a), statistics.median(b)


def fmt_time(seconds: float) -> str:
    if abs(seconds) >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    if abs(seconds) >= 1e-6:
        return f"{seconds * 1e6:.2f} µs"
    return f"{seconds * 1e9:.0f} ns"


def format_row(row: Row) -> str:
    verdict = "ok" if row.ok else "MISSED"
    base = fmt_time(row.baseline) if row.baseline is not None else "–"
    ours = fmt_time(row.ours) if row.unit == "s" else f"{row.ours:.3g} {row.unit}"
    if row.kind == "ratio":
        if row.unit != "s" and row.baseline is not None:
            base = f"{row.baseline:.3g} {row.unit}"
        return f"| {row.case} | {ours} | {base} | {row.value:.2f}x | <= {row.target}x {verdict} |"
    if row.kind == "delta":
        return f"| {row.case} | {ours} | {base} | +{fmt_time(row.value)} | <= +{fmt_time(row.target)} {verdict} |"
    return f"| {row.case} | {ours} | – | – | <= {fmt_time(row.target)} {verdict} |"


def print_table(backend: str, rows: list[Row], note: str = "") -> None:
    print(f"\n## {backend}{note}\n")
    print("| case | cancelable_rx | baseline | ratio / added | target |\n|---|---:|---:|---:|---:|")
    for row in rows:
        print(format_row(row))


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "-"


def machine() -> dict[str, Any]:
    """The machine and versions a result was measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = float("nan")
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "load_average_1min": round(load, 2),
        "versions": {d: _version(d) for d in ("cancelable-rx", "anyio", "trio", "aiostream", "reactivex", "pydantic")},
    }


def arguments(description: str) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--quick", action="store_true", help="fewer rounds")
    ap.add_argument("--json", metavar="PATH", help="also write the rows (and the machine) as JSON to PATH")
    return ap.parse_args()


def finish(rows: list[Row], json_path: str | None, bench: str) -> int:
    """Write the JSON result if asked; exit status 1 if a target was missed."""
    if json_path:
        payload = {"bench": bench, "machine": machine(), "rows": [asdict(r) | {"value": r.value, "ok": r.ok} for r in rows]}
        with open(json_path, "w") as f:
            json.dump(payload, f, indent=1)
        print(f"\nwrote {json_path}")
    missed = [r for r in rows if not r.ok]
    for r in missed:
        print(f"MISSED: {r.backend}: {r.case}")
    return 1 if missed else 0
