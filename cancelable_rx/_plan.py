"""Compile an operation's source tree, once, into what entering it needs.

* ``timeout``: the earliest timeout among top-level and any-of timeouts; it becomes the
  cancel-scope deadline (no timer, no task).
* ``triggers``: the top-level sources to listen to and arm (a timeout armed at the top
  level starts nothing: it is only listened to, so ``fire()`` on it still works).
* ``needs_background``: whether arming starts background work (conditions, all-of timers),
  so the operation must open a task group.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from .sources.base import AnyOfSource, CancelationSource
from .sources.timeout import TimeoutSource

__all__ = ("EMPTY", "Plan", "compile_plan")


class Plan:
    """What entering an operation needs of its sources (read-only after compilation)."""

    __slots__ = ("timeout", "triggers", "needs_background")

    def __init__(
        self, timeout: TimeoutSource | None, triggers: tuple[CancelationSource, ...], needs_background: bool
    ) -> None:
        self.timeout = timeout
        self.triggers = triggers
        self.needs_background = needs_background


EMPTY = Plan(None, (), False)


def _deadline_timeouts(source: CancelationSource) -> list[TimeoutSource]:
    if isinstance(source, TimeoutSource):  # a soft timeout is a timer, not a deadline
        return [source] if math.isfinite(source.timeout_seconds) and source.grace is None else []
    if isinstance(source, AnyOfSource):
        return [t for part in source.sources for t in _deadline_timeouts(part)]
    return []


# Source classes that can carry a deadline (timeouts and any-of), by class: sources are
# observables whose metaclass is ABCMeta, and an isinstance() check through it runs Python
# code (``<frozen abc>``) twice per operation entered.  A class's answer never changes.
_MAY_HOLD_DEADLINE: dict[type, bool] = {}


def compile_plan(sources: Sequence[CancelationSource]) -> Plan:
    if not sources:
        return EMPTY
    if len(sources) == 1:
        only = sources[0]
        cls = type(only)
        may = _MAY_HOLD_DEADLINE.get(cls)
        if may is None:
            may = _MAY_HOLD_DEADLINE[cls] = issubclass(cls, (TimeoutSource, AnyOfSource))
        if not may:  # the common case, no timeout to find
            return Plan(None, (only,), only._needs_background(True))
    timeouts = [t for s in sources for t in _deadline_timeouts(s)]
    earliest = min(timeouts, key=lambda t: t.timeout_seconds) if timeouts else None
    triggers = tuple(sources)
    return Plan(earliest, triggers, any(s._needs_background(True) for s in triggers))
