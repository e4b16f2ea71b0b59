"""Every ```python block in README.md and docs/*.md runs (each in a fresh interpreter).

A block preceded by ``<!-- not-runnable: <reason> -->`` is skipped, with its reason.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"(<!--\s*not-runnable:(?P<why>[^\n]*?)-->\s*)?```python\n(?P<code>.*?)```", re.S)
FENCE = re.compile(r"(<!--\s*not-runnable:(?P<why>[^\n]*?)-->\s*)?```(?P<lang>[\w-]*)\n.*?```", re.S)


def _blocks() -> list[tuple[str, int, str, str | None]]:
    found = []
    for path in FILES:
        text = path.read_text()
        for m in BLOCK.finditer(text):
            line = text.count("\n", 0, m.start("code")) + 1
            found.append((str(path.relative_to(ROOT)), line, m.group("code"), m.group("why")))
    return found


BLOCKS = _blocks()


def test_there_are_doc_examples() -> None:
    assert len(BLOCKS) >= 8


def test_every_other_code_block_says_why_it_is_not_run() -> None:
    unmarked = []
    for path in FILES:
        text = path.read_text()
        for m in FENCE.finditer(text):
            if m.group("lang") != "python" and m.group("why") is None:
                unmarked.append(f"{path.relative_to(ROOT)}:{text.count(chr(10), 0, m.start()) + 1} ({m.group('lang') or 'no language'})")
    assert not unmarked, "code blocks that are neither run nor marked <!-- not-runnable: reason -->: " + ", ".join(unmarked)


@pytest.mark.parametrize(("path", "line", "code", "why"), BLOCKS, ids=[f"{p}:{n}" for p, n, _, _ in BLOCKS])
def test_doc_example_runs(path: str, line: int, code: str, why: str | None) -> None:
    if why is not None:
        pytest.skip(f"{path}:{line} marked not runnable:{why}")
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert result.returncode == 0, (
        f"the example at {path}:{line} failed (exit {result.returncode}):\n{result.stderr[-3000:]}"
    )
