"""A user's typed program: mypy --strict must accept it as it is (tests/test_typecheck.py).

The item type flows through ``op.stream(...)``, ``cancelable_stream(...)`` and the partial
results without a cast.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import anyio

from cancelable_rx import (
    Cancelable,
    CancelableStream,
    CancelationError,
    CancelationToken,
    PartialResult,
    TimeoutCancelation,
    cancelable_stream,
)


@dataclass
class Row:
    id: int
    value: float


async def rows(n: int) -> AsyncIterator[Row]:
    for i in range(n):
        await anyio.sleep(0)
        yield Row(i, i / 2)


async def total(n: int) -> tuple[float, PartialResult[Row]]:
    op: Cancelable = Cancelable.with_timeout(5).combine(Cancelable.with_token(CancelationToken()))
    stream: CancelableStream[Row] = op.stream(rows(n), report_interval=10)
    s = 0.0
    try:
        async with op:
            async for row in stream:
                s += row.value  # `row` is a Row
    except CancelationError as err:
        print(err.reason.value)
    partial: PartialResult[Row] = stream.partial_result
    last: list[Row] = partial.buffer or []
    return s + sum(r.value for r in last[:0]), partial


async def standalone() -> int:
    count = 0
    try:
        async for row in cancelable_stream(rows(5), timeout=1.0):
            count += row.id
    except TimeoutCancelation as err:
        print(err.timeout_seconds)
    return count


async def main() -> None:
    value, partial = await total(20)
    assert partial.count == 20 and value > 0
    assert await standalone() == 10


if __name__ == "__main__":
    anyio.run(main)
