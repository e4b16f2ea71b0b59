"""Every notebook in notebooks/ runs top to bottom in a real Jupyter kernel, and what it
computed is checked here (the notebooks themselves carry no assertions).  The committed
notebooks carry their outputs; ``tools/run_notebooks.py --write`` refreshes them."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

os.environ.setdefault("JUPYTER_PLATFORM_DIRS", "1")  # silence jupyter_core's path-migration warning

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
_spec = importlib.util.spec_from_file_location("run_notebooks", ROOT / "tools" / "run_notebooks.py")
assert _spec is not None and _spec.loader is not None
runner = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(runner)

# What each notebook must have computed, checked in its own kernel after it ran.
CHECKS = {
    "01-composing-cancel-conditions.ipynb": """
assert op.context.status.value == 'cancelled' and op.cancel_reason is CancelationReason.CONDITION
assert op2.cancel_reason is CancelationReason.TIMEOUT
assert elapsed >= 0.15 and op3.cancel_reason is CancelationReason.CONDITION
assert seen == ['timeout: Operation timed out after 0.02s']
""",
    "02-cancelable-data-pipeline.ipynb": """
assert not partial.completed and partial.count > 0
assert events and events[-1].final and events[-1].count == partial.count
assert ids == [91, 92, 93, 94]
assert 0 < trio_count < 100_000 and trio_total > 0
from cancelable_rx import CancelationReason
assert op4.cancel_reason is CancelationReason.SIGNAL and 'SIGINT' in op4.cancel_message
assert 0 < op4.partial_result.count < 10_000_000 and not op4.partial_result.completed
""",
    "03-watching-operations.ipynb": """
assert [op.status.value for op in ops] == ['completed', 'completed', 'cancelled']
assert table['worker-2'] == ('cancelled', 'manual')
""",
    "04-progress-widgets.ipynb": """
assert w.bar.value == 300 and w.status.value == 'completed'
assert op2.cancel_reason is CancelationReason.MANUAL and 0 < op2.partial_result.count < 100_000
assert w2.button.disabled and w2.status.value.startswith('cancelled (manual)')
assert w2.bar.value == op2.partial_result.count
assert op4.status.value == 'completed' and op4.context.stopped_gracefully is True
assert 0 < op4.partial_result.count < 100_000 and w4.status.value == 'completed'
assert w4.stop_button.disabled and w4.bar.value == op4.partial_result.count
assert bar.count == 50 and '50/50' in out.getvalue()
""",
}


def test_there_are_notebooks_and_checks() -> None:
    assert len(NOTEBOOKS) >= 4 and {p.name for p in NOTEBOOKS} == set(CHECKS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_committed_notebooks_carry_their_outputs_and_no_assertions(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in code), f"{path.name}: run tools/run_notebooks.py --write"
    assert all("assert " not in c.source for c in code), f"{path.name}: checks belong in tests/test_notebooks.py"


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # jupyter_client / zmq internals
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs_and_computes_what_it_shows(path: Path) -> None:
    try:
        runner.run(path, checks=CHECKS[path.name])
    except nbclient.exceptions.CellExecutionError as err:
        pytest.fail(f"notebook {path.name} failed:\n{str(err)[-3000:]}")
