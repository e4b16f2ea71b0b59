"""Compile an operation's source tree, once, into what entering it needs.

* ``timeout``: the earliest timeout among top-level and any-of timeouts; it becomes the
  cancel-scope deadline (no timer, no task).
* ``triggers``: the top-level sources to listen to and arm (a timeout armed at the top
  level starts nothing: it is only listened to, so ``fire()`` on it still works).
* ``needs_tasks``: whether a task group must be opened (conditions, all-of timers).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .sources.base import CancelationSource
from .sources.composite import AnyOfSource
from .sources.timeout import TimeoutSource

__all__ = ("Plan", "compile_plan")


@dataclass(frozen=True, slots=True)
class Plan:
    timeout: TimeoutSource | None
    triggers: tuple[CancelationSource, ...]
    needs_tasks: bool


EMPTY = Plan(None, (), False)


def _deadline_timeouts(source: CancelationSource) -> list[TimeoutSource]:
    if isinstance(source, TimeoutSource):
        return [source] if math.isfinite(source.timeout_seconds) else []
    if isinstance(source, AnyOfSource):
        return [t for child in source.sources for t in _deadline_timeouts(child)]
    return []


def compile_plan(sources: list[CancelationSource]) -> Plan:
    if not sources:
        return EMPTY
    timeouts: list[TimeoutSource] = []
    triggers: list[CancelationSource] = []
    for s in sources:
        timeouts.extend(_deadline_timeouts(s))
        triggers.append(s)
    earliest = min(timeouts, key=lambda t: t.timeout_seconds) if timeouts else None
    needs_tasks = any(t._needs_tasks(True) for t in triggers)
    return Plan(earliest, tuple(triggers), needs_tasks)
