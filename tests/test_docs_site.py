"""The mkdocs site builds in strict mode; a broken link fails the build, naming the file."""

from __future__ import annotations

import html
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import cancelable_rx

ROOT = Path(__file__).resolve().parent.parent
pytest.importorskip("mkdocs")


def build(config: Path, site: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "-d", str(site)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=config.parent,
    )


def test_site_builds_strict(tmp_path: Path) -> None:
    result = build(ROOT / "mkdocs.yml", tmp_path / "site")
    assert result.returncode == 0, result.stdout + result.stderr
    api = (tmp_path / "site" / "api" / "index.html").read_text()
    for name in ("with_timeout", "combine", "stream", "cancel_sync", "list_operations_sync", "TimeoutCancelation"):
        assert name in api, f"API reference lacks {name}"
    text = html.unescape(re.sub(r"<[^>]+>", " ", api))
    # Every public name is documented under its public path.
    anchors = set(re.findall(r'id="(cancelable_rx\.[\w.]+)"', api))
    missing = [n for n in cancelable_rx.__all__ if n != "__version__" and f"cancelable_rx.{n}" not in anchors]
    assert not missing, f"public names not documented under cancelable_rx.<name>: {missing}"
    # No private module path, no private base class, no raw Sphinx role reaches the page.
    assert not re.findall(r"cancelable_rx\.(?:\w+\.)*_\w+", " ".join(anchors) + text), "a private path is shown"
    bases = re.findall(r"Bases:\s+([^\n]+)", text)
    assert bases and not [b for b in bases if re.search(r"(?:^|[\s.])_|Mixin|OperationState|Operation\b", b)], bases
    assert not re.findall(r":(?:class|meth|attr|func|mod|exc):", text), "raw Sphinx roles on the API page"


def test_broken_link_fails_the_build_naming_the_file(tmp_path: Path) -> None:
    project = tmp_path / "project"
    shutil.copytree(ROOT / "docs", project / "docs")
    shutil.copy(ROOT / "mkdocs.yml", project / "mkdocs.yml")
    shutil.copytree(ROOT / "cancelable_rx", project / "cancelable_rx")
    page = project / "docs" / "streams.md"
    page.write_text(page.read_text() + "\nSee [the missing page](no-such-page.md).\n")
    result = build(project / "mkdocs.yml", tmp_path / "site")
    assert result.returncode != 0
    assert "streams.md" in result.stdout + result.stderr and "no-such-page.md" in result.stdout + result.stderr
