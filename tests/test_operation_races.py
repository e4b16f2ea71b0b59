"""Forced interleavings of the engine's cross-thread paths, on asyncio and trio.

A trace hook pauses one side at each line of the library while the other side runs:

* a thread calling ``cancel_sync()`` (the operation's, or that of a token it listens to) is
  paused at every line of the cancel path while the loop leaves the block (and released when
  the loop has to wait for it);
* the loop is paused at every line of the exit path while a thread cancels (either way);
* a deadline racing a token: the loop paused at every line of a timed-out block's exit while a
  thread cancels the token, and the thread paused at every line of the token's cancel while
  the loop times out;
* a thread building the record (``op.context``) is paused at every line of the build while
  the loop finishes the operation.

After each run every view of the outcome must agree: what leaving raised, ``status``,
``is_cancelled``, ``cancel_reason``, the record and the registry's lifecycle event.
"""

from __future__ import annotations

import dis
import linecache
import sys
import threading
from collections.abc import Callable
from types import CodeType, FrameType
from typing import Any

import anyio
import pytest

from cancelable_rx import (
    Cancelable,
    CancelationError,
    CancelationReason,
    CancelationToken,
    LifecycleKind,
    ManualCancelation,
    OperationRegistry,
    OperationStatus,
)
from cancelable_rx import _operation as engine
from cancelable_rx import _token as tokens

pytestmark = pytest.mark.anyio

Tracer = Callable[[FrameType, str, Any], Any]


def _lines(*functions: Callable[..., Any]) -> list[tuple[CodeType, int]]:
    found: list[tuple[CodeType, int]] = []
    for fn in functions:
        code = fn.__code__  # type: ignore[attr-defined]
        for const in (code, *[c for c in code.co_consts if isinstance(c, CodeType)]):
            found.extend((const, line) for line in sorted({ln for _, ln in dis.findlinestarts(const) if ln}))
    return found


def _pause_at(code: CodeType, line: int, on_reach: Callable[[], None]) -> Tracer:
    """A tracer that calls ``on_reach()`` once, when ``line`` of ``code`` is about to run."""
    done = False

    def local(frame: FrameType, event: str, arg: Any) -> Tracer | None:
        nonlocal done
        if event == "line" and frame.f_lineno == line and not done:
            done = True
            on_reach()
        return local

    def tracer(frame: FrameType, event: str, arg: Any) -> Tracer | None:
        return local if frame.f_code is code and not done else None

    return tracer


# Functions in which the loop may wait for the engine's lock.
_TAKES_THE_LOCK = {
    f.__code__
    for f in (
        engine._await_lock, engine.Operation.context.fget, engine.Operation._ended,  # type: ignore[attr-defined]
        engine.Operation._store_sealed, engine.Operation._record, engine.Operation._fire, engine.Operation._fail,
    )
}


def _release_when_the_loop_needs_the_lock(go: threading.Event) -> Tracer:
    """A tracer for the loop thread: a thread paused while holding the engine's lock is
    released as soon as the loop is about to wait for that lock (a call into a function that
    takes it, or a `with _LOCK:` line of the engine), else the test would hang where the real
    program only waits a moment."""

    def local(frame: FrameType, event: str, arg: Any) -> Tracer | None:
        if event == "line" and "with _LOCK" in linecache.getline(frame.f_code.co_filename, frame.f_lineno):
            go.set()
        return local

    def tracer(frame: FrameType, event: str, arg: Any) -> Tracer | None:
        if event == "call" and frame.f_code in _TAKES_THE_LOCK:
            go.set()
        return local if frame.f_code.co_filename == engine.__file__ else None

    return tracer


class _Outcome:
    def __init__(self) -> None:
        self.events: list[LifecycleKind] = []

    def check(self, op: Cancelable, raised: BaseException | None, body_error: bool) -> str:
        ctx = op.context
        views = (op.status, ctx.status, op.is_cancelled, ctx.is_cancelled, op.cancel_reason, ctx.cancel_reason)
        final = [k for k in self.events if k in (LifecycleKind.COMPLETED, LifecycleKind.CANCELLED, LifecycleKind.FAILED)]
        if raised is None:
            assert not body_error
            assert views == (OperationStatus.COMPLETED, OperationStatus.COMPLETED, False, False, None, None), views
            assert final == [LifecycleKind.COMPLETED]
            return "completed"
        if isinstance(raised, ManualCancelation):  # with body_error: the cancel interrupted the body first
            manual = CancelationReason.MANUAL
            assert views == (OperationStatus.CANCELLED, OperationStatus.CANCELLED, True, True, manual, manual), views
            assert final == [LifecycleKind.CANCELLED]
            return "cancelled"
        assert body_error and isinstance(raised, ValueError), raised
        assert views[:4] == (OperationStatus.FAILED, OperationStatus.FAILED, False, False), views
        assert views[4] == views[5]  # a request that did not interrupt the body: same on both views
        assert final == [LifecycleKind.FAILED]
        return "failed"


async def _run_block(op: Cancelable, registry: OperationRegistry, body_error: bool, inside: Callable[[], Any]) -> BaseException | None:
    await registry.register(op)
    try:
        async with op:
            await inside()
            if body_error:
                raise ValueError("the body failed")
    except (ManualCancelation, ValueError) as err:
        return err
    return None


def _registry_with_events(outcome: _Outcome) -> OperationRegistry:
    registry = OperationRegistry()
    registry.events.subscribe(lambda e: outcome.events.append(e.kind))
    return registry


CANCEL_PATH = _lines(
    Cancelable.cancel_sync, engine.Operation._cancel_event, engine.Operation._fire, engine.Operation._record,
    engine.Operation._store_event, engine.Operation._announce,
)
TOKEN_CANCEL_PATH = _lines(
    CancelationToken.cancel_sync, tokens.CancelationToken._set, engine.Operation._fire, engine.Operation._announce,
)
CANCEL_PATHS = {"operation": CANCEL_PATH, "token": TOKEN_CANCEL_PATH}
EXIT_PATH = _lines(
    engine.Operation.__aexit__, engine.Operation._leave, engine.Operation._finish, engine.Operation._ended,
    engine.Operation._store_sealed, engine._await_lock,
)


def _cancelled_by(how: str) -> tuple[Cancelable, Callable[[], object]]:
    """An operation, and how another thread cancels it: its own ``cancel_sync`` or that of
    a token it listens to (``with_token``: the token fires it directly)."""
    if how == "token":
        token = CancelationToken()
        return Cancelable.with_token(token, name="race"), lambda: token.cancel_sync(message="from a thread")
    op = Cancelable(name="race")
    return op, lambda: op.cancel_sync(message="from a thread")


async def _warm_exit() -> None:
    """Leave a block that a token cancelled once: the first such exit fills the table that
    lets the next ones take the short way out, which the sweeps must cover."""
    token = CancelationToken()
    with pytest.raises(ManualCancelation):
        async with Cancelable.with_token(token):
            await token.cancel()
            await anyio.sleep(5)
    assert engine._IS_SOURCE.get(CancelationToken) is False


class _PausedCanceller:
    """A thread that runs ``cancel()``, paused at ``line`` of ``code`` if its path reaches it.

    ``inside`` (awaited in the block) starts it and waits until it is paused (or done); the
    block then goes on to leave on the loop, and if leaving has to wait for the paused thread
    (it holds the deciding lock) a hook releases it.  ``finish`` ends it after the block."""

    def __init__(self, cancel: Callable[[], object], code: CodeType, line: int) -> None:
        self.reached, self.go = threading.Event(), threading.Event()

        def pause() -> None:
            self.reached.set()
            self.go.wait(5)

        def run() -> None:
            sys.settrace(_pause_at(code, line, pause))
            try:
                cancel()
            finally:
                sys.settrace(None)
                self.reached.set()  # the line was not on this path: nothing to wait for

        self.thread = threading.Thread(target=run)

    async def inside(self) -> None:
        self.thread.start()
        await anyio.to_thread.run_sync(self.reached.wait, 5)
        sys.settrace(_release_when_the_loop_needs_the_lock(self.go))

    def finish(self) -> None:
        sys.settrace(None)
        self.go.set()
        self.thread.join(5)


class _CancelWhenTheLoopPauses:
    """The loop, paused at ``line`` of ``code`` while it leaves, lets a thread run ``cancel()``
    meanwhile.  ``inside`` (awaited in the block) arms the pause; ``finish`` ends it."""

    def __init__(self, cancel: Callable[[], object], code: CodeType, line: int) -> None:
        self.thread = threading.Thread(target=cancel)
        self.code, self.line = code, line

    def _cancel_now(self) -> None:
        self.thread.start()
        self.thread.join(0.5)  # a section holding the lock makes the thread wait: let it finish later

    async def inside(self) -> None:
        sys.settrace(_pause_at(self.code, self.line, self._cancel_now))

    def finish(self) -> None:
        sys.settrace(None)
        if self.thread.ident is not None:
            self.thread.join(5)


@pytest.mark.parametrize("how", ["operation", "token"])
@pytest.mark.parametrize(
    ("paused", "body_error"),
    [("thread", False), ("thread", True), ("loop", False)],
    ids=["thread-paused-in-the-cancel-completes", "thread-paused-in-the-cancel-raises", "loop-paused-in-the-exit"],
)
async def test_a_cancel_from_a_thread_never_splits_the_outcome(how: str, paused: str, body_error: bool) -> None:
    """A thread cancels (the operation, or a token it listens to) while the block leaves:
    either the thread is paused at every line of its cancel path while the loop leaves, or
    the loop is paused at every line of the exit while the thread cancels."""
    await _warm_exit()
    path, pauser = (CANCEL_PATHS[how], _PausedCanceller) if paused == "thread" else (EXIT_PATH, _CancelWhenTheLoopPauses)
    seen: set[str] = set()
    for code, line in path:
        outcome = _Outcome()
        registry = _registry_with_events(outcome)
        op, cancel = _cancelled_by(how)
        race = pauser(cancel, code, line)
        try:
            raised = await _run_block(op, registry, body_error, race.inside)
        finally:
            race.finish()
        await anyio.lowlevel.checkpoint()  # a hop scheduled by a late cancel lands here, harmlessly
        seen.add(outcome.check(op, raised, body_error))
    # The sweep reaches both sides of the seal (a body that raises may be interrupted first).
    assert seen == {"completed", "cancelled"} if not body_error else "failed" in seen


# A deadline racing a token: the loop times out (the short way out of a timed-out block)
# while a thread cancels the token, each side paused at every line of its path.
TIMEOUT_EXIT_PATH = _lines(
    engine.Operation.__aexit__, engine.Operation._seal_plain_timeout, engine.Operation._store_sealed,
    engine.Operation._ended, engine.Operation._store_event, engine.Operation._announce, engine._await_lock,
)
TOKEN_CANCEL_BESIDE_A_TIMEOUT = _lines(
    CancelationToken.cancel_sync, tokens.CancelationToken._set, engine.Operation._fire,
    engine.Operation._store_event, engine.Operation._announce, engine.Operation._on_token,
)


def _timed(
    own_token: bool,
) -> tuple[Cancelable, CancelationToken, OperationRegistry, list[LifecycleKind], list[Any]]:
    """A timed operation; the token a thread cancels (its own, or one it listens to); a
    registry and the lifecycle events it announces; what its cancellation observable emits."""
    if own_token:
        op = Cancelable.with_timeout(0.02, name="race")
        token = op.token
    else:
        token = CancelationToken()
        op = Cancelable.with_timeout(0.02, name="race").combine(Cancelable.with_token(token))
    events: list[LifecycleKind] = []
    registry = OperationRegistry()
    registry.events.subscribe(lambda e: events.append(e.kind))
    seen: list[Any] = []
    op.cancellation.subscribe(seen.append)
    return op, token, registry, events, seen


async def _run_timed_block(op: Cancelable, registry: OperationRegistry, inside: Callable[[], Any]) -> CancelationError:
    await registry.register(op)
    with pytest.raises(CancelationError) as info:
        async with op:
            await inside()
            await anyio.sleep(5)  # the deadline (or the token) ends it
    return info.value


def _check_timed(op: Cancelable, raised: CancelationError, events: list[LifecycleKind], seen: list[Any]) -> str:
    """Whichever won, every view names it: the error, the operation, its record, the
    registry's lifecycle event and the cancellation observable."""
    ctx = op.context
    reason = raised.reason
    assert reason in (CancelationReason.TIMEOUT, CancelationReason.MANUAL), reason
    views = (op.status, ctx.status, op.cancel_reason, ctx.cancel_reason)
    assert views == (OperationStatus.CANCELLED, OperationStatus.CANCELLED, reason, reason), views
    assert ctx.end_time is not None and raised.message == op.cancel_message == ctx.cancel_message
    assert [k for k in events if k in (LifecycleKind.COMPLETED, LifecycleKind.CANCELLED, LifecycleKind.FAILED)] == [
        LifecycleKind.CANCELLED
    ]
    assert [event.reason for event in seen] == [reason], seen
    return reason.value


@pytest.mark.parametrize("own_token", [False, True], ids=["listened-to-token", "own-token"])
@pytest.mark.parametrize("paused", ["loop", "thread"], ids=["loop-paused-in-the-exit", "thread-paused-in-the-cancel"])
async def test_a_deadline_racing_a_token_never_splits_the_outcome(own_token: bool, paused: str) -> None:
    path, pauser = (
        (TIMEOUT_EXIT_PATH, _CancelWhenTheLoopPauses) if paused == "loop" else (TOKEN_CANCEL_BESIDE_A_TIMEOUT, _PausedCanceller)
    )
    seen_reasons: set[str] = set()
    for code, line in path:
        op, token, registry, events, seen = _timed(own_token)
        race = pauser(lambda token=token: token.cancel_sync(message="from a thread"), code, line)
        try:
            raised = await _run_timed_block(op, registry, race.inside)
        finally:
            race.finish()
        await anyio.lowlevel.checkpoint()
        seen_reasons.add(_check_timed(op, raised, events, seen))
    assert seen_reasons == {"timeout", "manual"}  # the sweep reaches both sides of the seal


async def test_a_record_built_off_the_loop_is_never_left_stale() -> None:
    build_path = _lines(engine.Operation.context.fget, engine.Operation._build_record, engine.Operation._progress_mark)  # type: ignore[arg-type]
    for code, line in build_path:
        op = Cancelable(name="record")
        reached, go = threading.Event(), threading.Event()

        def pause(reached: threading.Event = reached, go: threading.Event = go) -> None:
            reached.set()
            go.wait(5)

        def reader(
            op: Cancelable = op, code: CodeType = code, line: int = line, reached: threading.Event = reached
        ) -> None:
            sys.settrace(_pause_at(code, line, pause))
            try:
                assert op.context is not None
            finally:
                sys.settrace(None)
                reached.set()

        thread = threading.Thread(target=reader)
        try:
            async with op:
                thread.start()
                await anyio.to_thread.run_sync(reached.wait, 5)
                sys.settrace(_release_when_the_loop_needs_the_lock(go))
        finally:
            sys.settrace(None)
        # The operation has finished while the reader was paused mid-build; let it go on.
        go.set()
        thread.join(5)
        ctx = op.context
        assert ctx.status is OperationStatus.COMPLETED and ctx.end_time is not None, (line, ctx.status)


async def test_a_record_built_while_the_operation_starts_shows_it_running() -> None:
    build_path = _lines(engine.Operation.context.fget, engine.Operation._build_record, engine.Operation._progress_mark)  # type: ignore[arg-type]
    for code, line in build_path:
        op = Cancelable(name="record")
        reached, go = threading.Event(), threading.Event()

        def pause(reached: threading.Event = reached, go: threading.Event = go) -> None:
            reached.set()
            go.wait(5)

        def reader(
            op: Cancelable = op, code: CodeType = code, line: int = line, reached: threading.Event = reached
        ) -> None:
            sys.settrace(_pause_at(code, line, pause))
            try:
                assert op.context is not None
            finally:
                sys.settrace(None)
                reached.set()

        thread = threading.Thread(target=reader)
        thread.start()  # the record is built from another thread while the operation is entered
        await anyio.to_thread.run_sync(reached.wait, 5)
        sys.settrace(_release_when_the_loop_needs_the_lock(go))
        try:
            async with op:
                sys.settrace(None)
                go.set()
                await anyio.to_thread.run_sync(thread.join, 5)
                ctx = op.context
                assert ctx.status is OperationStatus.RUNNING, (line, ctx.status)
                assert abs(ctx.start_time.timestamp() - op._start_ts) < 1e-3  # type: ignore[operator]
        finally:
            sys.settrace(None)
            go.set()
