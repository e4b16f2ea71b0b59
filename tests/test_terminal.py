"""Terminal progress bars (``_terminal.py``): the built-in line bar, tqdm and rich all end on
the exact final count and close when the operation ends; on asyncio and trio."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator

import anyio
import pytest
from rich.console import Console

from cancelable_rx import Cancelable, TimeoutCancelation, rich_progress, terminal_progress
from cancelable_rx._terminal import TerminalProgress

pytestmark = pytest.mark.anyio


async def rows(n: int, delay: float = 0.0) -> AsyncIterator[int]:
    for i in range(n):
        if delay:
            await anyio.sleep(delay)
        yield i


@pytest.mark.parametrize("use_tqdm", [False, True], ids=["line", "tqdm"])
async def test_the_terminal_bar_ends_on_the_exact_count(use_tqdm: bool) -> None:
    out = io.StringIO()
    op = Cancelable(name="rows")
    bar = TerminalProgress(op, total=2040, file=out, use_tqdm=use_tqdm)
    async with op:
        async for _ in op.stream(rows(2040), report_interval=25):
            pass
    assert bar.count == 2040  # not 2025, the last multiple of the report interval
    text = out.getvalue()
    assert "2040/2040" in text
    assert not op.progress.has_subscribers  # the bar unsubscribed when the observable completed


async def test_the_terminal_bar_closes_on_a_cancel_too() -> None:
    out = io.StringIO()
    op = Cancelable.with_timeout(0.05, name="slow")
    bar = terminal_progress(op, file=out)
    with pytest.raises(TimeoutCancelation):
        async with op:
            async for _ in op.stream(rows(10_000, 0.001), report_interval=5):
                pass
    assert 0 < bar.count == op.partial_result.count
    assert not op.progress.has_subscribers


async def test_rich_progress_ends_on_the_exact_count() -> None:
    out = io.StringIO()
    op = Cancelable(name="rich rows")
    bar = rich_progress(op, total=2040, console=Console(file=out, force_terminal=True, width=100))
    async with op:
        async for _ in op.stream(rows(2040), report_interval=25):
            pass
    assert bar.count == 2040 and bar.outcome == "completed"
    assert bar.progress.tasks[0].completed == 2040 and bar.progress.finished
    assert not op.progress.has_subscribers
