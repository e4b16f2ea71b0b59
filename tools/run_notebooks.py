"""Run the notebooks in notebooks/ in a real Jupyter kernel, top to bottom.

    .venv/bin/python tools/run_notebooks.py            # run them all, report
    .venv/bin/python tools/run_notebooks.py --write    # run them and save their outputs

The committed notebooks carry their outputs (so they read well on GitHub); tests/
test_notebooks.py runs them afresh and checks what they computed.  A code cell tagged
``interrupt`` is run the way a user runs it and then presses Jupyter's Interrupt button:
the kernel gets SIGINT while the cell runs.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

os.environ.setdefault("JUPYTER_PLATFORM_DIRS", "1")  # silence jupyter_core's path-migration warning

import nbclient  # noqa: E402 - after the environment variable above
import nbformat  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
INTERRUPT_AFTER = 1.0  # seconds into a cell tagged "interrupt"


def run(path: Path, checks: str | None = None, write: bool = False, timeout: float = 120) -> Any:
    """Execute the notebook at ``path``; then, in the same kernel, run ``checks`` (code whose
    assertions test what the notebook computed).  Returns the executed notebook."""
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if "id" not in cell:
            cell["id"] = uuid.uuid4().hex[:8]
    client = nbclient.NotebookClient(
        nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    with client.setup_kernel():
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            timer = None
            if "interrupt" in cell.metadata.get("tags", []):
                # what the Interrupt button does for an ipykernel: SIGINT to the kernel process
                pid = client.km.provisioner.pid  # type: ignore[union-attr]
                timer = threading.Timer(INTERRUPT_AFTER, os.kill, (pid, signal.SIGINT))
                timer.start()
            try:
                client.execute_cell(cell, index)
            finally:
                if timer is not None:
                    timer.cancel()
        if checks:  # run in the same kernel, then taken out again: never saved
            probe = nbformat.v4.new_code_cell(checks)
            nb.cells.append(probe)
            try:
                client.execute_cell(probe, len(nb.cells) - 1)
            finally:
                nb.cells.pop()
    if write:
        nbformat.write(nb, path)
    return nb


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--write", action="store_true", help="save the outputs into the notebooks")
    args = ap.parse_args()
    for path in NOTEBOOKS:
        run(path, write=args.write)
        print(f"ran {path.name}{' (outputs saved)' if args.write else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
