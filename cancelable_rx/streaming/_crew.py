"""The crew: the producer tasks of a concurrent stream operator, in a task group that a
background task owns.

A concurrent operator (``merge``, ``zip``, ``map(task_limit=...)``, ``flatmap``...) is an
async generator that runs in its *consumer's* task, between the consumer's own awaits.  It
must never hold a cancel scope or a task group across ``yield``: an error or a cancellation
of that group would cancel the consumer's own awaits and end the stream silently.  So the
generator never enters the task group.  A `Crew` owns it:

* the first `Crew.spawn` starts one **host task** outside the consumer's scopes (an
  asyncio task, or a trio system task) with a copy of the consumer's context variables;
  the host enters the task group and runs the producers in it;
* producers talk to the generator through an unbounded memory object stream of messages
  (`ITEM`, `END`, `FAIL`); the generator only awaits `Crew.get` between its yields, and
  the operator's demand protocol bounds what is queued (one item per source, at most
  ``task_limit`` results);
* an exception of a producer is sent as a `FAIL` message and raised by the generator in
  the consumer's task, unwrapped (never an ``ExceptionGroup``); a producer's cancellation
  is its own business;
* the generator's ``finally`` calls `Crew.aclose`: it cancels the task group and waits,
  shielded, until the host has ended, so every producer has ended and closed its source
  before the stream's ending goes on (completion, error, cancellation, ``break``/``aclose``).

`Pump` reads one source for the generator, one item per demand, like aiostream's
per-source ``anext`` tasks; it closes its source (shielded: the source's cleanup runs to
its end) whatever ends it.

Cancellation: the producers are not inside the consumer's cancel scopes.  A cancellation of
the consumer (an operation's timeout or token, an enclosing scope) reaches the generator
at `Crew.get`; unwinding runs `Crew.aclose`, which cancels the producers.  A source that
is itself cancelable (``cancelable_stream``, ``op.stream``) raises its typed error in the
producer; the generator re-raises it.

Thread-safety: a crew belongs to one event loop thread.
"""

from __future__ import annotations

import contextvars
import logging
import math
import sys
from collections.abc import AsyncIterable, Awaitable, Callable
from typing import Any, Final

import anyio
import anyio.abc
from aiostream.aiter_utils import AsyncIteratorContext
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from .._loop import get_running_loop

__all__ = ("END", "FAIL", "ITEM", "Crew", "Message", "Pump", "open_source")

logger = logging.getLogger("cancelable_rx")

ITEM: Final = 0
END: Final = 1
FAIL: Final = 2
Message = tuple[int, Any, Any]
"""``(kind, key, value)``: an item of source ``key``; the end of ``key`` (``value`` may
carry a count); an exception (``value``) of a producer."""

_background: set[Any] = set()  # strong references to the asyncio host tasks


def _spawn_host(fn: Callable[[], Awaitable[None]], context: contextvars.Context) -> None:
    """Start ``fn()`` as a task of the running loop, outside every scope of the caller
    (called on the loop thread; trio is reached only when it is the running backend)."""
    loop = get_running_loop()
    if loop is not None:
        task: Any = loop.create_task(fn(), name="cancelable_rx.ops crew", context=context)  # type: ignore[arg-type]
        _background.add(task)
        task.add_done_callback(_background.discard)
    else:
        sys.modules["trio"].lowlevel.spawn_system_task(fn, name="cancelable_rx.ops crew", context=context)


async def open_source(source: AsyncIterable[Any]) -> tuple[Callable[[], Awaitable[Any]], Callable[[], Awaitable[Any]] | None]:
    """``(anext, aclose)`` of an async iterable; an aiostream ``Streamer`` is entered (so it
    never warns that it is iterated outside of its context)."""
    it: Any = source.__aiter__()
    if isinstance(it, AsyncIteratorContext):
        await it.__aenter__()
    return it.__anext__, getattr(it, "aclose", None)


async def close_shielded(aclose: Callable[[], Awaitable[Any]] | None) -> None:
    """Close a source, shielded: its own cleanup runs to its end even while cancelled."""
    if aclose is not None:
        with anyio.CancelScope(shield=True):
            await aclose()


class Crew:
    """Producer tasks of one operator generator (see the module docstring).

    Cancellation: `get` is a checkpoint (unless a message is ready); `aclose` shields its
    wait for the producers.
    Thread-safety: the event loop thread only.
    """

    __slots__ = ("_send", "_recv", "_tg", "_queued", "_closing", "_done", "_cancelled", "_owned")

    def __init__(self) -> None:
        self._send, self._recv = anyio.create_memory_object_stream[Message](math.inf)
        self._owned: list[Any] = []
        self._tg: anyio.abc.TaskGroup | None = None
        self._queued: list[tuple[Callable[..., Awaitable[Any]], tuple[Any, ...]]] | None = []
        self._closing = False
        self._done: anyio.Event | None = None
        self._cancelled = anyio.get_cancelled_exc_class()

    def channel(self, capacity: float) -> tuple[MemoryObjectSendStream[Any], MemoryObjectReceiveStream[Any]]:
        """A memory object stream between the generator and its producers, closed by
        `aclose` (after every producer has ended)."""
        pair = anyio.create_memory_object_stream[Any](capacity)
        self._owned.extend(pair)
        return pair

    # -- producer side ---------------------------------------------------------------------

    def put(self, message: Message) -> None:
        """Queue a message for the generator (never blocks)."""
        self._send.send_nowait(message)

    def spawn(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """Run ``await fn(*args)`` in the crew's task group (started on first use).  An
        exception it raises reaches the generator as a `FAIL` message."""
        if self._closing:
            return
        tg = self._tg
        if tg is not None:
            tg.start_soon(self._guard, fn, args)
            return
        queued = self._queued
        assert queued is not None
        queued.append((fn, args))
        if self._done is None:
            self._done = anyio.Event()
            _spawn_host(self._host, contextvars.copy_context())

    async def _host(self) -> None:
        try:
            async with anyio.create_task_group() as tg:
                if not self._closing:
                    self._tg = tg
                    queued, self._queued = self._queued, None
                    for fn, args in queued or ():
                        tg.start_soon(self._guard, fn, args)
                    await anyio.sleep_forever()  # until aclose() cancels the group
        except Exception:  # pragma: no cover - producers report through _guard
            logger.exception("cancelable_rx: a stream operator's producer group failed")
        finally:
            self._tg = None
            assert self._done is not None
            self._done.set()

    async def _guard(self, fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...]) -> None:
        try:
            await fn(*args)
        except self._cancelled:
            raise
        except BaseException as exc:  # reported to the consumer, raised there unwrapped
            try:
                self._send.send_nowait((FAIL, None, exc))
            except anyio.ClosedResourceError:  # pragma: no cover - only after aclose()
                logger.exception("cancelable_rx: a stream operator's producer failed after the stream ended")

    # -- generator side --------------------------------------------------------------------

    async def get(self) -> Message:
        """The next message (waits for one)."""
        recv = self._recv
        try:
            return recv.receive_nowait()
        except anyio.WouldBlock:
            return await recv.receive()

    def pump(self, key: Any, source: AsyncIterable[Any], scoped: bool = False) -> Pump:
        """Start reading ``source``: its first item is fetched at once, each next one after
        `Pump.more`.  ``scoped`` gives the pump a cancel scope of its own (`Pump.stop`)."""
        pump = Pump(self, key, scoped, self.channel(math.inf))
        self.spawn(pump.run, source)
        return pump

    async def aclose(self, ending: BaseException | None = None) -> None:
        """Cancel every producer and wait (shielded) until all have ended and closed their
        sources.  ``ending`` is the exception ending the generator, if any: a failure of the
        teardown itself (a source whose cleanup raised) is raised when the stream ended
        normally or by ``aclose``/``break``, and logged otherwise (never masking an error or
        a cancellation)."""
        self._closing = True
        done = self._done
        if done is not None:
            tg = self._tg
            if tg is not None:
                tg.cancel_scope.cancel()
            if not done.is_set():
                with anyio.CancelScope(shield=True):
                    await done.wait()
        failure = None
        recv = self._recv
        while True:
            try:
                kind, _, value = recv.receive_nowait()
            except (anyio.WouldBlock, anyio.EndOfStream):
                break
            if kind == FAIL and failure is None:
                failure = value
        self._send.close()
        recv.close()
        for stream in self._owned:
            stream.close()
        if failure is not None:
            if ending is None or isinstance(ending, GeneratorExit):
                raise failure
            logger.error("cancelable_rx: a source failed while its stream was closing", exc_info=failure)


class Pump:
    """Reads one source for a generator: the first item at once, then one item per `more`.

    Messages: ``(ITEM, key, item)`` per item, ``(END, key, None)`` at the end, ``(FAIL,
    key, exc)`` when the source raises.  The source is closed (shielded) whatever ends the pump.
    """

    __slots__ = ("_crew", "key", "_tx", "_rx", "_scope", "_finished")

    def __init__(self, crew: Crew, key: Any, scoped: bool, demand: tuple[Any, Any]) -> None:
        self._crew = crew
        self.key = key
        self._tx, self._rx = demand
        self._scope = anyio.CancelScope() if scoped else None
        self._finished = anyio.Event() if scoped else None

    def more(self) -> None:
        """Ask for the next item (the consumer took the last one)."""
        self._tx.send_nowait(None)

    async def run(self, source: AsyncIterable[Any]) -> None:
        scope = self._scope
        try:
            if scope is None:
                await self._read(source)
            else:
                with scope:
                    await self._read(source)
        finally:
            if self._finished is not None:
                self._finished.set()

    async def _read(self, source: AsyncIterable[Any]) -> None:
        aclose = None
        try:
            anext, aclose = await open_source(source)
            put = self._crew.put
            key = self.key
            receive = self._rx.receive
            cancelled = self._crew._cancelled
            while True:
                try:
                    item = await anext()
                except StopAsyncIteration:
                    put((END, key, None))
                    return
                except cancelled:
                    raise
                except BaseException as exc:  # keyed: a superseded source's error is dropped
                    put((FAIL, key, exc))
                    return
                put((ITEM, key, item))
                await receive()
        finally:
            await close_shielded(aclose)

    async def stop(self) -> None:
        """Cancel a scoped pump and wait until it has closed its source."""
        assert self._scope is not None and self._finished is not None
        self._scope.cancel()
        await self._finished.wait()
