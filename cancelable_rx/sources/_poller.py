"""One poller per event loop for every synchronous condition armed on it.

A `ConditionSource` with a synchronous predicate does not start a task per operation: it
adds an entry to its loop's `Poller` (O(1)), which keeps one list of entries per check
interval and one background task that, at each interval's tick, calls the predicates of
that list in arming order.  The ticks of all intervals are visited in the order they fall
due.  Disarming flags the entry (O(1)); dead entries are swept when they make up half a
list.  The task ends when nothing has been armed for `LINGER` seconds (one more tick of a
longer interval), and starts again with the next arming.

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
    """One armed predicate.  Subclasses define what a tick does with its result:

    * ``condition()``: called at each tick of the entry's interval, on the loop thread;
    * ``hit(result) -> bool``: called with a truthy result; True if the entry is done;
    * ``failed(exc) -> bool``: called when ``condition`` (or ``hit``) raised; True if the
      entry is done.

    The poller calls ``condition`` directly, so a tick costs one call per armed predicate
    (plus an attribute check) and nothing per predicate that is not met.
    """

    __slots__ = ("condition", "active")

    def __init__(self, condition: Callable[[], object]) -> None:
        self.condition = condition
        self.active = True

    def hit(self, result: object) -> bool:
        raise NotImplementedError

    def failed(self, exc: BaseException) -> bool:
        raise NotImplementedError


LINGER = 1.0
"""Seconds an interval with no armed entry keeps ticking before the poller forgets it (so
operations armed one after another do not start a task each); at most one more tick when
the interval is longer."""


class _Bucket:
    __slots__ = ("interval", "entries", "dead", "due", "slow_reported", "empty_since")

    def __init__(self, interval: float, due: float) -> None:
        self.interval = interval
        self.entries: list[Entry] = []
        self.dead = 0
        self.due = due
        self.slow_reported = False
        self.empty_since: float | None = None


class Poller:
    """The condition poller of one event loop (see the module docstring).

    Thread-safety: loop thread only (conditions are armed by operations on their loop).
    """

    __slots__ = ("_handle", "_buckets", "_running", "_wake", "_ticking")

    def __init__(self, handle: LoopHandle) -> None:
        self._handle = handle
        self._buckets: dict[float, _Bucket] = {}
        self._running = False
        self._wake: anyio.Event | None = None
        self._ticking: _Bucket | None = None

    def add(self, interval: float, entry: Entry) -> None:
        bucket = self._buckets.get(interval)
        if bucket is None:
            bucket = self._buckets[interval] = _Bucket(interval, self._handle.now() + interval)
            wake = self._wake
            if wake is not None:  # a new interval may fall due before the one slept on
                wake.set()
        bucket.entries.append(entry)
        bucket.empty_since = None
        if not self._running:
            self._running = True
            self._handle.spawn(self._run)

    def discard(self, interval: float, entry: Entry) -> None:
        """Disarm ``entry`` (O(1) amortized; idempotent)."""
        if entry.active:
            entry.active = False
            bucket = self._buckets.get(interval)
            if bucket is not None:
                bucket.dead += 1
                # operations that never let the loop tick must not grow the list
                if bucket.dead > 64 and bucket.dead * 2 >= len(bucket.entries) and self._ticking is not bucket:
                    _sweep(bucket)

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
                self._ticking = bucket
                try:
                    self._tick(bucket, now)
                finally:
                    self._ticking = None
        finally:
            self._running = False
            self._wake = None

    def _tick(self, bucket: _Bucket, now: Callable[[], float]) -> None:
        started = now()
        entries = bucket.entries
        count = len(entries)  # entries added by a check are checked at the next tick
        i = 0
        while i < count:
            try:
                while i < count:
                    entry = entries[i]
                    i += 1
                    if entry.active:
                        result = entry.condition()
                        if result and entry.hit(result):
                            entry.active = False
                            bucket.dead += 1
            except BaseException as exc:  # noqa: BLE001 - each entry's own policy decides
                entry = entries[i - 1]
                if entry.failed(exc) and entry.active:
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
            _sweep(bucket)
        if not entries:
            since = bucket.empty_since
            if since is None:
                bucket.empty_since = started
            elif started - since >= LINGER:
                del self._buckets[bucket.interval]
                return
        # the next tick: one interval later (never behind now: a stalled loop skips ticks)
        bucket.due = max(bucket.due + bucket.interval, now())


def _sweep(bucket: _Bucket) -> None:
    bucket.entries[:] = [e for e in bucket.entries if e.active]
    bucket.dead = 0


def _due(bucket: _Bucket) -> float:
    return bucket.due


def poller_for(handle: LoopHandle) -> Poller:
    """The poller of ``handle``'s loop (made on first use)."""
    poller: Any = handle.poller
    if poller is None:
        poller = handle.poller = Poller(handle)
    return poller
