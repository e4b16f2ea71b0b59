"""An interrupt (KeyboardInterrupt, as Ctrl-C delivers it) at any point of the paths that
take a lock never leaves that lock held, on asyncio and trio.

Python delivers a pending signal when a call returns (it checks for one at the end of the
call instruction), so Ctrl-C can raise right after any call in the library.  A lock taken
with ``acquire()`` and released in a ``finally`` is held for a moment outside the ``try``
(right after ``acquire()`` returns); an interrupt there would leave it held, and every later
cancel (or registered exit) in the process would wait for it forever.  Here a trace hook
raises ``KeyboardInterrupt`` after each call in turn of each such path (at the instruction
that follows it, which is where the interpreter reports it); afterwards the lock must be
free, the engine's count of deciding threads back to 0, and the next use must work.
"""

from __future__ import annotations

import dis
import sys
import threading
from collections.abc import Callable
from types import CodeType, FrameType
from typing import Any

import anyio
import pytest

from cancelable_rx import Cancelable, CancelationToken, ManualCancelation, OperationRegistry
from cancelable_rx import _operation as engine
from cancelable_rx import _token as tokens

Tracer = Callable[[FrameType, str, Any], Any]


def _after_calls(fn: Callable[..., Any]) -> list[int]:
    """The offsets of the instructions that follow a call in ``fn``: where an interrupt
    delivered as that call returns is raised."""
    code: CodeType = fn.__code__  # type: ignore[attr-defined]
    ops = list(dis.get_instructions(code))
    return [nxt.offset for ins, nxt in zip(ops, ops[1:], strict=False) if ins.opname in ("CALL", "CALL_FUNCTION_EX")]


def _interrupt_at(code: CodeType, offset: int) -> Tracer:
    """A tracer that raises KeyboardInterrupt once, when the instruction at ``offset`` of
    ``code`` is about to run."""
    fired = False

    def local(frame: FrameType, event: str, arg: Any) -> Tracer | None:
        nonlocal fired
        frame.f_trace_opcodes = True
        if event == "opcode" and frame.f_lasti == offset and not fired:
            fired = True
            raise KeyboardInterrupt(f"offset {offset}")
        return local

    def tracer(frame: FrameType, event: str, arg: Any) -> Tracer | None:
        if frame.f_code is code and not fired:
            frame.f_trace_opcodes = True
            return local
        return None

    return tracer


def _free(lock: Any, what: str) -> None:
    """Fail if ``lock`` is held (releasing it first, so the rest of the suite cannot hang).
    An RLock (the registry's) can only be held here by this thread."""
    if hasattr(lock, "locked"):
        held = lock.locked()
        if held:
            lock.release()
    else:
        held = lock._is_owned()
        while lock._is_owned():
            lock.release()
    if held:
        pytest.fail(f"{what} was left held")


def _cases(fn: Callable[..., Any]) -> list[Any]:
    return [pytest.param(offset, id=f"at{offset}") for offset in _after_calls(fn)]


@pytest.mark.parametrize("offset", _cases(tokens.CancelationToken._set))
def test_a_token_cancel_interrupted_after_any_call_leaves_its_lock_free(offset: int) -> None:
    token = CancelationToken()
    sys.settrace(_interrupt_at(tokens.CancelationToken._set.__code__, offset))
    try:
        token.cancel_sync()
    except KeyboardInterrupt:
        pass
    finally:
        sys.settrace(None)
    _free(token._lock, "the token's lock")
    token.cancel_sync()
    assert token.is_cancelled


def _interrupt_the_engine(path: Callable[..., Any], offset: int, backend: str, call: Callable[[Cancelable], Any]) -> None:
    """Run ``call(op)`` inside a block with an interrupt raised at ``offset`` of ``path``;
    then the engine's lock must be free, its deciding count 0, and a cancel must work."""

    async def main() -> None:
        async with Cancelable() as op:
            sys.settrace(_interrupt_at(path.__code__, offset))  # type: ignore[attr-defined]
            try:
                call(op)
            finally:
                sys.settrace(None)
            await anyio.sleep(5)

    try:
        anyio.run(main, backend=backend)
    except (KeyboardInterrupt, ManualCancelation, RuntimeError):
        pass
    _free(engine._LOCK, "the engine's lock")
    deciding, engine._deciding = engine._deciding, 0
    assert deciding == 0, "the engine's count of deciding threads was left raised"
    with pytest.raises(ManualCancelation):  # the next operation cancels as usual
        anyio.run(_cancelled_block, backend=backend)


async def _cancelled_block() -> None:
    async with Cancelable() as op:
        op.cancel_sync()
        await anyio.sleep(5)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@pytest.mark.parametrize("offset", _cases(engine.Operation._fire))
def test_an_operation_cancel_interrupted_after_any_call_leaves_the_engine_lock_free(offset: int, backend: str) -> None:
    _interrupt_the_engine(engine.Operation._fire, offset, backend, lambda op: op.cancel_sync())


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@pytest.mark.parametrize("offset", _cases(OperationRegistry._on_exit))
def test_a_registered_exit_interrupted_after_any_call_leaves_the_registry_lock_free(offset: int, backend: str) -> None:
    registry = OperationRegistry()

    async def main() -> None:
        op = Cancelable()
        await registry.register(op)
        async with op:
            sys.settrace(_interrupt_at(OperationRegistry._on_exit.__code__, offset))
        sys.settrace(None)

    try:
        anyio.run(main, backend=backend)
    except KeyboardInterrupt:
        pass
    finally:
        sys.settrace(None)
    _free(registry._lock, "the registry's lock")
    done = threading.Event()
    threading.Thread(target=lambda: (registry.get_statistics_sync(), done.set()), daemon=True).start()
    assert done.wait(5)  # a reader from another thread gets the lock


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@pytest.mark.parametrize("offset", _cases(engine.Operation._fail))
def test_a_failing_source_interrupted_after_any_call_leaves_the_engine_lock_free(offset: int, backend: str) -> None:
    # (what a source that cannot go on watching calls)
    _interrupt_the_engine(engine.Operation._fail, offset, backend, lambda op: op._fail(RuntimeError("the source failed")))
