"""The source interface, the base class of every source, and the any-of / all-of operators.

A *source* is a hot, fire-once reactivex ``Observable`` of `CancelEvent`.  An operation
uses a source through four steps (``docs/source-interface.md`` is the guide):

1. it *listens* to the source (a direct listener, or ``subscribe`` for anything else);
2. it *arms* it: ``source.arm(host)`` calls the source's `CancelationSource.on_arm` hook
   with a `SourceHost`, the operation's side of the interface (its loop, background work,
   failure reporting);
3. the source *fires*: ``source.fire(message)`` emits ``CancelEvent(reason, message,
   source)`` once, from any thread; the first event of any source cancels the operation;
4. it *disarms* it: the operation calls the callable ``on_arm`` returned, and cancels any
   background work the source started with ``host.start_soon``.

The operators ``a | b`` (`AnyOfSource`) and ``a & b`` (`AllOfSource`) live here because
they are what the base class's operators return.  `as_source` turns tokens, reactivex
observables (and anything registered with ``as_source.register``) into sources.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, Protocol

from .._checks import check_not_empty, check_reason, fail_type
from .._models import CancelationReason, CancelEvent
from .._rx import FireOnce
from ._monitoring import CancelCallback, DirectArming, monitor, run_cancel_callback

__all__ = (
    "AllOfSource",
    "AnyOfSource",
    "CancelationSource",
    "CompositeSource",
    "Disarm",
    "SourceHost",
    "all_of",
    "any_of",
    "as_source",
)

Disarm = Callable[[], object]
"""What `CancelationSource.on_arm` returns: a callable that stops watching (or None)."""


class SourceHost(Protocol):
    """What an operation offers the sources it arms (the operation's side of the interface).

    Thread-safety: `run_soon`, `call` and `fail` may be called from any thread (and
    `run_soon` from a signal handler); `start_soon` only from the loop thread, inside
    `CancelationSource.on_arm`.
    """

    @property
    def applies_deadlines(self) -> bool:
        """True when the operation turns timeouts into its cancel-scope deadline (at the top
        level and inside any-of); False inside all-of, where a timeout needs a timer task."""
        ...

    def run_soon(self, fn: Callable[[], object]) -> None:
        """Schedule ``fn()`` on the operation's event loop; never raises (a failure is logged)."""
        ...

    def call(self, fn: Callable[[], object]) -> None:
        """Run ``fn()`` now if called on the loop thread, else as `run_soon` does."""
        ...

    def start_soon(self, fn: Callable[[], Awaitable[object]]) -> None:
        """Run ``await fn()`` as background work of the operation.

        Cancellation: the work is cancelled when the operation disarms its sources (when it
        exits).  An exception escaping ``fn`` fails the operation (see `fail`).  Only sources
        whose ``needs_background`` is True may call it.
        """
        ...

    def fail(self, exc: BaseException) -> None:
        """The source cannot go on watching: cancel the operation and make leaving it raise
        ``exc`` (status ``FAILED``).  Use it for errors that must not be lost, such as a
        ``KeyboardInterrupt`` raised while watching."""
        ...

    def request_stop(self, grace: float, reason: CancelationReason, message: str | None, source: object) -> None:
        """A *soft* source's first phase: ask the operation to stop within ``grace`` seconds
        (see ``Cancelable.request_stop``); it is cancelled with ``reason`` when they run out,
        or when a source fires.  A later request may shorten the grace period, never extend
        it.  Any thread."""
        ...


class _NoDeadlines:
    """A host view for one part of an all-of: timeouts are not deadlines, and a part's stop
    request counts as that part firing (all-of is hard: it fires once every part has)."""

    __slots__ = ("_host", "_part")
    applies_deadlines = False

    def __init__(self, host: SourceHost, part: CancelationSource) -> None:
        self._host = host
        self._part = part

    def request_stop(self, grace: float, reason: CancelationReason, message: str | None, source: object) -> None:
        self._part.fire(message, reason)

    def run_soon(self, fn: Callable[[], object]) -> None:
        self._host.run_soon(fn)

    def call(self, fn: Callable[[], object]) -> None:
        self._host.call(fn)

    def start_soon(self, fn: Callable[[], Awaitable[object]]) -> None:
        self._host.start_soon(fn)

    def fail(self, exc: BaseException) -> None:
        self._host.fail(exc)


def _source_reason(value: object, where: str) -> CancelationReason:
    """A source's ``reason``: the `CancelationReason` member, or named by its value (the
    error suggests the member a misspelt value most likely means)."""
    member = CancelationReason.__members__.get(value.upper()) if isinstance(value, str) else None
    fix = f"reason = CancelationReason.{member.name}" if member is not None else "e.g. reason = CancelationReason.MANUAL"
    return check_reason(value, where, fix)


class CancelationSource(FireOnce[CancelEvent]):
    """A hot observable that emits one `CancelEvent` and completes.

    Cancellation: `fire` (or the source's own trigger) emits once; every operation the
    source was added to is cancelled with the source's ``reason``.  A source that has fired
    stays fired: an operation entered with it later is cancelled at once.

    Thread-safety: `fire` may be called from any thread; subscribing and disposing are
    thread-safe and idempotent.

    Write a source by subclassing it and overriding `on_arm` (and ``default_message``);
    set ``needs_background = True`` if ``on_arm`` starts background work.  Sources compose:
    ``a | b`` (any-of) and ``a & b`` (all-of, latched).
    """

    reason: CancelationReason = CancelationReason.MANUAL
    """The reason of the events it fires.  A subclass (or an instance) may name it by the
    member's value (``reason = "condition"``): the member is used (callbacks, records and
    errors all see the member); anything else is an error where the class is defined (or,
    set on an instance, when it fires).  A subclass may make it a property."""
    needs_background: ClassVar[bool] = False
    """True if `on_arm` calls ``host.start_soon`` (the operation then provides a task group)."""
    # The reference's source API; class-level defaults (a source built per operation writes none).
    scope: Any = None
    """The scope `start_monitoring` was given (the reference's API), or None."""
    _cancel_callback: CancelCallback | None = None
    _monitoring_task: Any = None
    _direct: DirectArming | None = None
    _triggered: bool = False
    error: BaseException | None = None
    """The error a source that failed keeps (an erroring observable), else None."""
    _reference_style: ClassVar[bool] = False
    """True for a subclass written against the reference's API (it implements
    ``start_monitoring`` and keeps the default `on_arm`)."""

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if "reason" in cls.__dict__:
            reason = cls.__dict__["reason"]
            if type(reason) is not CancelationReason and not hasattr(type(reason), "__get__"):
                # ``reason = "condition"`` (the str enum's value) is the member; anything
                # else fails here, where the class is defined, not when a source of it
                # fires.  (A property or other descriptor is the subclass's own business.)
                cls.reason = _source_reason(reason, f"{cls.__name__}.reason")
        cls._reference_style = (
            cls.on_arm is CancelationSource.on_arm and cls.start_monitoring is not CancelationSource.start_monitoring
        )

    def __init__(self, reason: CancelationReason | str | None = None, name: str | None = None) -> None:
        """``CancelationSource(name=...)``, or the reference's ``CancelationSource(reason, name=None)``.

        ``reason`` (a `CancelationReason`) overrides the class's; a plain str in first
        position is taken as the name.  ``name`` defaults to the class name.
        """
        super().__init__()
        if reason is not None and not isinstance(reason, CancelationReason):
            if name is None and isinstance(reason, str):
                reason, name = None, reason
            else:
                fail_type("reason", "a CancelationReason or None", reason, "e.g. CancelationReason.MANUAL")
        if reason is not None:
            self.reason = reason
        if name is not None and not isinstance(name, str):
            fail_type("name", "a str or None", name)
        self.name: str = name or type(self).__name__

    @property
    def triggered(self) -> bool:
        """True once the source has fired (or a reference-style source set it)."""
        return self._fired or self._triggered

    @triggered.setter
    def triggered(self, value: bool) -> None:
        self._triggered = bool(value)

    # -- firing ---------------------------------------------------------------------

    def default_message(self) -> str:
        """The message of an event fired without one."""
        return f"{type(self).__name__} fired"

    def fire(self, message: str | None = None, reason: CancelationReason | None = None) -> bool:
        """Emit the cancel event now.  Returns False if the source had already fired.

        Thread-safety: any thread.  Listeners run in the calling thread.
        """
        reason = check_reason(reason) if reason is not None else self._reason()
        return self._fire_value(CancelEvent(reason, message or self.default_message(), self))

    def _reason(self) -> CancelationReason:
        """``self.reason`` as the member: one named by its value on the instance
        (``self.reason = "manual"``) is replaced by the member; anything else raises,
        naming the class's attribute."""
        reason = self.reason
        if type(reason) is not CancelationReason:
            reason = _source_reason(reason, f"{type(self).__name__}.reason")
            try:
                self.reason = reason
            except AttributeError:  # a read-only property: read it each time
                pass
        return reason

    # -- the reference's source API ------------------------------------------------------

    async def trigger_cancelation(self, message: str | None = None) -> None:
        """Fire this source (the ``hother-cancelable`` source API): mark it ``triggered``,
        run the cancel callback (sync or async; an error is logged, never raised), fire, and
        cancel `scope` if there is one.  Nothing happens once `scope` was cancelled.

        Cancellation: every operation the source is armed for is cancelled with its reason.
        """
        scope = self.scope
        if scope is not None and scope.cancel_called:
            return
        self.triggered = True
        callback = self._cancel_callback
        if callback is not None:
            await run_cancel_callback(self, callback, message or "")
        self.fire(message)
        if scope is not None and not scope.cancel_called:
            scope.cancel()

    def set_cancel_callback(self, callback: CancelCallback) -> None:
        """Call ``callback(reason, message)`` (sync or async) when this source triggers
        through `trigger_cancelation`, or fires while armed by `start_monitoring`.  Errors
        are logged, never raised."""
        self._cancel_callback = callback

    async def start_monitoring(self, scope: Any) -> None:
        """The reference's source API: watch for this source's condition and cancel ``scope``
        (an anyio cancel scope) when it fires.

        A reference-style subclass overrides it (calling ``super()`` records ``scope``); on
        the library's sources it arms the source for ``scope`` (background work runs in a
        task group entered here and left by `stop_monitoring`, in the same task).  Operations
        do not use it: they arm sources through `arm`.
        """
        self.scope = scope
        if type(self)._reference_style:
            return
        if self._direct is not None:
            await self._direct.stop()
        self._direct = DirectArming(self, scope)
        await self._direct.start()

    async def stop_monitoring(self) -> None:
        """The reference's source API: stop what `start_monitoring` started.  Idempotent."""
        task, self._monitoring_task = self._monitoring_task, None
        if task is not None:
            task.cancel()
        direct, self._direct = self._direct, None
        if direct is not None:
            await direct.stop()

    def __str__(self) -> str:  # (never raises: loggers call it)
        reason = self.reason
        return f"{self.name}(reason={getattr(reason, 'value', reason)})"

    @property
    def event(self) -> CancelEvent | None:
        """The event this source emitted, or None."""
        return self._value if self._fired else None

    # -- the interface operations use -------------------------------------------------

    def arm(self, host: SourceHost) -> Disarm | None:
        """Begin watching for one operation (called by the operation, on its loop thread).

        Returns what stops the watching, or None.  A source that has fired arms nothing.
        A source added to several operations is armed once per operation, each arming with
        its own host and its own disarm: ``on_arm`` must keep nothing per source that two
        armings would share (listen with a key or a closure made per arming).
        """
        if self._fired:
            return None
        return self.on_arm(host)

    def on_arm(self, host: SourceHost) -> Disarm | None:
        """Override: begin watching whatever makes this source fire; call `fire` when it does.

        Use ``host.start_soon`` for background work (and set ``needs_background``),
        ``host.run_soon``/``host.call`` to reach the loop from callbacks on other threads.
        Return a callable that stops the watching (idempotent, never raising), or None.

        A reference-style subclass (one that implements ``start_monitoring``) keeps this
        default: its ``start_monitoring`` and ``stop_monitoring`` run in a background task
        of the operation (see ``_monitoring.monitor``).
        """
        if type(self)._reference_style:
            return monitor(self, host)
        return None

    def _needs_background(self, applies_deadlines: bool) -> bool:
        """Whether arming under a host with ``applies_deadlines`` starts background work."""
        return self.needs_background or type(self)._reference_style

    def _fresh(self) -> CancelationSource:
        """An unfired copy with the same configuration (decorators build one per call)."""
        raise TypeError(
            f"{type(self).__name__} cannot be reused as a template; create one per operation "
            "(or define _fresh() returning an unfired copy)"
        )

    # -- composition -------------------------------------------------------------------

    def __or__(self, other: object) -> AnyOfSource:
        return AnyOfSource(self, as_source(other, "right operand of |"))

    def __ror__(self, other: object) -> AnyOfSource:
        return AnyOfSource(as_source(other, "left operand of |"), self)

    def __and__(self, other: object) -> AllOfSource:
        return AllOfSource(self, as_source(other, "right operand of &"))

    def __rand__(self, other: object) -> AllOfSource:
        return AllOfSource(as_source(other, "left operand of &"), self)

    def __repr__(self) -> str:
        state = "fired" if self._fired else "idle"
        label = f" {self.name!r}" if self.name != type(self).__name__ else ""
        return f"<{type(self).__name__}{label} {state}>"


@functools.singledispatch
def as_source(obj: object, what: str = "source") -> CancelationSource:
    """Return ``obj`` as a source: sources pass through; tokens and reactivex observables
    are wrapped (`TokenSource`, `ObservableSource`); anything else is a TypeError naming
    ``what``.  Integrations register their own types: ``@as_source.register(MyToken)``."""
    fail_type(what, "a CancelationSource, a CancelationToken or a reactivex Observable", obj)


@as_source.register
def _(obj: CancelationSource, what: str = "source") -> CancelationSource:
    return obj


def _flatten_args(sources: tuple[object, ...]) -> list[CancelationSource]:
    if len(sources) == 1 and isinstance(sources[0], (list, tuple)):
        sources = tuple(sources[0])
    check_not_empty(sources, "sources", "AnyOfSource(TimeoutSource(5), token)", lead="At least one source is required")
    return [as_source(s, f"sources[{i}]") for i, s in enumerate(sources)]


class CompositeSource(CancelationSource):
    """Base of any-of / all-of: a source made of other sources.

    Accepts ``Composite(a, b)`` or ``Composite([a, b])``; tokens and reactivex observables
    are wrapped as sources.
    """

    _default_name: ClassVar[str] = "composite"

    def __init__(self, *sources: object, name: str | None = None) -> None:
        super().__init__(name=name or self._default_name)
        self.sources: list[CancelationSource] = _flatten_args(sources)
        self.triggered_source: CancelationSource | None = None
        """The part whose event fired this composite (the last one, for all-of)."""

    def _part_host(self, host: SourceHost, part: CancelationSource) -> SourceHost:
        return host

    def _part_applies_deadlines(self, applies_deadlines: bool) -> bool:
        return applies_deadlines

    def _fresh(self) -> CompositeSource:
        return type(self)(*[s._fresh() for s in self.sources], name=self.name)

    def _needs_background(self, applies_deadlines: bool) -> bool:
        ok = self._part_applies_deadlines(applies_deadlines)
        return any(s._needs_background(ok) for s in self.sources)

    def _on_part(self, event: CancelEvent) -> None:
        """Any-of (the reference's `CompositeSource`): the first part's event fires it."""
        if not self._fired and isinstance(event.source, CancelationSource):
            self.triggered_source = event.source
            self.reason = event.reason
        self._fire_value(event)

    def on_arm(self, host: SourceHost) -> Disarm | None:
        def on_part(event: CancelEvent) -> None:  # one per arming: sharing the composite is safe
            self._on_part(event)

        stops: list[Disarm] = []
        for s in self.sources:
            s._listen(on_part)
            stop = s.arm(self._part_host(host, s))
            if stop is not None:
                stops.append(stop)

        def disarm() -> None:
            for s in self.sources:
                s._unlisten(on_part)
            for stop in stops:
                stop()

        return disarm

    def __repr__(self) -> str:
        inner = ", ".join(repr(s) for s in self.sources)
        return f"<{type(self).__name__} [{inner}]{' fired' if self._fired else ''}>"


class AnyOfSource(CompositeSource):
    """Fires when the first of its sources fires, with that source's reason and message.

    Timeouts inside any-of become the operation's deadline (the earliest one wins).  Soft
    parts stay soft: their stop requests reach the operation; a hard part still cancels at
    once.
    """

    def __init__(self, *sources: object, name: str | None = None) -> None:
        super().__init__(*sources, name=name)
        flat: list[CancelationSource] = []
        for s in self.sources:  # (a | b) | c is one any-of of three
            flat.extend(s.sources if type(s) is AnyOfSource and not s._fired else [s])
        self.sources = flat

    _default_name = "any_of"


class AllOfSource(CompositeSource):
    """Fires once every one of its sources has fired (latched: each counts once fired).

    The event carries the reason of the part that completed the set (a timeout that fires
    last makes it ``TIMEOUT``).  Timeouts inside all-of run as timer tasks.
    """

    _default_name = "all_of"

    def _part_host(self, host: SourceHost, part: CancelationSource) -> SourceHost:
        return _NoDeadlines(host, part)

    @property
    def triggered_sources(self) -> set[CancelationSource]:
        """The parts that have fired so far."""
        return {s for s in self.sources if s.triggered}

    def _part_applies_deadlines(self, applies_deadlines: bool) -> bool:
        return False

    @property
    def fired_count(self) -> int:
        """How many of the parts have fired so far."""
        return sum(1 for s in self.sources if s.triggered)

    def _on_part(self, event: CancelEvent) -> None:
        if all(s.triggered for s in self.sources):
            if isinstance(event.source, CancelationSource):
                self.triggered_source = event.source
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
