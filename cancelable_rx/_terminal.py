"""Terminal progress bars fed by an operation's progress observable.

`terminal_progress` uses tqdm when it is installed (``pip install -e ".[progress]"`` from a
clone), otherwise a small built-in bar that rewrites one line of stderr; `rich_progress`
uses rich (the ``rich`` extra).  Both end on the exact final count.
"""

from __future__ import annotations

import shutil
import sys
from typing import Any, TextIO

from ._cancelable import Cancelable
from ._checks import check_instance, check_positive_int
from ._models import ProgressEvent

__all__ = ("RichProgress", "TerminalProgress", "rich_progress", "terminal_progress")


class _LineBar:
    """Dependency-free bar: ``[#####.....]  2500/5000 items  message``."""

    def __init__(self, total: int | None, desc: str, file: TextIO) -> None:
        self.total, self.desc, self.file, self.n = total, desc, file, 0
        self._closed = False

    def update_to(self, n: int, message: str = "") -> None:
        self.n = n
        width = max(10, min(40, shutil.get_terminal_size((80, 20)).columns - 50))
        if self.total:
            filled = int(width * min(n, self.total) / self.total)
            bar = f"[{'#' * filled}{'.' * (width - filled)}] {n}/{self.total}"
        else:
            bar = f"{n} items"
        self.file.write(f"\r{self.desc}: {bar} {message}"[:200].ljust(60))
        self.file.flush()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.file.write("\n")
            self.file.flush()


class TerminalProgress:
    """A progress bar that follows ``op.progress``; when ``op`` ends it shows the exact final
    count (the observable's final event) and closes itself (the observable completes).

    Thread-safety: updated from the thread that reports progress (the event loop).
    """

    def __init__(self, op: Cancelable, total: int | None = None, desc: str | None = None,
                 file: TextIO | None = None, use_tqdm: bool | None = None) -> None:
        check_instance(op, Cancelable, "op", "a Cancelable")
        if total is not None:
            check_positive_int(total, "total", "or None when the total is unknown")
        self.op = op
        out = file if file is not None else sys.stderr
        label = desc or op.name or "operation"
        self._bar: Any
        if use_tqdm is not False:
            try:
                from tqdm import tqdm  # noqa: PLC0415 - tqdm is optional (the progress extra)
            except ImportError:
                if use_tqdm:
                    raise
                tqdm = None
            if tqdm is not None:
                self._bar = tqdm(total=total, desc=label, file=out, unit="item", leave=True)
        if not hasattr(self, "_bar"):
            self._bar = _LineBar(total, label, out)
        self._subscription = op.progress.subscribe(self._on_progress, on_completed=self.close)

    def _on_progress(self, event: ProgressEvent) -> None:
        count = event.count
        if count is None:
            return
        bar = self._bar
        if isinstance(bar, _LineBar):
            bar.update_to(count)
        else:
            bar.update(count - bar.n)

    @property
    def count(self) -> int:
        return int(self._bar.n)

    def close(self) -> None:
        self._subscription.dispose()
        self._bar.close()

    def __enter__(self) -> TerminalProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def terminal_progress(op: Cancelable, total: int | None = None, desc: str | None = None,
                      file: TextIO | None = None) -> TerminalProgress:
    """Show a terminal progress bar for ``op`` (tqdm if installed, else a built-in one)."""
    return TerminalProgress(op, total, desc, file)


class RichProgress:
    """A `rich <https://rich.readthedocs.io>`_ progress bar that follows ``op.progress``
    (needs the ``rich`` extra).  It shows the exact final count and stops when the operation
    ends (the observable's final event, then its completion).

    Thread-safety: updated from the thread that reports progress (the event loop); rich
    renders from its own refresh thread.
    """

    def __init__(self, op: Cancelable, total: int | None = None, desc: str | None = None, console: Any = None) -> None:
        check_instance(op, Cancelable, "op", "a Cancelable")
        if total is not None:
            check_positive_int(total, "total", "or None when the total is unknown")
        try:
            from rich.progress import Progress  # noqa: PLC0415 - rich is optional (the rich extra)
        except ImportError as err:  # pragma: no cover - exercised only without the extra
            raise ImportError('rich_progress needs rich: pip install -e ".[rich]" from a clone') from err
        self.op = op
        self.progress = Progress(console=console, transient=False)
        self.task = self.progress.add_task(desc or op.name or "operation", total=total)
        self.count = 0
        self.outcome: str | None = None
        self.progress.start()
        self._subscription = op.progress.subscribe(self._on_progress, on_completed=self.close)

    def _on_progress(self, event: ProgressEvent) -> None:
        if event.count is not None:
            self.count = event.count
            self.progress.update(self.task, completed=event.count)
        if event.outcome is not None:
            self.outcome = str(event.message)
            self.progress.update(self.task, description=f"{self.progress.tasks[0].description} [{event.outcome.value}]")

    def close(self) -> None:
        self._subscription.dispose()
        self.progress.stop()

    def __enter__(self) -> RichProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def rich_progress(op: Cancelable, total: int | None = None, desc: str | None = None, console: Any = None) -> RichProgress:
    """Show a rich progress bar for ``op`` (``pip install -e ".[rich]"`` from a clone)."""
    return RichProgress(op, total, desc, console)
