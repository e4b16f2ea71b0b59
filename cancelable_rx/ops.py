"""Stream operators that run on asyncio and trio, with aiostream's names, signatures and
semantics.

``from cancelable_rx import ops``; then ``ops.merge(a, b)`` is an aiostream ``Stream`` and
``xs | ops.map.pipe(fetch, task_limit=4)`` pipes like any aiostream operator (they are made
with aiostream's decorators and mix freely with its trio-safe operators: ``pipe.filter``,
``pipe.take``...).  Fourteen stock aiostream operators call asyncio directly and fail on
trio; these replace them:

* creation: `iterate` (a plain or async iterable), `range`, `count`, `repeat`, `never`;
* time: `spaceout`, `delay`, `timeout` (``TimeoutError`` when one item takes too long),
  `chunks` (``n`` items, or what arrived within ``interval`` seconds);
* combination: `merge`, `zip`, `ziplatest`, `smap`, `map` / `amap` / `starmap`
  (concurrent, ``task_limit``, ``ordered``), `cycle`;
* streams of streams: `flatten`, `concat`, `switch`, `flatmap`, `concatmap`, `switchmap`.

Cancellation: no operator holds a cancel scope or a task group across ``yield``; the
concurrent ones run their producers in a task group owned by a background task, fed back
through a memory object stream, so a cancellation of the consumer (an operation's timeout
or token, an enclosing scope) reaches them at their next wait for an item and unwinding
ends every producer.  Whatever ends a stream (completion, an error, a cancellation,
``break`` then ``aclose``), every source is closed and no task is left before the ending
goes on; inside ``op.stream(...)`` the operation records the exact partial result.

Thread-safety: a stream belongs to one event loop thread.
"""

from __future__ import annotations

from .streaming._advanced import concat, concatmap, flatmap, flatten, switch, switchmap
from .streaming._concurrent import amap, map, merge, smap, starmap, zip, ziplatest
from .streaming._piping import PipeStream
from .streaming._serial import chunks, count, cycle, delay, iterate, never, range, repeat, spaceout, timeout

__all__ = (
    "PipeStream",
    "amap",
    "chunks",
    "concat",
    "concatmap",
    "count",
    "cycle",
    "delay",
    "flatmap",
    "flatten",
    "iterate",
    "map",
    "merge",
    "never",
    "range",
    "repeat",
    "smap",
    "spaceout",
    "starmap",
    "switch",
    "switchmap",
    "timeout",
    "zip",
    "ziplatest",
)

PipeStream.__module__ = __name__
