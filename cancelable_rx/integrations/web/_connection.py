"""One HTTP request or WebSocket connection seen by the middleware: its operation, its
disconnect source, and the ``receive``/``send`` wrappers that observe the client.

How a disconnect is observed (and why the body always reaches the app):

* **The app's own ``receive``.**  Every message the app receives passes through
  `Connection.receive`; an ``http.disconnect`` / ``websocket.disconnect`` seen there fires
  the connection's `DisconnectSource` (reason ``DISCONNECT``) and is then handed to the app
  unchanged, so the app's own handling (Starlette's ``ClientDisconnect``,
  ``WebSocketDisconnect``) still happens.
* **The app's own ``send``.**  A server that follows ASGI 2.4 raises an ``OSError`` from
  ``send`` once the client has gone; that fires the source too (and is re-raised).
* **A watcher, for HTTP, once the body is complete.**  A request whose body the app has
  fully received (the last ``http.request`` message, ``more_body`` false), or whose HTTP/1
  framing says it has none (no ``Content-Length`` or ``0``, no ``Transfer-Encoding``), has
  no message left but ``http.disconnect``.  Only then a single watcher task reads
  ``receive`` for it; from that moment the app's ``receive`` calls are served by the
  watcher (the empty body message of a request without body is read by the watcher and
  handed to the app unchanged), so the server's ``receive`` never has two readers and no
  message is lost.  An ``http.disconnect`` that arrives after the response is complete is
  the end of the exchange, not a client disconnect, and fires nothing.

What a request costs (asyncio; the middleware's budget is a few microseconds): no task and
no timer of its own (the watcher of a request that outlives `WATCH_DELAY` is started by the
loop's `Sweeper`, one timer for all requests); a ``send`` that completes without
suspending (a small response on uvicorn) runs without a cancel scope, since nothing can
interrupt it (see `Connection.send`); and the connection lets go of the server's
``receive``/``send`` when the exchange ends (`Connection.release`), so the request's
objects are freed at once instead of by the garbage collector (the ASGI scope holds the
connection, the server's ``send`` holds the scope).

Thread-safety: loop thread only (the middleware's task and the watcher).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import types
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Generator, MutableMapping
from typing import TYPE_CHECKING, Any, Final

import anyio
import anyio.lowlevel

from cancelable_rx import Cancelable, CancelationReason, CancelationSource, SourceHost

if TYPE_CHECKING:
    from cancelable_rx.sources.base import Disarm

__all__ = (
    "SCOPE_KEY",
    "SEND_GRACE",
    "WATCH_DELAY",
    "Connection",
    "Sweeper",
    "DisconnectSource",
    "ResponseCancelled",
    "Message",
    "Receive",
    "Scope",
    "Send",
    "current_connection",
    "ended_receive",
    "ended_send",
)

logger = logging.getLogger("cancelable_rx.integrations.web")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

SCOPE_KEY: Final = "cancelable_rx.connection"
"""Where the middleware keeps the `Connection` in the ASGI scope."""

_get_running_loop = asyncio._get_running_loop  # None under trio (C-level, cheap)
_CoroutineType: Final = types.CoroutineType
_SENT: Final = object()
_SCOPE_CLASSES: dict[bool, Any] = {}


def _shield_class() -> Any:
    """The running backend's concrete cancel-scope class (``anyio.CancelScope(...)`` looks
    the backend up on every call; its concrete class can be called directly)."""
    on_asyncio = _get_running_loop() is not None
    cls = _SCOPE_CLASSES.get(on_asyncio)
    if cls is None:
        cls = _SCOPE_CLASSES[on_asyncio] = type(anyio.CancelScope())
    return cls

current_connection: contextvars.ContextVar[Connection | None] = contextvars.ContextVar(
    "cancelable_rx_web_connection", default=None
)
"""The connection the current task serves (set by the middleware around the app)."""


class ResponseCancelled(Exception):
    """Raised by the wrapped ``send`` when the app starts a response for a request whose
    operation is already cancelled (its deadline passed while a worker thread ran, say):
    the middleware answers with the cancelled status instead (504, 499...)."""


class DisconnectSource(CancelationSource):
    """Fires (reason ``DISCONNECT``) when the connection's client disconnects.

    The middleware fires it from the wrapped ``receive``/``send``; for HTTP it also starts
    the watcher as the operation's background work (see the module docstring).
    """

    reason = CancelationReason.DISCONNECT

    def __init__(self, connection: Connection) -> None:
        super().__init__(name="client_disconnect")
        self._connection = connection

    def default_message(self) -> str:
        return "the client disconnected"


class HttpDisconnectSource(DisconnectSource):
    """The HTTP flavour: arming starts the watcher (background work of the operation)."""

    needs_background = True

    def on_arm(self, host: SourceHost) -> Disarm | None:
        host.start_soon(self._connection.watch)
        return None


WATCH_DELAY: Final = 0.005
"""asyncio: a request's disconnect watcher starts at most `WATCH_DELAY` seconds after the
request (between half of it and all of it; see `Sweeper`).  A request answered sooner never
pays for a task; a disconnect early in a request whose app does not call ``receive`` is seen
when the watcher starts."""
_SWEEP_PERIOD: Final = WATCH_DELAY / 2
SEND_GRACE: Final = 1.0
"""How long after the operation's deadline a blocked ``send`` may still run (seconds)."""


class Sweeper:
    """asyncio: starts the disconnect watcher of the requests that outlive `WATCH_DELAY`,
    for every request of one event loop with a single loop timer.

    A request is appended to ``young`` (no timer, no task of its own).  Every half
    `WATCH_DELAY` the timer moves ``young`` to ``old`` and starts a watcher for each request
    of the previous ``old`` that is still running: those were registered one to two periods
    ago.  The timer runs only while requests are registered.  Loop thread only.
    """

    __slots__ = ("young", "old", "timer", "_context", "__weakref__")

    def __init__(self) -> None:
        self.young: list[Connection] = []
        self.old: list[Connection] = []
        self.timer: asyncio.TimerHandle | None = None
        self._context = contextvars.Context()  # empty: see start()

    def add(self, conn: Connection, loop: asyncio.AbstractEventLoop) -> None:
        """Register ``conn`` (a request that has just started)."""
        self.young.append(conn)
        if self.timer is None:
            self.start(loop)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start the timer (requests are registered and it is not running).  It runs in an
        empty context of its own: the context of the request that started it would keep that
        request's objects alive (and the watchers it starts need none)."""
        self.timer = loop.call_later(_SWEEP_PERIOD, self._sweep, loop, context=self._context)

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        due = self.old
        self.old = self.young
        self.young = []
        for conn in due:
            if not conn.ended:
                conn._spawn_watcher(loop)
        self.timer = loop.call_later(_SWEEP_PERIOD, self._sweep, loop, context=self._context) if self.old else None


_sweepers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Sweeper] = weakref.WeakKeyDictionary()
_last_sweeper: tuple[asyncio.AbstractEventLoop | None, Sweeper | None] = (None, None)


def _sweeper_of(loop: asyncio.AbstractEventLoop) -> Sweeper:
    """The `Sweeper` of ``loop`` (the last one used is cached: one loop is the common case)."""
    global _last_sweeper
    last = _last_sweeper
    if last[0] is loop:
        return last[1]  # type: ignore[return-value]
    sweeper = _sweepers.get(loop)
    if sweeper is None:
        sweeper = _sweepers[loop] = Sweeper()
    _last_sweeper = (loop, sweeper)
    return sweeper


@types.coroutine
def _resume(coro: Coroutine[Any, Any, Any], step: Any) -> Generator[Any, Any, Any]:
    """Go on with ``coro``, whose first step (run by hand) yielded ``step``: ``yield from``
    written out, so the rest of it can run inside a scope entered after that first step."""
    while True:
        try:
            value = yield step
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as exc:  # thrown into the task (a cancellation): hand it on
            try:
                step = coro.throw(exc)
            except StopIteration as stop:
                return stop.value
        else:
            try:
                step = coro.send(value)
            except StopIteration as stop:
                return stop.value


async def ended_receive() -> Message:
    """The server's ``receive`` once the exchange has ended (see `Connection.release`)."""
    return {"type": "http.disconnect"}


async def ended_send(message: Message) -> None:
    """The server's ``send`` once the exchange has ended (see `Connection.release`)."""
    raise RuntimeError(f"cannot send {message.get('type')!r}: the request has ended")


class Connection:
    """The middleware's state for one HTTP request or WebSocket connection.

    ``operation`` is the connection's operation (cancelled with reason ``DISCONNECT`` when
    the client leaves, ``TIMEOUT`` when its deadline passes); ``is_websocket`` tells the
    kind; ``response_started`` / ``response_done`` follow what the app sent; ``statuses``
    are the middleware's status codes (see `RequestCancelationMiddleware`); ``ended`` turns
    True when the app has returned.

    The watcher (HTTP only) starts at most `WATCH_DELAY` after the request on asyncio (the
    loop's `Sweeper`: a request served faster never pays for a task or a timer), and as
    background work of the operation on trio.
    """

    __slots__ = (
        "operation",
        "is_websocket",
        "source",
        "response_started",
        "response_done",
        "disconnected",
        "ended",
        "closers",
        "statuses",
        "_receive",
        "_send",
        "_eager",
        "_watching",
        "_body_done",
        "_held",
        "_final",
        "_wake",
        "_reading",
        "_watch_stopped",
        "_task",
    )

    def __init__(
        self,
        receive: Receive,
        send: Send,
        operation: Cancelable,
        statuses: dict[str, int] | None = None,
        websocket: bool = False,
        no_body: bool = False,
    ) -> None:
        """``no_body``: HTTP/1 framing says the request carries no body (no
        ``Content-Length`` or ``0``, no ``Transfer-Encoding``): it is watched from the start;
        a request with a body once the app has received all of it."""
        self.operation = operation
        self.statuses = statuses  # the middleware's status codes
        self.is_websocket = websocket
        self.response_started = False
        self.response_done = False
        self.disconnected = False
        self.ended = False
        self.closers: list[Callable[[], Awaitable[object]]] | None = None
        self._receive = receive
        self._send = send
        self._held: Message | None = None
        self._final: Message | None = None
        self._wake: anyio.Event | None = None
        self._reading = False
        self._watch_stopped = False
        self._task: asyncio.Task[None] | None = None
        self.source: DisconnectSource | None = None
        loop = _get_running_loop()
        self._eager = loop is not None  # asyncio: see send()
        if websocket:
            self._watching = False
            self._body_done: anyio.Event | None = None
            return
        self._watching = no_body
        self._body_done = None if no_body else anyio.Event()
        if loop is not None:
            last = _last_sweeper  # _sweeper_of(), inlined: once per request
            sweeper = last[1] if last[0] is loop else _sweeper_of(loop)
            sweeper.young.append(self)  # type: ignore[union-attr]
            if sweeper.timer is None:  # type: ignore[union-attr]
                sweeper.start(loop)  # type: ignore[union-attr]
        else:  # trio: the watcher is background work of the operation
            source = self.source = HttpDisconnectSource(self)
            operation.add_source(source)

    # -- disconnects -------------------------------------------------------------------------

    def client_left(self, how: str) -> None:
        """Record that the client disconnected: the operation is cancelled (``DISCONNECT``)."""
        if self.disconnected:
            return
        self.disconnected = True
        message = f"the client disconnected ({how})"
        if self.source is not None:
            self.source.fire(message)
        else:
            self.operation.cancel_sync(CancelationReason.DISCONNECT, message)

    # -- receive -------------------------------------------------------------------------

    async def receive(self) -> Message:
        """The app's ``receive``: the server's messages, unchanged and in order."""
        if self._watching:
            return await self._shared_receive()
        message = await self._receive()
        kind = message["type"]
        if kind == "http.request":
            if not message.get("more_body", False) and self._body_done is not None:
                # The whole body is in: from now on only http.disconnect can come.
                self._watching = True
                self._body_done.set()
        elif kind == "http.disconnect":
            if not self.response_done:
                self.client_left("http.disconnect received")
        elif kind == "websocket.disconnect":
            self.client_left(f"websocket.disconnect received, code {message.get('code', 1005)}")
        return message

    def _wake_all(self) -> None:
        wake = self._wake
        if wake is not None:
            self._wake = None
            wake.set()

    async def _wait(self) -> None:
        wake = self._wake
        if wake is None:
            wake = self._wake = anyio.Event()
        await wake.wait()

    async def _read(self) -> Message:
        """One read of the server's ``receive`` by whoever reads now (never two at once)."""
        self._reading = True
        try:
            return await self._receive()
        finally:
            self._reading = False
            self._wake_all()

    def _classify(self, message: Message, by: str) -> None:
        """A message read once the body is complete: a disconnect is final (sticky)."""
        if message["type"] == "http.disconnect":
            if not self.response_done:
                self.client_left(f"http.disconnect received by the {by}")
            self._final = message

    async def _shared_receive(self) -> Message:
        """The app's ``receive`` once the body is complete, shared with the watcher: what the
        watcher read first, else a read of its own.  Returns without awaiting when a message
        is there (``Request.is_disconnected`` receives inside a cancelled scope)."""
        while True:
            held = self._held
            if held is not None:
                self._held = None
                return held
            final = self._final
            if final is not None:
                return final
            if not self._reading:
                message = await self._read()
                self._classify(message, "app")
                return message
            await self._wait()

    async def watch(self) -> None:
        """The watcher: reads ``receive`` once the body is complete, and only when the app
        does not; a message it reads is served to the app's next ``receive``."""
        body_done = self._body_done
        if body_done is not None:
            await body_done.wait()
        try:
            while self._final is None and not self._watch_stopped:
                if self._reading or self._held is not None and self._held.get("more_body", False):
                    await self._wait()
                    continue
                message = await self._read()
                if message["type"] == "http.request":
                    self._held = message
                    if message.get("more_body", False):  # a body after all: the app reads it
                        self._watch_stopped = True
                        self._watching = False
                    continue
                self._classify(message, "watcher")
                if self._final is None:  # not a disconnect: hand it over and stop
                    self._held = message
                    return
        except anyio.get_cancelled_exc_class():
            raise
        except Exception as exc:  # the server's receive failed: stop watching
            logger.debug("cancelable_rx: receive failed while watching for a disconnect: %r", exc)
            self._watch_stopped = True
        finally:
            self._wake_all()

    def _spawn_watcher(self, loop: asyncio.AbstractEventLoop) -> None:
        """asyncio: the request outlived `WATCH_DELAY` (see `Sweeper`): start the watcher."""
        if self._task is None and self.operation.is_running:
            self._task = loop.create_task(self._run_watcher())

    async def _run_watcher(self) -> None:
        try:
            await self.watch()
        except BaseException as exc:  # a task of our own: nothing may escape it
            if not isinstance(exc, asyncio.CancelledError):
                logger.exception("cancelable_rx: the disconnect watcher failed")

    # -- send -------------------------------------------------------------------------------

    async def send(self, message: Message) -> None:
        """The app's ``send``: follows the response's progress; an ``OSError`` (ASGI 2.4's
        "the client has gone") fires the disconnect and is re-raised.  A response started
        after the operation was cancelled is refused (`ResponseCancelled`).

        Cancellation: the server's ``send`` runs shielded (ASGI servers do not promise that
        an interrupted ``send`` leaves their protocol state consistent: hypercorn's can
        crash the connection), until `SEND_GRACE` seconds after the operation's deadline.
        A cancellation that is pending once the server's ``send`` is done lands right there
        (a checkpoint in the app's task), unless the response is complete: a body streamed
        in a loop whose only checkpoints are its sends still stops.  On asyncio the first
        step of the server's ``send`` runs before the shield is entered: a task is only ever
        interrupted where it suspends, so a ``send`` that completes without suspending (the
        common case) needs no scope, and one that suspends goes on inside the shield.  (A
        server ``send`` wrapped by an outer middleware that holds a cancel scope open while
        it suspends does not fit this; the middleware is meant to sit next to the server.)
        """
        op = self.operation
        kind = message["type"]
        if kind == "http.response.body":
            if not message.get("more_body", False):
                self.response_done = True
        elif kind == "http.response.start":
            if op.is_cancelled:  # e.g. the deadline passed in a worker thread
                raise ResponseCancelled(f"not sending a response for a cancelled request ({op.cancel_reason})")
            self.response_started = True
        elif kind == "websocket.accept":
            self.response_started = True
        elif kind == "websocket.close" or kind == "websocket.http.response.start":
            self.response_started = True
            self.response_done = True
        step: Any = None  # what the server's send suspended on (_SENT: it did not)
        try:
            if self._eager:
                sending = self._send(message)
                if type(sending) is _CoroutineType:
                    try:
                        step = sending.send(None)
                    except StopIteration:
                        step = _SENT  # done without suspending: nothing could interrupt it
                    if step is not _SENT:
                        try:
                            scope = _shield_class()(shield=True, deadline=op.deadline + SEND_GRACE)
                        except BaseException:
                            sending.close()
                            raise
                        with scope:
                            await _resume(sending, step)
                else:  # another awaitable: awaited as a whole
                    with _shield_class()(shield=True, deadline=op.deadline + SEND_GRACE):
                        await sending
            else:
                with _shield_class()(shield=True, deadline=op.deadline + SEND_GRACE):
                    await self._send(message)
        except OSError as exc:
            self.client_left(f"sending {kind} failed: {type(exc).__name__}")
            raise
        if self.response_done or step is _SENT and kind == "http.response.start":
            return  # complete; or a start checked just before and sent without suspending
        if op.is_cancelled:
            await anyio.lowlevel.checkpoint()  # the pending cancellation lands here

    async def answer(self, *messages: Message) -> None:
        """Send the middleware's own answer (after the operation ended): the server's
        ``send``, shielded; an ``OSError`` (the client is gone) ends it quietly."""
        try:
            with anyio.CancelScope(shield=True):
                for message in messages:
                    await self._send(message)
        except OSError:
            pass
        self.response_started = self.response_done = True

    # -- the end --------------------------------------------------------------------------

    def on_close(self, fn: Callable[[], Awaitable[object]]) -> None:
        """Run ``await fn()`` when the connection ends (shielded; errors logged): streams
        that a response left suspended are closed there."""
        closers = self.closers
        if closers is None:
            closers = self.closers = []
        closers.append(fn)

    async def close(self) -> None:
        """Stop the watcher; run the closers (newest first), shielded from cancellation.
        ``ended`` is set first: no watcher starts after this."""
        self.ended = True
        task = self._task
        if task is not None:
            self._task = None
            if not task.done():
                task.cancel()
                with anyio.CancelScope(shield=True):
                    await asyncio.wait((task,))
        closers = self.closers
        if not closers:
            return
        self.closers = None
        with anyio.CancelScope(shield=True):
            for fn in reversed(closers):
                try:
                    await fn()
                except Exception:
                    logger.exception("cancelable_rx: closing a response stream failed")

    def release(self) -> None:
        """The exchange has ended: let go of the server's ``receive`` and ``send`` (they
        hold the ASGI scope, which holds this connection: a cycle only the garbage collector
        would free).  A late ``send`` raises ``RuntimeError``; a late ``receive`` returns a
        disconnect.  (The middleware inlines this.)"""
        self.ended = True
        self._receive = ended_receive
        self._send = ended_send
