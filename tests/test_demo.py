"""The README demo, run as a real subprocess: outcomes, exit codes, Ctrl-C, --help."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DEMO = [sys.executable, "-m", "cancelable_rx"]


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*DEMO, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def test_default_run_stops_on_the_quality_condition() -> None:
    result = run()
    assert result.returncode == 0, result.stderr
    assert "stopped: ConditionCancelation (reason=condition)" in result.stdout
    assert "partial result:" in result.stdout and "of 3000 records read" in result.stdout
    assert "batches" in result.stderr  # the live progress bar


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_timeout_and_fail_on_cancel(backend: str) -> None:
    result = run("--max-bad", "100000", "--timeout", "0.3", "--backend", backend, "--no-progress", "--fail-on-cancel")
    assert result.returncode == 124, result.stdout + result.stderr
    assert "TimeoutCancelation (reason=timeout)" in result.stdout


def test_completes() -> None:
    result = run("--items", "200", "--max-bad", "1000", "--no-progress")
    assert result.returncode == 0
    assert result.stdout.startswith("completed: 200 records read")


def _start_and_wait_for_progress(backend: str, *extra: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [*DEMO, "--items", "1000000", "--max-bad", "1000000", "--rate", "1000", "--backend", backend, *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert proc.stderr is not None
    deadline = time.monotonic() + 30
    seen = ""
    # Progress with a non-zero count: a batch was delivered and is being stored.
    while not re.search(r"\b[1-9]\d*/\d+", seen) and time.monotonic() < deadline:
        seen += os.read(proc.stderr.fileno(), 256).decode(errors="replace")
    return proc


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_first_signal_finishes_the_batch_in_hand_and_stops_cleanly(sig: int, backend: str) -> None:
    proc = _start_and_wait_for_progress(backend, "--store-delay", "0.3")
    proc.send_signal(sig)  # while a batch is being stored
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert "stopped gracefully" in out and f"Received signal {signal.Signals(sig).name}" in out
    read = int(re.search(r"partial result: (\d+) of", out).group(1))  # type: ignore[union-attr]
    assert read > 0 and read % 10 == 0  # whole batches of 10: the batch in hand was finished


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_second_signal_stops_at_once(sig: int, code: int, backend: str) -> None:
    proc = _start_and_wait_for_progress(backend, "--store-delay", "3", "--grace", "60")
    proc.send_signal(sig)  # the batch in hand takes 3 s to store...
    time.sleep(0.3)
    start = time.monotonic()
    proc.send_signal(sig)  # ...the second signal does not wait for it
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == code, out
    assert time.monotonic() - start < 2.5 and "stopped at once" in out
def test_help_and_bad_arguments() -> None:
    result = run("--help")
    assert result.returncode == 0
    for option in ("--items", "--timeout", "--max-bad", "--backend", "--fail-on-cancel", "exit status"):
        assert option in result.stdout
    bad = run("--items", "0")
    assert bad.returncode == 2 and "--items must be > 0, got 0" in bad.stderr


def test_the_readme_demo_command_installs_what_backend_trio_needs() -> None:
    import tomllib

    readme = (ROOT / "README.md").read_text()
    line = next(ln for ln in readme.splitlines() if "-m cancelable_rx" in ln and "pip install" in ln)
    extras = re.search(r'-e "\.\[([\w,-]+)\]"', line)
    assert extras is not None, line
    optional = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    wanted = {dep.split(">")[0].split("=")[0] for extra in extras.group(1).split(",") for dep in optional[extra]}
    assert "trio" in wanted and "tqdm" in wanted  # --backend trio and the progress bar work after it
