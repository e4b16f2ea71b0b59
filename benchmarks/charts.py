"""Charts and tables of the performance page, from the benchmarks' JSON results.

Run (after the benchmarks wrote their results, see benchmarks/README.md):

    .venv/bin/python benchmarks/charts.py            # write the charts and the figures
    .venv/bin/python benchmarks/charts.py --check    # exit 1 if a committed file is stale

It reads ``benchmarks/results/*.json`` and writes

* ``docs/images/perf-<bench>.svg``: one horizontal bar chart per benchmark (ratios against
  the baseline, asyncio and trio side by side, the target as a mark);
* the block between ``<!-- figures:<bench> -->`` and ``<!-- /figures:<bench> -->`` in
  ``docs/performance.md``: the table of every row and the machine it was measured on;
* the block between ``<!-- speed -->`` and ``<!-- /speed -->`` in ``README.md`` and in
  ``docs/performance.md``: the speed claim, from the same run.

Pure standard library: the SVG is written by hand, so the charts are reproducible
byte for byte from the JSON.
"""

from __future__ import annotations

import argparse
import html
import json
import math
import re
import sys
from pathlib import Path
from typing import Any

from _harness import fmt_time

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
IMAGES = ROOT / "docs" / "images"
PAGE = ROOT / "docs" / "performance.md"
README = ROOT / "README.md"
COLORS = {"asyncio": "#3b6ea8", "trio": "#d08c2c", "hother asyncio": "#9aa9bd", "hother trio": "#e3c79d"}
TITLES = {
    "core": "Core overheads: cancelable_rx / raw anyio (lower is better)",
    "streams": "Streams: cost per item / plain async for (lower is better)",
    "registry": "Registry",
    "ops": "ops operators / aiostream on asyncio (lower is better)",
    "vs_hother": "cancelable_rx and hother-cancelable / raw anyio (lower is better)",
}


def load() -> dict[str, dict[str, Any]]:
    results = {}
    for path in sorted(RESULTS.glob("*.json")):
        data = json.loads(path.read_text())
        results[data["bench"]] = data
    return results


def _fmt_value(row: dict[str, Any], value: float) -> str:
    unit = row.get("unit", "s")
    return fmt_time(value) if unit == "s" else f"{value:.3g} {unit}"


# -- SVG -----------------------------------------------------------------------------


def chart(bench: str, data: dict[str, Any]) -> str | None:
    """A horizontal bar chart of the ratio rows of ``data`` (None if it has none)."""
    rows = [r for r in data["rows"] if r["kind"] == "ratio"]
    if not rows:
        return None
    cases: list[str] = []
    for r in rows:
        if r["case"] not in cases:
            cases.append(r["case"])
    series: list[tuple[str, dict[str, float], dict[str, float]]] = []  # label, values, targets
    for backend in ("asyncio", "trio"):
        values = {r["case"]: r["value"] for r in rows if r["backend"] == backend}
        targets = {r["case"]: r["target"] for r in rows if r["backend"] == backend and math.isfinite(r["target"])}
        if values:
            series.append((backend, values, targets))
        hother = {r["case"]: r["extra"]["hother"] / r["baseline"] for r in rows if r["backend"] == backend and "hother" in r["extra"]}
        if hother:
            series.append((f"hother {backend}", hother, {}))
    top = max(max(v.values()) for _, v, _ in series)
    top = max(top, max((t for _, _, ts in series for t in ts.values()), default=0))
    scale_max = max(1.5, math.ceil(top * 1.1 * 2) / 2)
    label_w, plot_w, bar_h, gap = 330, 420, 12, 10
    group_h = len(series) * bar_h + gap
    height = 60 + len(cases) * group_h + 40
    width = label_w + plot_w + 80
    x = lambda v: label_w + plot_w * min(v, scale_max) / scale_max  # noqa: E731
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="10" y="20" font-size="14" font-weight="bold">{html.escape(TITLES.get(bench, bench))}</text>',
    ]
    # legend
    lx = 10
    for label, _, _ in series:
        out.append(f'<rect x="{lx}" y="30" width="12" height="12" fill="{COLORS.get(label, "#888")}"/>')
        out.append(f'<text x="{lx + 16}" y="40">{html.escape(label)}</text>')
        lx += 24 + 7 * len(label)
    out.append(f'<text x="{lx + 10}" y="40">| target</text>')
    y0 = 55
    # grid: 1x and every 0.5
    step = 0.5 if scale_max <= 4 else 1.0 if scale_max <= 10 else 5.0
    tick = 0.0
    while tick <= scale_max + 1e-9:
        gx = x(tick)
        color = "#555" if tick == 1.0 else "#ddd"
        out.append(f'<line x1="{gx:.1f}" y1="{y0}" x2="{gx:.1f}" y2="{height - 30}" stroke="{color}"/>')
        out.append(f'<text x="{gx:.1f}" y="{height - 15}" text-anchor="middle">{tick:g}x</text>')
        tick += step
    for i, case in enumerate(cases):
        gy = y0 + i * group_h
        out.append(f'<text x="{label_w - 8}" y="{gy + group_h / 2:.1f}" text-anchor="end">{html.escape(case)}</text>')
        for j, (label, values, targets) in enumerate(series):
            if case not in values:
                continue
            v = values[case]
            by = gy + j * bar_h
            out.append(
                f'<rect x="{label_w}" y="{by}" width="{x(v) - label_w:.1f}" height="{bar_h - 2}" fill="{COLORS.get(label, "#888")}"/>'
            )
            out.append(f'<text x="{x(v) + 4:.1f}" y="{by + bar_h - 3}" font-size="10">{v:.2f}x</text>')
            if case in targets:
                tx = x(targets[case])
                out.append(f'<line x1="{tx:.1f}" y1="{by - 1}" x2="{tx:.1f}" y2="{by + bar_h - 1}" stroke="black" stroke-width="2"/>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


# -- Markdown ------------------------------------------------------------------------


def machine_line(data: dict[str, Any]) -> str:
    m = data["machine"]
    v = m["versions"]
    return (
        f"Measured {m['date']} on {m['cpu']} ({m['cores']} cores, load {m['load_average_1min']}), "
        f"{m['platform']}, Python {m['python']}, anyio {v['anyio']}, trio {v['trio']}, aiostream {v['aiostream']}."
    )


def table(bench: str, data: dict[str, Any]) -> str:
    lines = []
    if (IMAGES / f"perf-{bench}.svg").exists() or chart(bench, data) is not None:
        lines.append(f"![{TITLES.get(bench, bench)}](images/perf-{bench}.svg)\n")
    lines.append(machine_line(data) + "\n")
    hother = any("hother" in r["extra"] for r in data["rows"])
    if hother:
        lines.append("| backend | case | cancelable_rx | hother-cancelable | raw anyio | ours / raw | hother / raw | hother / ours |")
        lines.append("|---|---|---:|---:|---:|---:|---:|---:|")
        for r in data["rows"]:
            h = r["extra"]["hother"]
            lines.append(
                f"| {r['backend']} | {r['case']} | {fmt_time(r['ours'])} | {fmt_time(h)} | {fmt_time(r['baseline'])} "
                f"| {r['value']:.2f}x | {h / r['baseline']:.2f}x | {h / r['ours']:.1f}x |"
            )
        return "\n".join(lines) + "\n"
    lines.append("| backend | case | cancelable_rx | baseline | ratio / added | target |")
    lines.append("|---|---|---:|---:|---:|---:|")
    for r in data["rows"]:
        verdict = "met" if r["ok"] else "**missed**"
        base = _fmt_value(r, r["baseline"]) if r["baseline"] is not None else "–"
        if r["baseline_label"]:
            base += f" ({r['baseline_label']})"
        if not math.isfinite(r["target"]):  # a row shown for reference (the floor): no target
            value = f"{r['value']:.2f}x" if r["kind"] == "ratio" else f"+{fmt_time(r['value'])}"
            target = "(reference)"
        elif r["kind"] == "ratio":
            value, target = f"{r['value']:.2f}x", f"≤ {r['target']}x {verdict}"
        elif r["kind"] == "delta":
            value, target = f"+{fmt_time(r['value'])}", f"≤ +{fmt_time(r['target'])} {verdict}"
        else:
            value, target = "–", f"≤ {_fmt_value(r, r['target'])} {verdict}"
        lines.append(f"| {r['backend']} | {r['case']} | {_fmt_value(r, r['ours'])} | {base} | {value} | {target} |")
    return "\n".join(lines) + "\n"


def _row(data: dict[str, Any], backend: str, case: str) -> dict[str, Any] | None:
    for r in data["rows"]:
        if r["backend"] == backend and r["case"] == case:
            return r
    return None


def speed_claim(results: dict[str, dict[str, Any]]) -> str:
    """The README's and the performance page's speed sentence, from the results."""
    core = results.get("core")
    if core is None:
        return "No benchmark results yet: run the benchmarks (benchmarks/README.md).\n"
    parts = []
    for case, what in (
        ("bare Cancelable()", "entering and leaving an operation costs"),
        ("with_timeout(30)", "one with a timeout"),
        ("with_condition(f, 0.01)", "one with a polled condition"),
    ):
        a, t = _row(core, "asyncio", case), _row(core, "trio", case)
        if a and t:
            parts.append(f"{what} {a['value']:.2f}x / {t['value']:.2f}x {a['baseline_label']}")
    text = "On asyncio / trio, " + ", ".join(parts) + " (raw anyio)"
    vs = results.get("vs_hother")
    if vs is not None:
        speedups = [r["extra"]["hother"] / r["ours"] for r in vs["rows"]]
        text += f"; the same operations run {min(speedups):.1f}–{max(speedups):.0f}x faster than in hother-cancelable 0.11.3"
    missed = [r for d in results.values() for r in d["rows"] if not r.get("ok", True)]
    text += (
        f" (measured {core['machine']['date']}; every figure, and the {len(missed)} targets still missed, "
        "on the performance page).\n"
    )
    return text


def replace_block(text: str, tag: str, body: str) -> str:
    start, end = f"<!-- {tag} -->", f"<!-- /{tag} -->"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if not pattern.search(text):
        raise SystemExit(f"marker {start} ... {end} not found")
    return pattern.sub(lambda _: f"{start}\n{body}{end}", text)


def render(results: dict[str, dict[str, Any]]) -> dict[Path, str]:
    """Every file this script writes, with its content."""
    files: dict[Path, str] = {}
    page = PAGE.read_text()
    for bench, data in results.items():
        svg = chart(bench, data)
        if svg is not None:
            files[IMAGES / f"perf-{bench}.svg"] = svg
        if f"<!-- figures:{bench} -->" in page:
            page = replace_block(page, f"figures:{bench}", table(bench, data))
    claim = speed_claim(results)
    files[PAGE] = replace_block(page, "speed", claim)
    files[README] = replace_block(README.read_text(), "speed", claim)
    return files


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only check the committed files are up to date")
    args = ap.parse_args()
    files = render(load())
    stale = [p for p, content in files.items() if not p.exists() or p.read_text() != content]
    if args.check:
        for p in stale:
            print(f"stale: {p.relative_to(ROOT)} (run benchmarks/charts.py)")
        return 1 if stale else 0
    IMAGES.mkdir(parents=True, exist_ok=True)
    for p in stale:
        p.write_text(files[p])
        print(f"wrote {p.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
