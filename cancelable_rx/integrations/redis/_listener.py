"""The listening half of a link: ONE pub/sub connection shared by every token of a loop
that listens to one endpoint, and the watches of those tokens.

Listening follows the rule "cancellation is state": a token is registered (a `Watch`),
the namespace's channel pattern is subscribed (confirmed by the server), and only *then*
the token's key is read, so a cancel written after the read is announced to a
subscription that exists, and one written before it is in the key.  After every
reconnect the pattern is subscribed again and every watched key is read again; a
periodic re-read (every ``interval`` seconds, the smallest of the watching tokens') backs
both up, and pings the pub/sub connection to notice one that died silently.

One pattern per namespace (never per token); a watch is dropped when its token is
cancelled, closed or collected.  Everything runs on the link's loop.

Reading (`Reader`): the announcement of a cancel is handled in the loop callback that
receives its bytes, not in a task that callback wakes: redis-py's own reader (the
connection's ``read_response``) runs as a coroutine that this module steps itself, from
the stream's ``feed_data``.  A cancel announced by Redis thus cancels the listening
operations one loop iteration after its bytes arrive (the operations' tasks run in the
next one), as soon as a raw subscriber would see the message, and the watches'
bookkeeping is left to the iteration after.  Whatever else that coroutine waits for
wakes it through the future's callback, as a task would be woken.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import weakref
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

import redis.asyncio
from redis.exceptions import ConnectionError as RedisConnectionError

from ._config import Endpoint, pattern_of, token_channel, token_key
from ._models import CancelPayload, parse

__all__ = ("DEFAULT_INTERVAL", "Listener", "Owner", "Watch", "Watcher")

logger = logging.getLogger("cancelable_rx.redis")
T = TypeVar("T")

DEFAULT_INTERVAL = 5.0
"""Seconds between two re-reads when no token asked for another interval."""
_MAX_BATCH = 500  # keys per MGET of a re-read


class Watcher(Protocol):
    """What a listener needs from a listening token (a `DistributedToken`)."""

    def _deliver(self, payload: CancelPayload) -> None: ...

    def _detach(self, link: Any) -> None: ...


class Owner(Protocol):
    """What a listener needs from its link: the command side and the link's life."""

    endpoint: Endpoint
    closed: bool
    slots: asyncio.Semaphore
    client: redis.asyncio.Redis

    async def run(self, fn: Callable[[redis.asyncio.Redis], Awaitable[T]], budget: float) -> T: ...

    def release(self) -> None: ...

    def _spawn(self, coro: Awaitable[Any]) -> None: ...


class Watch:
    """One token listening on a link: where, how often to re-read, and a weak reference to it."""

    __slots__ = ("serial", "namespace", "name", "interval", "ref")

    def __init__(self, serial: int, namespace: str, name: str, interval: float) -> None:
        self.serial = serial
        self.namespace = namespace
        self.name = name
        self.interval = interval
        self.ref: weakref.ref[Watcher] | None = None


class Listener:
    """The pub/sub connection ``conn`` of a link and the watches it serves (see the module
    docstring).  ``owner`` is the link: a watch holds one of its users until dropped."""

    def __init__(self, owner: Owner, conn: Any) -> None:
        self._owner = owner
        self.conn = conn
        self.watches: dict[tuple[str, str], dict[int, Watch]] = {}
        # pattern -> (namespace, length of the channels' prefix in bytes), kept while the link lives
        self._patterns: dict[bytes, tuple[str, int]] = {}
        self._confirmed: set[bytes] = set()
        self._requested: set[bytes] = set()
        self._intervals: Counter[float] = Counter()
        self._changed = asyncio.Event()
        self._tick_wake = asyncio.Event()
        self.connected = False
        self._ping_sent: float | None = None
        self._bad: dict[tuple[str, str], bytes | str] = {}  # last malformed value logged, per token
        self.reconnects = 0

    def orphan(self) -> None:
        """The link is gone (closed, or its loop ended): its tokens listen here no more; one
        that is used again registers anew (on the loop that uses it)."""
        watches = [w for entry in self.watches.values() for w in entry.values()]
        self.watches.clear()
        for watch in watches:
            token = watch.ref() if watch.ref is not None else None
            if token is not None:
                token._detach(self._owner)

    def interval(self) -> float:
        return min(self._intervals) if self._intervals else DEFAULT_INTERVAL

    async def watch(self, watch: Watch, read_budget: float) -> None:
        """Register ``watch`` (which holds one user of this link until `unwatch`), subscribe
        its namespace (confirmed), then read its key once."""
        key = (watch.namespace, watch.name)
        self.watches.setdefault(key, {})[watch.serial] = watch
        previous = self.interval()
        self._intervals[watch.interval] += 1
        if watch.interval < previous:
            self._tick_wake.set()
        pattern = pattern_of(watch.namespace).encode()
        self._patterns.setdefault(pattern, (watch.namespace, len(token_channel(watch.namespace, "").encode())))
        await self._subscribed(pattern)
        raw = await self._owner.run(lambda c: c.get(token_key(*key)), read_budget)
        if raw is not None:
            self.deliver(key, raw)

    def unwatch(self, serial: int, namespace: str, name: str) -> None:
        """Drop a watch (idempotent) and release the user it held."""
        key = (namespace, name)
        entry = self.watches.get(key)
        if entry is None:
            return
        watch = entry.pop(serial, None)
        if watch is None:
            return
        if not entry:
            del self.watches[key]
            self._bad.pop(key, None)
        self._intervals[watch.interval] -= 1
        if self._intervals[watch.interval] <= 0:
            del self._intervals[watch.interval]
        self._owner.release()

    def deliver(self, key: tuple[str, str], raw: bytes | str) -> None:
        """A cancel record for ``key`` (namespace, name) was read or announced: validate it and
        hand it to every token watching it (which then stop watching)."""
        entry = self.watches.get(key)
        if not entry:
            return
        try:
            payload = parse(CancelPayload, raw)
            if payload.name != key[1]:
                raise ValueError(f"it names token {payload.name!r}")
        except ValueError as err:
            if self._bad.get(key) != raw:
                self._bad[key] = raw
                logger.warning("cancelable_rx: ignored a malformed cancel record of token %r in namespace %r "
                               "(%s): %r", key[1], key[0], err, raw[:200])
            return
        watches = tuple(entry.values())
        for watch in watches:  # the operations first: the bookkeeping can wait
            token = watch.ref() if watch.ref is not None else None
            if token is not None:
                try:
                    token._deliver(payload)
                except Exception:
                    logger.exception("cancelable_rx: applying a cancel to token %r failed", key[1])
        # After the cancelled operations' tasks have run (they were scheduled first).
        asyncio.get_running_loop().call_soon(self._unwatch_all, watches, key)

    def _unwatch_all(self, watches: tuple[Watch, ...], key: tuple[str, str]) -> None:
        for watch in watches:
            self.unwatch(watch.serial, *key)

    # -- the pub/sub connection ---------------------------------------------------------

    def stop(self) -> None:
        """The link is closing: wake whoever waits for a subscription (they see it closed)."""
        self.connected = False
        self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _subscribed(self, pattern: bytes) -> None:
        """Return once the server confirmed the subscription of ``pattern``."""
        while pattern not in self._confirmed:
            if self._owner.closed:
                raise RuntimeError("the Redis link was closed")
            if self.connected and pattern not in self._requested:
                self._requested.add(pattern)
                try:
                    await self._send("PSUBSCRIBE", pattern)
                except Exception:  # the reader notices the broken connection and resubscribes
                    logger.debug("cancelable_rx: PSUBSCRIBE failed", exc_info=True)
            await self._changed.wait()

    async def _send(self, *args: Any) -> None:
        """Send a command on the pub/sub connection, only if it is connected.

        redis-py's ``send_command`` connects a closed connection on its own.  Only
        `_reconnect` (and the link's opening) may connect this one: a send that reconnected
        it while the link was closing (or after its loop stopped) opened a socket nobody
        closes.  Checked and sent without a suspension in between."""
        if not self.conn.is_connected or self._owner.closed:
            raise RedisConnectionError("the listening connection is not connected")
        await self.conn.send_command(*args)

    def _dispatch(self, response: Any) -> None:
        if not isinstance(response, list) or not response:
            return
        kind = response[0]
        if kind == b"pmessage" and len(response) == 4:
            found = self._patterns.get(response[1])
            channel = response[2]
            if found is not None and isinstance(channel, bytes):
                namespace, prefix = found
                self.deliver((namespace, channel[prefix:].decode("utf-8", "replace")), response[3])
        elif kind == b"psubscribe":
            if response[1] in self._patterns:
                self._confirmed.add(response[1])
                self._notify()
        elif kind == b"pong":
            self._ping_sent = None

    async def read_loop(self) -> None:
        while not self._owner.closed:
            reader = Reader(self.conn, self._dispatch)
            try:
                await reader.run()
            except asyncio.CancelledError:
                raise
            except Exception as err:
                if self._owner.closed:
                    return
                logger.warning("cancelable_rx: lost the listening connection to Redis at %s (%s); reconnecting",
                               self._owner.endpoint.display, err)
                await self._reconnect()

    async def _reconnect(self) -> None:
        """Connect again (backing off up to the re-read interval), subscribe every pattern
        again, then re-read every watched key."""
        self.connected = False
        self._ping_sent = None
        self._confirmed.clear()
        self._requested.clear()
        self._notify()
        delay = 0.01
        failures = 0
        while not self._owner.closed:
            try:
                await self.conn.disconnect()
                await self.conn.connect()
                patterns = list(self._patterns)
                if patterns:
                    self._requested.update(patterns)
                    await self.conn.send_command("PSUBSCRIBE", *patterns)
                    while not self._confirmed.issuperset(patterns):
                        self._dispatch(await self.conn.read_response())
            except asyncio.CancelledError:
                raise
            except Exception as err:
                failures += 1
                self._confirmed.clear()
                self._requested.clear()
                (logger.warning if failures == 1 else logger.debug)(
                    "cancelable_rx: reconnecting to Redis at %s failed (%s); retrying", self._owner.endpoint.display, err
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.interval())
                continue
            self.connected = True
            self.reconnects += 1
            self._notify()
            logger.info("cancelable_rx: listening to Redis at %s again", self._owner.endpoint.display)
            self._owner._spawn(self._reread())
            return

    # -- the safety net -------------------------------------------------------------------

    async def tick_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._owner.closed:
            interval = self.interval()
            # asyncio.timeout, not asyncio.wait_for: on Python 3.11, wait_for can swallow a
            # cancellation that lands as its timeout expires (CPython gh-86296), and this task
            # then went on into a send while its loop was shutting down.
            try:
                async with asyncio.timeout(interval):
                    await self._tick_wake.wait()
                self._tick_wake.clear()
                continue  # the interval got shorter: start over with it
            except TimeoutError:
                pass
            if self.connected:
                sent = self._ping_sent
                if sent is None:
                    self._ping_sent = loop.time()
                    try:
                        await self._send("PING")
                    except Exception:  # not in flight: no "stopped answering" for it later
                        self._ping_sent = None
                        logger.debug("cancelable_rx: PING on the listening connection failed", exc_info=True)
                elif loop.time() - sent > max(2 * interval, 2.0):
                    logger.warning("cancelable_rx: the listening connection to %s stopped answering; reconnecting",
                                   self._owner.endpoint.display)
                    await self.conn.disconnect()  # the reader sees the error and reconnects
            await self._reread()

    async def _reread(self) -> None:
        """Read every watched key again (in batches); failures are left to the next round."""
        keys = list(self.watches)
        for start in range(0, len(keys), _MAX_BATCH):
            batch = keys[start : start + _MAX_BATCH]
            names = [token_key(*k) for k in batch]
            try:  # once (budget 0): through `Link.run`, which never reopens a closed link's sockets
                values = await self._owner.run(lambda client: client.mget(names), 0.0)  # noqa: B023 - awaited here
            except Exception as err:
                logger.debug("cancelable_rx: re-reading cancel records at %s failed (%s)", self._owner.endpoint.display, err)
                return
            for key, raw in zip(batch, values, strict=True):
                if raw is not None:
                    self.deliver(key, raw)


class Reader:
    """Reads the pub/sub connection ``conn`` until it fails, handing every reply to
    ``dispatch`` (see the module docstring).

    redis-py's ``read_response`` runs as a coroutine stepped here, not as a task: from the
    connection's stream when bytes arrive (``feed_data``, wrapped while this reader runs),
    and from the done callback of whatever future it waits for.  `run` returns only by
    raising: the error that ended the reading (or the caller's cancellation, which closes
    the coroutine).  If the connection has no asyncio stream to follow, the replies are
    read in the caller's task.
    """

    __slots__ = ("_conn", "_dispatch", "_coro", "_waiting", "_stepping", "_ended", "_context")

    def __init__(self, conn: Any, dispatch: Callable[[Any], None]) -> None:
        self._conn = conn
        self._dispatch = dispatch
        self._coro: Any = None
        self._waiting: Any = None  # the future the coroutine waits for
        self._stepping = False
        self._ended: asyncio.Future[None] | None = None
        self._context = contextvars.copy_context()

    async def _replies(self) -> None:
        read, dispatch = self._conn.read_response, self._dispatch
        while True:
            dispatch(await read())
            # Read on in the next loop iteration: the tasks this reply woke (operations it
            # cancelled) run first.
            await asyncio.sleep(0)

    async def run(self) -> None:
        stream = getattr(self._conn, "_reader", None)
        if not isinstance(stream, asyncio.StreamReader):  # nothing to follow: read in this task
            await self._replies()
            return
        self._ended = asyncio.get_running_loop().create_future()
        self._coro = self._replies()
        feed = stream.feed_data

        def feed_data(data: bytes) -> None:
            feed(data)
            if self._waiting is not None and self._waiting.done():
                self._step()

        stream.feed_data = feed_data  # type: ignore[method-assign,assignment]
        try:
            self._step()
            await self._ended
        finally:
            del stream.feed_data  # the class's method again
            self._waiting = None
            coro, self._coro = self._coro, None
            try:
                coro.close()
            except RuntimeError:  # pragma: no cover - it awaited while closing: nothing left to do
                pass

    def _step(self) -> None:
        """Run the coroutine until it waits for a future that is not done."""
        if self._stepping or self._coro is None:
            return
        self._stepping = True
        try:
            while True:
                self._waiting = None
                try:
                    awaited = self._context.run(self._coro.send, None)
                except BaseException as err:  # it ended: the connection failed
                    self._coro = None
                    ended = self._ended
                    if ended is not None and not ended.done():
                        failed = err if isinstance(err, Exception) and not isinstance(err, StopIteration) else None
                        ended.set_exception(failed or RuntimeError(f"the reader of the pub/sub connection ended: {err!r}"))
                    if not isinstance(err, (Exception, asyncio.CancelledError)):
                        raise  # KeyboardInterrupt, SystemExit: as from a task
                    return
                if awaited is None:  # a bare yield (sleep(0)): go on in the next iteration
                    asyncio.get_running_loop().call_soon(self._step)
                    return
                awaited._asyncio_future_blocking = False  # as a task does with what it awaits
                self._waiting = awaited
                if not awaited.done():
                    awaited.add_done_callback(self._wake)
                    return
        finally:
            self._stepping = False

    def _wake(self, future: Any) -> None:
        if self._waiting is future:
            self._step()
