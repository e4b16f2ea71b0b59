"""Bad input, in one table: every call that can be given a wrong argument, the error it
raises at that call, and its message (the parameter, the rule, the value and the fix).

A wrong *type* is a TypeError; a right type with a wrong *value* is a ValueError; using an
operation in a state that does not allow the call is a RuntimeError.
"""

from __future__ import annotations

import inspect
import math
import signal
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import anyio
import pytest
import reactivex

from cancelable_rx import (
    AnyioBridge,
    AnyOfSource,
    Cancelable,
    CancelationSource,
    CancelationToken,
    ConditionSource,
    LinkedCancelationToken,
    ObservableSource,
    OperationRegistry,
    ParentSource,
    SignalSource,
    TimeoutSource,
    cancelable,
    cancelable_combine,
    cancelable_method,
    cancelable_stream,
    cancelable_with_condition,
    cancelable_with_signal,
    cancelable_with_token,
    ensure_cancelable,
    observe,
    terminal_progress,
    to_observable,
    with_cancelable,
    with_timeout,
)

pytestmark = pytest.mark.anyio


async def _items() -> Any:
    yield 1


def _finished() -> Cancelable:
    op = Cancelable(name="finished")
    op._state = 2  # as if it had run: the checks read the state, nothing else
    op._status = op._status.COMPLETED
    return op


def _naive_now() -> datetime:
    return datetime.now()  # noqa: DTZ005 - a naive datetime is the bad input


_token = CancelationToken()
_linked = LinkedCancelationToken()
_registry = OperationRegistry()

CASES: list[tuple[str, Callable[[], Any], type[Exception], str]] = [
    # -- the operation: constructor ---------------------------------------------------
    ("operation_id type", lambda: Cancelable(operation_id=5), TypeError, r"`operation_id` must be a str, got 5; or None"),
    ("name type", lambda: Cancelable(name=5), TypeError, r"`name` must be a str, got 5"),
    ("parent type", lambda: Cancelable(parent="p"), TypeError, r"`parent` must be a Cancelable or None, got 'p'"),
    ("parent ended", lambda: Cancelable(parent=_finished()), ValueError,
     r"`parent` must be an operation that has not ended, got <Cancelable 'finished' completed>; create children"),
    ("metadata type", lambda: Cancelable(metadata="x"), TypeError, r"`metadata` must be a dict \(str keys\) or None, got 'x'"),
    ("metadata key", lambda: Cancelable(metadata={1: "a"}), TypeError, r"`metadata key` must be a str, got 1"),
    # -- factories ----------------------------------------------------------------------
    ("timeout negative", lambda: Cancelable.with_timeout(-1), ValueError,
     r"`timeout` must be a number of seconds >= 0 or a timedelta, got -1; use math.inf for no timeout"),
    ("timeout nan", lambda: Cancelable.with_timeout(math.nan), ValueError, r"`timeout` must be .* got nan"),
    ("timeout huge", lambda: Cancelable.with_timeout(10**400), ValueError, r"`timeout` must be .*fits a float, got .*401 digits"),
    ("timeout str", lambda: Cancelable.with_timeout("5"), TypeError, r"`timeout` must be .* got '5'; e.g. 30"),
    ("timeout bool", lambda: Cancelable.with_timeout(True), TypeError, r"`timeout` must be .* got True"),
    ("timedelta negative", lambda: Cancelable.with_timeout(timedelta(seconds=-1)), ValueError, r"`timeout` must be"),
    ("token type", lambda: Cancelable.with_token("t"), TypeError, r"`token` must be a CancelationToken, got 't'"),
    ("signal unknown", lambda: Cancelable.with_signal(12345), ValueError, r"`signals` must be valid signal numbers.*got 12345"),
    ("signal type", lambda: Cancelable.with_signal("SIGINT"), TypeError, r"`signals` must be signal numbers, got 'SIGINT'"),
    ("signal uncatchable", lambda: Cancelable.with_signal(signal.SIGKILL), ValueError, r"SIGKILL cannot be caught"),
    ("condition type", lambda: Cancelable.with_condition(5), TypeError, r"`condition` must be a callable taking no arguments"),
    ("condition needs args", lambda: Cancelable.with_condition(lambda x: x), TypeError,
     r"`condition` must be a callable taking no arguments, got .*; it requires x"),
    ("check_interval zero", lambda: Cancelable.with_condition(bool, check_interval=0), ValueError,
     r"`check_interval` must be a finite number of seconds > 0, got 0"),
    ("check_interval type", lambda: Cancelable.with_condition(bool, check_interval="1"), TypeError,
     r"`check_interval` must be a number of seconds, got '1'"),
    ("condition_name type", lambda: Cancelable.with_condition(bool, condition_name=5), TypeError, r"`condition_name` must be a str or None"),
    ("observable type", lambda: Cancelable.with_observable([1, 2]), TypeError, r"`observable` must be a reactivex Observable, got \[1, 2\]"),
    ("observable reason value", lambda: ObservableSource(reactivex.never(), reason="soon"), ValueError,
     r"`reason` must be a CancelationReason \(timeout, manual, .*\), got 'soon'; pass free text as message="),
    ("observable reason type", lambda: ObservableSource(reactivex.never(), reason=3), TypeError, r"`reason` must be a CancelationReason, got 3"),
    ("observable message", lambda: Cancelable.with_observable(reactivex.never(), message=5), TypeError, r"`message` must be a str or None"),
    ("combine type", lambda: Cancelable().combine(3), TypeError, r"`others\[0\]` must be a Cancelable, got 3"),
    ("add_source type", lambda: Cancelable().add_source(3), TypeError,
     r"`add_source\(source\)` must be a CancelationSource, a CancelationToken or a reactivex Observable, got 3"),
    # -- callbacks and cancelling ---------------------------------------------------------
    ("on_start", lambda: Cancelable().on_start(None), TypeError, r"`on_start callback` must be callable as callback\(context\)"),
    ("on_error", lambda: Cancelable().on_error("x"), TypeError, r"`on_error callback` must be callable as callback\(context, error\)"),
    ("on_progress", lambda: Cancelable().on_progress(3), TypeError, r"`on_progress callback` must be callable"),
    ("cancel_sync reason", lambda: Cancelable().cancel_sync("stop now"), ValueError, r"`reason` must be a CancelationReason.*'stop now'; pass free text as message="),
    ("cancel_sync message", lambda: Cancelable().cancel_sync(message=42), TypeError, r"`message` must be a str or None, got 42; pass text, e.g. message='42'"),
    ("cancel message", lambda: Cancelable().cancel(message=42), TypeError, r"`message` must be a str or None, got 42"),
    ("cancel reason type", lambda: Cancelable().cancel(3), TypeError, r"`reason` must be a CancelationReason, got 3"),
    # -- streams and threads ----------------------------------------------------------------
    ("stream source", lambda: Cancelable().stream(5), TypeError, r"`async_iter` must be an async iterable \(or an iterable\), got 5"),
    ("stream str source", lambda: Cancelable().stream("abc"), TypeError, r"`async_iter` must be an async iterable"),
    ("report_interval zero", lambda: Cancelable().stream(_items(), report_interval=0), ValueError, r"`report_interval` must be an int > 0, got 0"),
    ("report_interval type", lambda: Cancelable().stream(_items(), report_interval="x"), TypeError, r"`report_interval` must be an int > 0, got 'x'"),
    ("buffer_size", lambda: Cancelable().stream(_items(), buffer_size=0), ValueError, r"`buffer_size` must be an int > 0, got 0"),
    ("run_in_thread", lambda: Cancelable().run_in_thread(5), TypeError, r"`func` must be callable"),
    ("wrap", lambda: Cancelable().wrap(5), TypeError, r"`operation` must be callable as an async callable, got 5"),
    ("cancelable_stream token", lambda: cancelable_stream(_items(), token="t"), TypeError, r"`token` must be a CancelationToken or None"),
    ("cancelable_stream timeout", lambda: cancelable_stream(_items(), timeout=-1), ValueError, r"`timeout` must be"),
    ("cancelable_stream on_progress", lambda: cancelable_stream(_items(), on_progress=3), TypeError, r"`on_progress` must be callable"),
    ("observe type", lambda: observe(3), TypeError, r"`observable` must be a reactivex Observable, got 3"),
    ("observe maxsize", lambda: observe(reactivex.never(), maxsize=0), ValueError, r"`maxsize` must be an int > 0, got 0"),
    ("to_observable", lambda: to_observable(3), TypeError, r"`source` must be an async iterable"),
    ("terminal_progress op", lambda: terminal_progress(3), TypeError, r"`op` must be a Cancelable, got 3"),
    ("terminal_progress total", lambda: terminal_progress(Cancelable(), total=0), ValueError, r"`total` must be an int > 0, got 0"),
    # -- tokens -----------------------------------------------------------------------------
    ("token reason", lambda: CancelationToken().cancel_sync("x"), ValueError, r"`reason` must be a CancelationReason.*got 'x'"),
    ("token message", lambda: CancelationToken().cancel_sync(message=42), TypeError, r"`message` must be a str or None, got 42"),
    ("token callback", lambda: CancelationToken().register_callback(3), TypeError, r"`callback` must be callable as callback\(token\)"),
    ("link type", lambda: _linked.link("t"), TypeError, r"`token` must be a CancelationToken, got 't'"),
    ("link self", lambda: _linked.link(_linked), ValueError, r"`token` must be another token \(a token cannot be linked to itself\)"),
    # -- sources ----------------------------------------------------------------------------
    ("TimeoutSource", lambda: TimeoutSource(-1), ValueError, r"`timeout` must be"),
    ("AnyOfSource empty", lambda: AnyOfSource(), ValueError, r"At least one source is required: `sources` must be at least one value"),
    ("operator operand", lambda: TimeoutSource(1) | 3, TypeError, r"`right operand of \|` must be a CancelationSource"),
    ("SignalSource type", lambda: SignalSource("INT"), TypeError, r"^Signal must be an integer, got <class 'str'>: `signals` must be signal numbers"),
    ("TimeoutSource zero", lambda: TimeoutSource(0), ValueError, r"^Timeout must be positive, got 0: `timeout` must be a number of seconds > 0"),
    ("TimeoutSource timedelta", lambda: TimeoutSource(timedelta(0)), ValueError, r"^Timeout must be positive, got 0"),
    ("source reason", lambda: CancelationSource(5), TypeError, r"`reason` must be a CancelationReason or None, got 5"),
    ("ensure_cancelable", lambda: ensure_cancelable("op"), TypeError, r"`cancelable` must be a Cancelable or None, got 'op'"),
    ("AnyioBridge buffer", lambda: AnyioBridge(buffer_size=0), ValueError, r"`buffer_size` must be an int > 0, got 0"),
    ("cancelable_method timeout", lambda: cancelable_method(timeout=-1), ValueError, r"`timeout` must be"),
    ("ConditionSource args", lambda: ConditionSource(lambda a, b: a), TypeError, r"it requires a, b"),
    ("ParentSource", lambda: ParentSource(3), TypeError, r"`operation` must be a Cancelable, got 3"),
    ("fire reason", lambda: TimeoutSource(1).fire(reason="x"), ValueError, r"`reason` must be a CancelationReason"),
    ("source name", lambda: TimeoutSource(1, name=5), TypeError, r"`name` must be a str or None, got 5"),
    # -- registry ---------------------------------------------------------------------------
    ("register type", lambda: _registry.register("op"), TypeError, r"`operation` must be a Cancelable, got 'op'"),
    ("register ended", lambda: _registry.register(_finished()), ValueError, r"`operation` must be an operation that has not ended"),
    ("history limit", lambda: _registry.get_history(limit=-1), ValueError, r"`limit` must be an int >= 0, got -1"),
    ("history limit type", lambda: _registry.get_history(limit="3"), TypeError, r"`limit` must be an int >= 0, got '3'"),
    ("history since naive", lambda: _registry.get_history(since=_naive_now()), ValueError, r"`since` must be timezone-aware"),
    ("history since type", lambda: _registry.get_history(since="today"), TypeError, r"`since` must be a datetime or None"),
    ("list name_pattern", lambda: _registry.list_operations(name_pattern=3), TypeError, r"`name_pattern` must be a str or None, got 3"),
    ("list status", lambda: _registry.list_operations(status="running"), TypeError, r"`status` must be an OperationStatus or None, got 'running'"),
    ("list parent_id", lambda: _registry.list_operations(parent_id=5), TypeError, r"`parent_id` must be a str or None, got 5"),
    ("cancel_operation None", lambda: _registry.cancel_operation(None), TypeError, r"`operation_id` must be a str, got None; pass the operation's id"),
    ("cancel_operation op", lambda: _registry.cancel_operation(Cancelable()), TypeError, r"`operation_id` must be a str, got <Cancelable"),
    ("cancel_operation int", lambda: _registry.cancel_operation(42), TypeError, r"`operation_id` must be a str, got 42"),
    ("cancel_operation list", lambda: _registry.cancel_operation([]), TypeError, r"`operation_id` must be a str, got \[\]"),
    ("cancel_operation_sync", lambda: _registry.cancel_operation_sync(None), TypeError, r"`operation_id` must be a str, got None"),
    ("get_operation", lambda: _registry.get_operation_sync(5), TypeError, r"`operation_id` must be a str, got 5"),
    ("max_history", lambda: OperationRegistry(max_history=-2), ValueError, r"`max_history` must be an int >= 0, got -2"),
    ("older_than", lambda: _registry.cleanup_completed(older_than=5), TypeError, r"`older_than` must be a timedelta or None, got 5"),
    # -- decorators -------------------------------------------------------------------------
    ("decorate sync", lambda: cancelable()(lambda: None), TypeError, r"`@cancelable target` must be an async function \(async def\)"),
    ("decorator timeout", lambda: cancelable(timeout=-1), ValueError, r"`timeout` must be"),
    ("decorator token", lambda: cancelable_with_token("t"), TypeError, r"`token` must be a CancelationToken"),
    ("combine none", lambda: cancelable_combine(), ValueError, r"At least one cancelable must be provided: `cancelables`"),
    ("combine type", lambda: cancelable_combine(3), TypeError, r"`cancelables\[0\]` must be a Cancelable \(used as a template\), got 3"),
    ("decorator signal", lambda: cancelable_with_signal(99999), ValueError, r"`signals` must be valid signal numbers"),
    ("decorator no signal", lambda: cancelable_with_signal(), ValueError, r"`signals` must be at least one value"),
    ("decorator interval", lambda: cancelable_with_condition(bool, check_interval=0), ValueError, r"`check_interval` must be"),
    ("with_timeout coro", lambda: with_timeout(1, 5), TypeError, r"`coro` must be an awaitable, got 5; call the coroutine function"),
    ("with_cancelable", lambda: with_cancelable(3), TypeError, r"`cancel` must be a Cancelable, got 3"),
]


@pytest.mark.parametrize(("call", "exc", "pattern"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
async def test_bad_argument_raises_at_the_call(call: Callable[[], Any], exc: type[Exception], pattern: str) -> None:
    with pytest.raises(exc, match=pattern):
        result = call()
        if inspect.isawaitable(result):
            await result


def test_the_table_covers_both_kinds() -> None:
    kinds = {exc for _, _, exc, _ in CASES}
    assert kinds == {TypeError, ValueError}


async def test_calls_in_the_wrong_state_are_runtime_errors() -> None:
    op = Cancelable(name="idle")
    with pytest.raises(RuntimeError, match=r"shield\(\) on <Cancelable 'idle' pending>: only a running operation"):
        async with op.shield():
            pass  # pragma: no cover
    with pytest.raises(RuntimeError, match=r"report_progress\(\) on .*: only a running operation reports progress"):
        await op.report_progress("x")
    with pytest.raises(RuntimeError, match=r"was not entered: __aexit__ without a matching __aenter__"):
        await op.__aexit__(None, None, None)
    async with op:
        with pytest.raises(RuntimeError, match=r"add_source\(\) must be called before the operation is entered"):
            op.add_source(TimeoutSource(1))
    with pytest.raises(RuntimeError, match="has already been entered; an operation runs once"):
        async with op:
            pass  # pragma: no cover
    with pytest.raises(RuntimeError, match=r"report_progress\(\) on .*completed"):
        await op.report_progress("late")
    with pytest.raises(RuntimeError, match="iterate op.stream.*inside `async with op:`"):
        async for _ in Cancelable().stream(_items()):
            pass  # pragma: no cover


async def test_a_deadline_far_away_is_not_an_error() -> None:
    async with Cancelable.with_timeout(1e300) as op:
        await anyio.lowlevel.checkpoint()
    assert op.is_completed
