"""The Redis demo, run as a real process (it starts its own redis-server and a worker process)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DEMO = [sys.executable, "-W", "error", "-m", "cancelable_rx.integrations.redis.demo"]


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_the_demo_stops_a_job_in_another_process(backend: str) -> None:
    result = subprocess.run([*DEMO, "--backend", backend, "--cancel-after", "0.3"], capture_output=True, text=True,
                            timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "cluster:  'export job-" in out and " running on " in out
    assert "worker:   stopped: ManualCancelation (reason=manual): stopped by the producer (cancelled by pid" in out
    assert "partial result: " in out and " of 100000 records, the last [" in out
    assert "history:  'export job-" in out and "cancelled (manual: stopped by the producer)" in out


def test_help_and_bad_options() -> None:
    result = subprocess.run([*DEMO, "--help"], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 0 and "--cancel-after" in result.stdout
    result = subprocess.run([*DEMO, "--items", "0"], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 2 and "--items and --budget must be > 0" in result.stderr
