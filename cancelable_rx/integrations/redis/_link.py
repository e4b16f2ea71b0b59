"""The connections of one event loop to one Redis endpoint: a bounded command pool and ONE
pub/sub connection shared by every token that listens there.

A link lives on its *home* loop (``_io.home``): an asyncio application's own loop, or
the I/O thread's loop for trio; every method runs there, nothing is called from
elsewhere.  In the usual process (one event loop) that is one link per endpoint.  A link
on a loop that ends is closed with it (its tasks are cancelled; their cleanup closes the
connections).

Listening follows the rule "cancellation is state": a token is registered (a `Watch`),
the namespace's channel pattern is subscribed (confirmed by the server), and only *then*
the token's key is read, so a cancel written after the read is announced to a
subscription that exists, and one written before it is in the key.  After every
reconnect the pattern is subscribed again and every watched key is read again; a
periodic re-read (every ``interval`` seconds, the smallest of the watching tokens') backs
both up, and pings the pub/sub connection to notice one that died silently.

A cancel is one atomic script: ``SET key payload NX PX ttl`` and, only if that created the
key, ``PUBLISH`` on the token's channel; it returns whether it won and the stored record
(the first reason wins).  Where ACLs forbid scripts it falls back to the same commands
sent one by one.

Memory and sockets do not grow with the number of tokens a process has ever listened
to: one pattern per namespace (never per token), at most `POOL_SIZE` command
connections, and a watch is dropped when its token is cancelled, closed or collected.
The link itself closes `LINGER` seconds after its last user left.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import threading
import weakref
from collections import Counter
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, Protocol, TypeVar, cast

import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import AuthenticationError, NoPermissionError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from . import _io
from ._config import Endpoint, pattern_of, token_channel, token_key
from ._models import CancelPayload, parse

__all__ = ("DEFAULT_INTERVAL", "LINGER", "POOL_SIZE", "Link", "Watch", "Watcher", "all_links", "link_for", "next_serial")

logger = logging.getLogger("cancelable_rx.redis")
T = TypeVar("T")

POOL_SIZE = 8
"""Command connections per process and endpoint (commands queue for a free one)."""
LINGER = 1.0
"""Seconds a link stays open after its last user left (a next token reuses it)."""
DEFAULT_INTERVAL = 5.0
_MAX_BATCH = 500  # keys per MGET of a re-read
_MAX_RETRY_DELAY = 0.5  # seconds between two attempts of a command while Redis is unreachable
_TRANSIENT = (RedisConnectionError, RedisTimeoutError, OSError)

_CANCEL_SCRIPT = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  redis.call('PUBLISH', ARGV[3], ARGV[1])
  return {1, ARGV[1]}
end
return {0, redis.call('GET', KEYS[1])}
"""

_tables_lock = threading.Lock()
_tables: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Hashable, Link]] = weakref.WeakKeyDictionary()
_serials = itertools.count(1)


def next_serial() -> int:
    """A process-unique number for a watch (ids of collected objects are reused; these are not)."""
    return next(_serials)


def _after_fork_in_child() -> None:
    global _tables_lock, _tables
    _tables_lock = threading.Lock()  # the parent's may have been held by another thread
    _tables = weakref.WeakKeyDictionary()  # the parent's loops and sockets are not ours


os.register_at_fork(after_in_child=_after_fork_in_child)


def _table(loop: asyncio.AbstractEventLoop) -> dict[Hashable, Link]:
    with _tables_lock:
        table = _tables.get(loop)
        if table is None:
            table = _tables[loop] = {}
        return table


def link_for(endpoint: Endpoint) -> Link:
    """The running loop's link to ``endpoint`` (made if needed), with one more user: call
    `Link.release` once."""
    table = _table(asyncio.get_running_loop())
    link = table.get(endpoint.key)
    if link is None or link.closed:
        link = table[endpoint.key] = Link(endpoint, table)
    link.acquire()
    return link


def all_links() -> list[Link]:
    """Every live link of the process (a snapshot, for tests and benchmarks)."""
    with _tables_lock:
        tables = list(_tables.values())
    return [link for table in tables for link in list(table.values())]


async def _close_all() -> None:
    table = _table(asyncio.get_running_loop())
    for link in list(table.values()):
        await link.aclose()
    table.clear()


_io.on_shutdown(_close_all)


class Watcher(Protocol):
    """What a link needs from a listening token (a `DistributedToken`)."""

    def _deliver(self, payload: CancelPayload) -> None: ...

    def _detach(self, link: Link) -> None: ...


class Watch:
    """One token listening on a link: where, how often to re-read, and a weak reference to it."""

    __slots__ = ("serial", "namespace", "name", "interval", "ref")

    def __init__(self, serial: int, namespace: str, name: str, interval: float) -> None:
        self.serial = serial
        self.namespace = namespace
        self.name = name
        self.interval = interval
        self.ref: weakref.ref[Watcher] | None = None


class Link:
    """The connections of this process to one endpoint (see the module docstring)."""

    def __init__(self, endpoint: Endpoint, table: dict[Hashable, Link]) -> None:
        self.endpoint = endpoint
        self.loop = asyncio.get_running_loop()
        self._table = table
        self.users = 0
        self.closed = False
        kwargs: dict[str, Any] = {"socket_connect_timeout": 5.0, **endpoint.kwargs}
        # The package's own choices: bytes, RESP2, and no hidden retries (ours are explicit).
        kwargs.update(decode_responses=False, protocol=2, retry=Retry(NoBackoff(), 0))
        # A plain pool bounded by a semaphore: the same bound on sockets as a blocking pool,
        # for a fraction of its cost per command (every command goes through `run` or `slots`).
        self.pool = redis.asyncio.ConnectionPool(
            connection_class=endpoint.connection_class, max_connections=POOL_SIZE, **kwargs
        )
        self.slots = asyncio.Semaphore(POOL_SIZE)
        self.client = redis.asyncio.Redis(connection_pool=self.pool)
        kwargs.update(socket_timeout=None, client_name=f"cancelable_rx-listener-{os.getpid()}")
        self.conn: Any = endpoint.connection_class(**kwargs)  # the pub/sub connection
        self._script: Any = self.client.register_script(_CANCEL_SCRIPT)
        self._script_allowed = True
        self._opened: asyncio.Future[None] | None = None
        self._linger: asyncio.TimerHandle | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._spawned: set[asyncio.Task[Any]] = set()
        # listening state
        self.watches: dict[tuple[str, str], dict[int, Watch]] = {}
        self._patterns: dict[bytes, str] = {}  # pattern -> namespace (kept while the link lives)
        self._confirmed: set[bytes] = set()
        self._requested: set[bytes] = set()
        self._intervals: Counter[float] = Counter()
        self._changed = asyncio.Event()
        self._tick_wake = asyncio.Event()
        self.connected = False
        self._ping_sent: float | None = None
        self._bad: dict[tuple[str, str], bytes | str] = {}  # last malformed value logged, per token
        self.reconnects = 0

    # -- users ---------------------------------------------------------------------------

    def acquire(self) -> None:
        self.users += 1
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None

    def release(self) -> None:
        self.users -= 1
        if self.users == 0 and not self.closed:
            self._linger = asyncio.get_running_loop().call_later(LINGER, self._close_if_idle)

    def _close_if_idle(self) -> None:
        self._linger = None
        if self.users == 0 and not self.closed:
            if self._table.get(self.endpoint.key) is self:
                del self._table[self.endpoint.key]
            self._spawn(self.aclose())

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._spawned.add(task)
        task.add_done_callback(self._spawned.discard)

    async def aclose(self) -> None:
        """Stop listening and close every connection (idempotent)."""
        self.closed = True
        self.connected = False
        self._notify()
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            try:
                await task
            except BaseException:  # noqa: S110 - cancelled on purpose
                pass
        await self._disconnect()

    async def _disconnect(self) -> None:
        try:
            await self.conn.disconnect()
            await self.pool.disconnect()
        except BaseException:
            logger.debug("cancelable_rx: closing the connections to %s failed", self.endpoint.display, exc_info=True)

    # -- opening -------------------------------------------------------------------------

    async def open(self) -> None:
        """Connect the pub/sub connection and check the command path (once; concurrent
        callers share the attempt).  Raises `RedisConnectError` if it fails; a later call
        tries again."""
        if self.closed:
            raise RuntimeError("the Redis link was closed")
        fut = self._opened
        if fut is None:
            fut = self._opened = asyncio.ensure_future(self._open())
        try:
            await asyncio.shield(fut)
        except BaseException:
            if fut.done() and not fut.cancelled() and fut.exception() is not None and self._opened is fut:
                self._opened = None
            raise

    async def _open(self) -> None:
        try:
            await self.conn.connect()
            async with self.slots:
                await self.client.ping()
        except Exception as err:
            await self.conn.disconnect()
            raise self.endpoint.connect_error(err) from err
        self.connected = True
        self._tasks = [asyncio.ensure_future(self._main()), asyncio.ensure_future(self._tick_loop())]

    async def _main(self) -> None:
        """Read the pub/sub connection until the link is closed or its loop ends; then
        close the connections (a loop that ends cancels this task: it cleans up)."""
        try:
            await self._read_loop()
        finally:
            self.closed = True
            if self._table.get(self.endpoint.key) is self:
                del self._table[self.endpoint.key]
            self._orphan_watchers()
            await self._disconnect()

    def _orphan_watchers(self) -> None:
        """The link is gone (closed, or its loop ended): its tokens listen here no more; one
        that is used again registers anew (on the loop that uses it)."""
        watches = [w for entry in self.watches.values() for w in entry.values()]
        self.watches.clear()
        for watch in watches:
            token = watch.ref() if watch.ref is not None else None
            if token is not None:
                token._detach(self)

    # -- commands ------------------------------------------------------------------------

    async def run(self, fn: Callable[[redis.asyncio.Redis], Awaitable[T]], budget: float) -> T:
        """``await fn(client)``, retried while Redis is unreachable for up to ``budget``
        seconds (then the last error is raised).  A refused login is not retried."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + budget
        delay = 0.02
        warned = False
        while True:
            try:
                async with self.slots:
                    return await fn(self.client)
            except AuthenticationError as err:
                raise self.endpoint.connect_error(err) from err
            except _TRANSIENT as err:
                if loop.time() + delay > deadline:
                    raise
                if not warned:
                    warned = True
                    logger.warning("cancelable_rx: Redis at %s unreachable (%s); retrying for up to %.1f s",
                                   self.endpoint.display, err, budget)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _MAX_RETRY_DELAY)

    async def write_cancel(self, namespace: str, name: str, raw: bytes, ttl: float, budget: float) -> tuple[bool, bytes]:
        """Create the cancel record of ``name`` (first reason wins) and announce it.

        Returns (True, raw) if this call created it, else (False, the stored record)."""
        key, channel, px = token_key(namespace, name), token_channel(namespace, name), max(1, round(ttl * 1000))

        async def attempt(client: redis.asyncio.Redis) -> tuple[bool, bytes]:
            if self._script_allowed:
                try:
                    won, stored = await self._script(keys=[key], args=[raw, px, channel], client=client)
                    return bool(won), stored
                except NoPermissionError:
                    self._script_allowed = False
                    logger.info("cancelable_rx: scripts are not allowed at %s; cancels use SET NX then PUBLISH",
                                self.endpoint.display)
            if await client.set(key, raw, nx=True, px=px):
                await client.publish(channel, raw)
                return True, raw
            stored = cast(bytes | None, await client.get(key))
            if stored is None:  # expired in between: try again
                raise RedisConnectionError("the cancel record expired while it was written")
            return stored == raw, stored  # a retry after a lost reply finds its own record

        return await self.run(attempt, budget)

    # -- watching ------------------------------------------------------------------------

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
        self._patterns.setdefault(pattern, watch.namespace)
        await self._subscribed(pattern)
        raw = await self.run(lambda c: c.get(token_key(*key)), read_budget)
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
        self.release()

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
        watches = list(entry.values())
        for watch in watches:  # the operations first: the bookkeeping can wait
            token = watch.ref() if watch.ref is not None else None
            if token is not None:
                try:
                    token._deliver(payload)
                except Exception:
                    logger.exception("cancelable_rx: applying a cancel to token %r failed", key[1])
        for watch in watches:
            self.unwatch(watch.serial, *key)

    # -- the pub/sub connection ---------------------------------------------------------

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _subscribed(self, pattern: bytes) -> None:
        """Return once the server confirmed the subscription of ``pattern``."""
        while pattern not in self._confirmed:
            if self.closed:
                raise RuntimeError("the Redis link was closed")
            if self.connected and pattern not in self._requested:
                self._requested.add(pattern)
                try:
                    await self.conn.send_command("PSUBSCRIBE", pattern)
                except Exception:  # the reader notices the broken connection and resubscribes
                    logger.debug("cancelable_rx: PSUBSCRIBE failed", exc_info=True)
            await self._changed.wait()

    def _dispatch(self, response: Any) -> None:
        if not isinstance(response, list) or not response:
            return
        kind = response[0]
        if kind == b"pmessage" and len(response) == 4:
            namespace = self._patterns.get(response[1])
            channel = response[2]
            if namespace is not None and isinstance(channel, bytes):
                prefix = len(namespace.encode()) + len(b":cancel:")
                self.deliver((namespace, channel[prefix:].decode("utf-8", "replace")), response[3])
        elif kind == b"psubscribe":
            if response[1] in self._patterns:
                self._confirmed.add(response[1])
                self._notify()
        elif kind == b"pong":
            self._ping_sent = None

    async def _read_loop(self) -> None:
        while not self.closed:
            try:
                response = await self.conn.read_response()
            except asyncio.CancelledError:
                raise
            except Exception as err:
                if self.closed:
                    return
                logger.warning("cancelable_rx: lost the listening connection to Redis at %s (%s); reconnecting",
                               self.endpoint.display, err)
                await self._reconnect()
                continue
            self._dispatch(response)

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
        while not self.closed:
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
                    "cancelable_rx: reconnecting to Redis at %s failed (%s); retrying", self.endpoint.display, err
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.interval())
                continue
            self.connected = True
            self.reconnects += 1
            self._notify()
            logger.info("cancelable_rx: listening to Redis at %s again", self.endpoint.display)
            self._spawn(self._reread())
            return

    # -- the safety net -------------------------------------------------------------------

    async def _tick_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while not self.closed:
            interval = self.interval()
            try:
                await asyncio.wait_for(self._tick_wake.wait(), interval)
                self._tick_wake.clear()
                continue  # the interval got shorter: start over with it
            except TimeoutError:
                pass
            if self.connected:
                sent = self._ping_sent
                if sent is None:
                    self._ping_sent = loop.time()
                    try:
                        await self.conn.send_command("PING")
                    except Exception:
                        logger.debug("cancelable_rx: PING on the listening connection failed", exc_info=True)
                elif loop.time() - sent > max(2 * interval, 2.0):
                    logger.warning("cancelable_rx: the listening connection to %s stopped answering; reconnecting",
                                   self.endpoint.display)
                    await self.conn.disconnect()  # the reader sees the error and reconnects
            await self._reread()

    async def _reread(self) -> None:
        """Read every watched key again (in batches); failures are left to the next round."""
        keys = list(self.watches)
        for start in range(0, len(keys), _MAX_BATCH):
            batch = keys[start : start + _MAX_BATCH]
            try:
                async with self.slots:
                    values = await self.client.mget([token_key(*k) for k in batch])
            except Exception as err:
                logger.debug("cancelable_rx: re-reading cancel records at %s failed (%s)", self.endpoint.display, err)
                return
            for key, raw in zip(batch, values, strict=True):
                if raw is not None:
                    self.deliver(key, raw)
