"""Composite sources: any-of and all-of operators over sources."""

from __future__ import annotations



from .._models import CancelEvent
from .base import ArmContext, CancelationSource, as_source

__all__ = ("AllOfSource", "AnyOfSource", "CompositeSource", "all_of", "any_of")


def _flatten_args(sources: tuple[object, ...]) -> list[CancelationSource]:
    if len(sources) == 1 and isinstance(sources[0], (list, tuple)):
        sources = tuple(sources[0])
    if not sources:
        raise ValueError("a composite source needs at least one source")
    return [as_source(s, f"sources[{i}]") for i, s in enumerate(sources)]


class CompositeSource(CancelationSource):
    """Base of any-of / all-of: a source made of other sources.

    Accepts ``Composite(a, b)`` or ``Composite([a, b])``; tokens and reactivex
    observables are wrapped as sources.
    """

    def __init__(self, *sources: object, name: str | None = None) -> None:
        super().__init__(name)
        self.sources: list[CancelationSource] = _flatten_args(sources)

    def _child_deadline_ok(self, deadline_ok: bool) -> bool:
        return deadline_ok

    def _fresh(self) -> CompositeSource:
        return type(self)(*[s._fresh() for s in self.sources], name=self.name)

    def _needs_tasks(self, deadline_ok: bool) -> bool:
        ok = self._child_deadline_ok(deadline_ok)
        return any(s._needs_tasks(ok) for s in self.sources)

    def _on_child(self, event: CancelEvent) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def _start(self, ctx: ArmContext, deadline_ok: bool) -> None:
        ok = self._child_deadline_ok(deadline_ok)
        for s in self.sources:
            s._listen(self._on_child)
            s._arm(ctx, ok)

    def _stop(self) -> None:
        for s in self.sources:
            s._unlisten(self._on_child)
            s._disarm()

    def __repr__(self) -> str:
        inner = ", ".join(repr(s) for s in self.sources)
        return f"<{type(self).__name__} [{inner}]{' fired' if self._fired else ''}>"


class AnyOfSource(CompositeSource):
    """Fires when the first of its sources fires, with that source's reason and message.

    Timeouts inside any-of become the operation's deadline (the earliest one wins).
    """

    def __init__(self, *sources: object, name: str | None = None) -> None:
        super().__init__(*sources, name=name)
        flat: list[CancelationSource] = []
        for s in self.sources:  # (a | b) | c is one any-of of three
            flat.extend(s.sources if type(s) is AnyOfSource and not s._fired else [s])
        self.sources = flat

    def _on_child(self, event: CancelEvent) -> None:
        self._fire_value(event)


class AllOfSource(CompositeSource):
    """Fires once every one of its sources has fired (latched: each counts once fired).

    The event carries the reason of the part that completed the set (a timeout that
    fires last makes it ``TIMEOUT``).  Timeouts inside all-of run as timer tasks.
    """

    def __init__(self, *sources: object, name: str | None = None) -> None:
        super().__init__(*sources, name=name)
        self._seen: set[int] = set()

    def _child_deadline_ok(self, deadline_ok: bool) -> bool:
        return False

    @property
    def fired_count(self) -> int:
        """How many of the parts have fired so far."""
        return sum(1 for s in self.sources if s.triggered)

    def _on_child(self, event: CancelEvent) -> None:
        if all(s.triggered for s in self.sources):
            reasons = ", ".join(s.event.reason.value for s in self.sources if s.event)
            self._fire_value(
                CancelEvent(
                    event.reason,
                    f"all {len(self.sources)} sources fired ({reasons}); last: {event.message}",
                    event.source,
                )
            )


def any_of(*sources: object) -> AnyOfSource:
    """Any-of operator: ``any_of(a, b, c)`` is ``a | b | c``."""
    return AnyOfSource(*sources)


def all_of(*sources: object) -> AllOfSource:
    """All-of operator: ``all_of(a, b, c)`` is ``a & b & c``."""
    return AllOfSource(*sources)


