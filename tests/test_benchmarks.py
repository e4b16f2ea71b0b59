"""The performance page, the README's speed claim and the charts are generated from the
committed benchmark results by ``benchmarks/charts.py``: they must be what it makes of them
(so a figure cannot be edited by hand, and a new run cannot be half-committed)."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHARTS = ROOT / "benchmarks" / "charts.py"


def test_committed_charts_tables_and_claims_match_the_results() -> None:
    done = subprocess.run([sys.executable, str(CHARTS), "--check"], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_result_names_its_machine_and_has_rows_for_both_backends() -> None:
    results = sorted((ROOT / "benchmarks" / "results").glob("*.json"))
    assert {p.stem for p in results} >= {"core", "streams", "registry", "vs_hother"}
    for path in results:
        data = json.loads(path.read_text())
        assert data["machine"]["python"] and data["machine"]["versions"]["anyio"] != "-"
        backends = {row["backend"] for row in data["rows"]}
        assert {"asyncio", "trio"} <= backends, path.name
        for row in data["rows"]:  # the verdict recorded is the one the figures give
            if row["kind"] == "ratio":
                assert abs(row["value"] - row["ours"] / row["baseline"]) < 1e-9
            assert row["ok"] == (row["value"] <= row["target"])


def test_the_charts_are_well_formed_svg_with_a_bar_per_ratio_row() -> None:
    for svg in (ROOT / "docs" / "images").glob("perf-*.svg"):
        root = ET.fromstring(svg.read_text())
        bench = svg.stem.removeprefix("perf-")
        data = json.loads((ROOT / "benchmarks" / "results" / f"{bench}.json").read_text())
        ratio_rows = [r for r in data["rows"] if r["kind"] == "ratio"]
        bars = [e for e in root.iter("{http://www.w3.org/2000/svg}rect") if e.get("height") not in (None, "12")]
        hother_bars = sum(1 for r in ratio_rows if "hother" in r["extra"])
        # one bar per ratio row (and one per hother figure), plus the white background
        assert len(bars) == len(ratio_rows) + hother_bars + 1, svg.name
