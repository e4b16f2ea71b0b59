"""One poller per event loop for every synchronous condition armed on it.

A `ConditionSource` with a synchronous predicate does not start a task per operation: it
adds an entry to its loop's `Poller` (O(1)), which keeps one list of entries per check
interval and one background task that, at each interval's tick, calls the predicates of
that list in arming order.  The ticks of all intervals are visited in the order they fall
due.  Disarming flags the entry (O(1)); dead entries are swept when they make up half a
list.  The task ends when nothing is armed, and starts again with the next arming.

Policy: a predicate runs on the loop thread and must be quick; one that raises an
``Exception`` counts as not met (its source logs it); a ``BaseException`` such as
``KeyboardInterrupt`` fails the operation that armed it (``host.fail``), never the others;
one that runs longer than its interval is reported once at WARNING.  Asynchronous
predicates do not come here: each runs in a task of its own operation, so one that blocks
stalls nobody else.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import anyio

from .._loop import LoopHandle

__all__ = ("Entry", "Poller", "poller_for")

logger = logging.getLogger("cancelable_rx")


class Entry:
    """One armed predicate: ``check()`` returns True once the source has fired (or the
    entry is done), which removes it."""

    __slots__ = ("check", "active")

    def __init__(self, check: Callable[[], bool]) -> None:
        self.check = check
        self.active = True


class _Bucket:
    __slots__ = ("interval", "entries", "dead", "due", "slow_reported")

    def __init__(self, interval: float, due: float) -> None:
        self.interval = interval
        self.entries: list[Entry] = []
        self.dead = 0
        self.due = due
        self.slow_reported = False


class Poller:
    """The condition poller of one event loop (see the module docstring).

    Thread-safety: loop thread only (conditions are armed by operations on their loop).
    """

    __slots__ = ("_handle", "_buckets", "_running", "_wake")

    def __init__(self, handle: LoopHandle) -> None:
        self._handle = handle
        self._buckets: dict[float, _Bucket] = {}
        self._running = False
        self._wake: anyio.Event | None = None

    def add(self, interval: float, entry: Entry) -> None:
        bucket = self._buckets.get(interval)
        if bucket is None:
            bucket = self._buckets[interval] = _Bucket(interval, self._handle.now() + interval)
            wake = self._wake
            if wake is not None:  # a new interval may fall due before the one slept on
                wake.set()
        bucket.entries.append(entry)
        if not self._running:
            self._running = True
            self._handle.spawn(self._run)

    def discard(self, interval: float, entry: Entry) -> None:
        """Disarm ``entry`` (O(1); idempotent)."""
        if entry.active:
            entry.active = False
            bucket = self._buckets.get(interval)
            if bucket is not None:
                bucket.dead += 1

    async def _run(self) -> None:
        now = self._handle.now
        try:
            while self._buckets:
                bucket = min(self._buckets.values(), key=_due)
                delay = bucket.due - now()
                if delay > 0:
                    wake = self._wake = anyio.Event()
                    with anyio.move_on_after(delay):
                        await wake.wait()
                    self._wake = None
                    continue  # re-pick: an earlier tick may have been added meanwhile
                self._tick(bucket, now)
        finally:
            self._running = False
            self._wake = None

    def _tick(self, bucket: _Bucket, now: Callable[[], float]) -> None:
        started = now()
        entries = bucket.entries
        for entry in entries:
            if entry.active and entry.check():
                entry.active = False
                bucket.dead += 1
        took = now() - started
        if took > bucket.interval and not bucket.slow_reported:
            bucket.slow_reported = True
            logger.warning(
                "cancelable_rx: conditions checked every %gs took %.3fs to evaluate: keep conditions quick, "
                "or make a slow one async (it then runs in a task of its own)", bucket.interval, took,
            )
        if bucket.dead * 2 >= len(entries):
            entries[:] = [e for e in entries if e.active]
            bucket.dead = 0
        if not entries:
            del self._buckets[bucket.interval]
            return
        # the next tick: one interval later (never behind now: a stalled loop skips ticks)
        bucket.due = max(bucket.due + bucket.interval, now())


def _due(bucket: _Bucket) -> float:
    return bucket.due


def poller_for(handle: LoopHandle) -> Poller:
    """The poller of ``handle``'s loop (made on first use)."""
    poller: Any = handle.poller
    if poller is None:
        poller = handle.poller = Poller(handle)
    return poller
