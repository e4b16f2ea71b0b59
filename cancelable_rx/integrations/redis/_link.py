"""The connections of one event loop to one Redis endpoint: a bounded command pool and ONE
pub/sub connection shared by every token that listens there.

A link lives on its *home* loop (``_io.home``): an asyncio application's own loop, or
the I/O thread's loop for trio; every method runs there, nothing is called from
elsewhere.  In the usual process (one event loop) that is one link per endpoint.  A link
on a loop that ends is closed with it (its tasks are cancelled; their cleanup closes the
connections).

A closed link never connects again: redis-py's commands connect a closed connection on
their own, so every use checks ``closed`` with no suspension before it (the listener's
sends, `Link.run`, the re-read, the heartbeat, the writer) and refuses with `LinkClosed`;
work that was connecting while the link closed (redis-py connects outside its pool's
lock) disconnects the pool's idle connections again when it ends (`Link.reclose`).

Listening is the `Listener`'s (``_listener``): the rule "subscribe, then read; read
again after every reconnect and periodically" lives there.

A cancel is one atomic script: ``SET key payload NX PX ttl`` and, only if that created the
key, ``PUBLISH`` on the token's channel; it returns 1 if it won, else the stored record
(the first reason wins).  It is sent as ``EVALSHA`` on the link's *writer*, a command
connection kept for cancels (no pool, no task: the bytes leave in the caller's step);
a cancel that finds the writer busy or failing goes through the pool, with retries.
Where ACLs forbid scripts it falls back to the same commands sent one by one.

The writer (like the pub/sub connection) has no socket timeout of redis-py's: redis-py
runs every send under a timeout as a task of its own, one more loop iteration before the
bytes leave.  A cancel on the writer is bounded by `COMMAND_TIMEOUT` here instead; pooled
commands keep a socket timeout of `COMMAND_TIMEOUT`.

Memory and sockets do not grow with the number of tokens a process has ever listened
to: one pub/sub connection, at most `POOL_SIZE` command connections (the writer and a
pool of the others), and the listener's watches, dropped when their tokens are
cancelled, closed or collected.  The link itself closes about `LINGER` seconds after its
last user left.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import os
import threading
import weakref
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar, cast

import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import AuthenticationError, NoPermissionError, NoScriptError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from . import _io
from ._config import Endpoint, token_channel, token_key
from ._listener import Listener, Watch

__all__ = ("COMMAND_TIMEOUT", "CONNECTION_SETTINGS", "LINGER", "POOL_SIZE", "Link", "LinkClosed", "all_links", "link_for",
           "next_serial")

logger = logging.getLogger("cancelable_rx.redis")
T = TypeVar("T")

POOL_SIZE = 8
"""Command connections per process and endpoint: the writer and a pool of the others
(commands queue for a free one)."""
LINGER = 1.0
"""Seconds a link stays open after its last user left (a next token reuses it)."""
COMMAND_TIMEOUT = 5.0
"""Seconds one attempt of a command may take (then it is retried within its budget)."""
CONNECTION_SETTINGS: dict[str, Any] = {"decode_responses": False, "protocol": 2, "socket_timeout": None}
"""The package's own settings of the connections a cancel travels on, the writer and the
pub/sub connection (bytes, RESP2, no redis-py socket timeout: see the module docstring);
the benchmark's raw clients use them too."""
_MAX_RETRY_DELAY = 0.5  # seconds between two attempts of a command while Redis is unreachable


class LinkClosed(RuntimeError):
    """The link was closed (its event loop is ending, or it was idle): it does no more work."""

    def __init__(self) -> None:
        super().__init__("the Redis link was closed")


_TRANSIENT = (RedisConnectionError, RedisTimeoutError, OSError)

_CANCEL_SCRIPT = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  redis.call('PUBLISH', ARGV[3], ARGV[1])
  return 1
end
return {0, redis.call('GET', KEYS[1])}
"""
_CANCEL_SHA = hashlib.sha1(_CANCEL_SCRIPT.encode()).hexdigest()  # noqa: S324 - Redis names scripts so

_tables_lock = threading.Lock()
_tables: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Hashable, Link]] = weakref.WeakKeyDictionary()
_serials = itertools.count(1)
_last: weakref.ref[Link] | None = None  # the link `link_for` returned last (most processes use one)


def next_serial() -> int:
    """A process-unique number for a watch (ids of collected objects are reused; these are not)."""
    return next(_serials)


def _after_fork_in_child() -> None:
    global _tables_lock, _tables, _last
    _tables_lock = threading.Lock()  # the parent's may have been held by another thread
    _tables = weakref.WeakKeyDictionary()  # the parent's loops and sockets are not ours
    _last = None


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
    global _last
    loop = asyncio.get_running_loop()
    last = _last  # one read: another thread may replace it
    link = last() if last is not None else None
    if link is None or link.loop is not loop or link.closed or link.endpoint.key != endpoint.key:
        table = _table(loop)
        link = table.get(endpoint.key)
        if link is None or link.closed:
            link = table[endpoint.key] = Link(endpoint, table)
        _last = weakref.ref(link)
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


class Link:
    """The connections of this process to one endpoint (see the module docstring)."""

    def __init__(self, endpoint: Endpoint, table: dict[Hashable, Link]) -> None:
        self.endpoint = endpoint
        self.loop = asyncio.get_running_loop()
        self._table = table
        self.users = 0
        self.closed = False
        kwargs: dict[str, Any] = {"socket_connect_timeout": 5.0, **endpoint.kwargs}
        # The package's own choices (CONNECTION_SETTINGS), and no hidden retries (ours are explicit).
        kwargs.update(CONNECTION_SETTINGS, retry=Retry(NoBackoff(), 0))
        # A plain pool bounded by a semaphore: the same bound on sockets as a blocking pool,
        # for a fraction of its cost per command (every command goes through `run` or `slots`).
        # One more command connection is the writer of cancels.
        self.pool = redis.asyncio.ConnectionPool(
            connection_class=endpoint.connection_class, max_connections=POOL_SIZE - 1,
            **{**kwargs, "socket_timeout": COMMAND_TIMEOUT},
        )
        self.slots = asyncio.Semaphore(POOL_SIZE - 1)
        self.client = redis.asyncio.Redis(connection_pool=self.pool)
        self._writer: Any = endpoint.connection_class(**kwargs, client_name=f"cancelable_rx-writer-{os.getpid()}")
        # (None while a cancel uses it)
        self._writer_conn: Any = self._writer  # to close it even while in use
        kwargs.update(client_name=f"cancelable_rx-listener-{os.getpid()}")
        self._script: Any = self.client.register_script(_CANCEL_SCRIPT)
        self._script_allowed = True
        self._opened: asyncio.Future[None] | None = None
        self.ready = False  # opened (the pub/sub connection and its tasks run)
        self._linger: asyncio.TimerHandle | None = None
        self._idle_since = 0.0
        self._tasks: list[asyncio.Task[None]] = []
        self._spawned: set[asyncio.Task[Any]] = set()
        self.listener = Listener(self, endpoint.connection_class(**kwargs))  # the pub/sub connection
        self._disconnected: asyncio.Event | None = None  # set once every connection was closed

    # -- users ---------------------------------------------------------------------------

    def acquire(self) -> None:
        self.users += 1

    def release(self) -> None:
        """One user less; the link closes once it has had none for `LINGER` seconds (one
        timer per idle period, not one per user: a process that cancels often reuses it)."""
        self.users -= 1
        if self.users == 0 and not self.closed:
            self._idle_since = self.loop.time()
            if self._linger is None:
                self._linger = self.loop.call_later(LINGER, self._close_if_idle)

    def _close_if_idle(self) -> None:
        self._linger = None
        if self.users != 0 or self.closed:
            return
        left = self._idle_since + LINGER - self.loop.time()
        if left > 0:  # used again meanwhile: wait for the rest of its idle period
            self._linger = self.loop.call_later(left, self._close_if_idle)
            return
        if self._table.get(self.endpoint.key) is self:
            del self._table[self.endpoint.key]
        # Closed from now on, not from when the closing task first runs: `link_for` must not
        # hand this link to a new user meanwhile (its `_last` fast path skips the table), as
        # the close would then break that user's command (LinkClosed).
        self.closed = True
        self.ready = False
        self._spawn(self.aclose())

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._spawned.add(task)
        task.add_done_callback(self._spawned.discard)

    async def aclose(self) -> None:
        """Stop listening and close every connection (idempotent)."""
        self.closed = True
        self.ready = False
        self.listener.stop()
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
        """Close the pub/sub connection, the writer and the pool, each on its own (one that
        fails does not keep the others open), once: a later call waits for the first.  A
        cancellation that arrives meanwhile is re-raised once every connection is closed."""
        done = self._disconnected
        if done is not None:
            await done.wait()
            return
        done = self._disconnected = asyncio.Event()
        interrupted: BaseException | None = None
        try:
            for close in (self.listener.conn.disconnect, self._writer_conn.disconnect, self.pool.disconnect):
                try:
                    await close()
                except Exception:
                    logger.debug("cancelable_rx: closing a connection to %s failed", self.endpoint.display,
                                 exc_info=True)
                except BaseException as err:  # finish closing, then let it go on
                    interrupted = interrupted or err
        finally:
            done.set()
        if interrupted is not None:
            raise interrupted

    async def _disconnect_listener(self) -> None:
        try:
            await self.listener.conn.disconnect()
        except Exception:
            logger.debug("cancelable_rx: closing a connection to %s failed", self.endpoint.display, exc_info=True)

    async def reclose(self) -> None:
        """Disconnect the pool's idle connections again: for work that used the pool while
        the link closed (call it once that work is done: its connection is back in the pool).
        redis-py (8.x) connects a pool's connection outside the pool's lock, so one still
        connecting when `_disconnect` ran was not closed by it.  Connections other tasks are
        using are left to them (each closes its own the same way).  Never raises."""
        try:
            await self.pool.disconnect(inuse_connections=False)
        except Exception:
            logger.debug("cancelable_rx: closing a connection to %s failed", self.endpoint.display, exc_info=True)

    # -- opening -------------------------------------------------------------------------

    async def open(self) -> None:
        """Connect the pub/sub connection and check the command path (once; concurrent
        callers share the attempt).  Raises `RedisConnectError` if it fails; a later call
        tries again."""
        if self.ready:  # the usual case: opened before
            return
        if self.closed:
            raise LinkClosed
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
            await self.listener.conn.connect()
            if not self.closed:
                async with self.slots:
                    if not self.closed:  # (as in `run`: never reopen a closed pool's sockets)
                        await self.client.ping()
        except Exception as err:
            await self._disconnect_listener()
            if self.closed:  # (closing under a connect can break it in any way)
                await self.reclose()
                raise LinkClosed from err
            raise self.endpoint.connect_error(err) from err
        if self.closed:  # closed while this connected: its close found nothing to close
            await self._disconnect_listener()
            await self.reclose()
            raise LinkClosed
        self.listener.connected = True
        self._tasks = [asyncio.ensure_future(self._main()), asyncio.ensure_future(self.listener.tick_loop())]
        self.ready = not self.closed

    async def _main(self) -> None:
        """Read the pub/sub connection until the link is closed or its loop ends; then
        close the connections (a loop that ends cancels this task: it cleans up)."""
        try:
            await self.listener.read_loop()
        finally:
            self.closed = True
            self.ready = False
            if self._table.get(self.endpoint.key) is self:
                del self._table[self.endpoint.key]
            self.listener.orphan()
            await self._disconnect()

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
                    if self.closed:  # (checked with no suspension before the pool's connect)
                        raise LinkClosed  # never reopen a closed pool's sockets
                    try:
                        return await fn(self.client)
                    finally:
                        if self.closed:
                            await self.reclose()
            except AuthenticationError as err:
                raise self.endpoint.connect_error(err) from err
            except LinkClosed:
                raise
            except Exception as err:
                if self.closed:  # closed under it (closing under a connect can break it in any way)
                    raise LinkClosed from err
                if not isinstance(err, _TRANSIENT):
                    raise
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

        Returns (True, raw) if this call created it, else (False, the stored record).  The
        first attempt goes out on the writer; if the writer is busy (another cancel) or
        fails, the pool takes over, retrying for up to ``budget`` seconds."""
        key, channel, px = token_key(namespace, name), token_channel(namespace, name), max(1, round(ttl * 1000))
        writer = self._writer
        if writer is not None and self._script_allowed and not self.closed:
            self._writer = None  # ours until the reply: a concurrent cancel uses the pool
            started = self.loop.time()
            try:
                return _outcome(await _evalsha(writer, key, raw, px, channel, min(COMMAND_TIMEOUT, budget)), raw)
            except AuthenticationError as err:
                raise self.endpoint.connect_error(err) from err
            except NoPermissionError:
                self._scripts_refused()
            except _TRANSIENT as err:  # (a timeout is one); redis-py closed the connection
                logger.debug("cancelable_rx: a cancel on the writer to %s failed (%s); retrying through the pool",
                             self.endpoint.display, err)
            finally:
                self._writer = writer
                if self.closed and writer.is_connected:  # connected it after the link closed it
                    await writer.disconnect(nowait=True)
            budget = max(0.0, budget - (self.loop.time() - started))

        async def attempt(client: redis.asyncio.Redis) -> tuple[bool, bytes]:
            if self._script_allowed:
                try:
                    return _outcome(await self._script(keys=[key], args=[raw, px, channel], client=client), raw)
                except NoPermissionError:
                    self._scripts_refused()
            if await client.set(key, raw, nx=True, px=px):
                await client.publish(channel, raw)
                return True, raw
            stored = cast(bytes | None, await client.get(key))
            if stored is None:  # expired in between: try again
                raise RedisConnectionError("the cancel record expired while it was written")
            return stored == raw, stored  # a retry after a lost reply finds its own record

        return await self.run(attempt, budget)

    def _scripts_refused(self) -> None:
        if self._script_allowed:
            self._script_allowed = False
            logger.info("cancelable_rx: scripts are not allowed at %s; cancels use SET NX then PUBLISH",
                        self.endpoint.display)

    # -- listening (the listener's) ---------------------------------------------------------

    @property
    def watches(self) -> dict[tuple[str, str], dict[int, Watch]]:
        return self.listener.watches

    @property
    def reconnects(self) -> int:
        return self.listener.reconnects

    async def watch(self, watch: Watch, read_budget: float) -> None:
        """Register ``watch`` (it holds one user of this link until `unwatch`), subscribe its
        namespace, then read its key (see `Listener.watch`)."""
        await self.listener.watch(watch, read_budget)

    def unwatch(self, serial: int, namespace: str, name: str) -> None:
        """Drop a watch (idempotent) and release the user it held."""
        self.listener.unwatch(serial, namespace, name)


async def _evalsha(conn: Any, key: str, raw: bytes, px: int, channel: str, timeout: float) -> Any:
    """The cancel script on ``conn`` by its digest (sent in full if Redis does not know it),
    within ``timeout`` seconds (TimeoutError).

    On a connected ``conn`` the timer starts once the command is sent (the send does not
    wait: one small command in flight never fills the socket), so arming it costs the
    cancel nothing; connecting first (after a failure) is bounded as a whole."""
    if not conn.is_connected:
        async with asyncio.timeout(timeout):
            await conn.connect()
    await conn.send_command("EVALSHA", _CANCEL_SHA, 1, key, raw, px, channel, check_health=False)
    async with asyncio.timeout(timeout):
        try:
            return await conn.read_response()
        except NoScriptError:  # a restarted or flushed Redis: EVAL caches it again
            await conn.send_command("EVAL", _CANCEL_SCRIPT, 1, key, raw, px, channel, check_health=False)
            return await conn.read_response()


def _outcome(reply: Any, raw: bytes) -> tuple[bool, bytes]:
    """(won, the stored record) from the script's reply: 1, or [0, the stored record]."""
    if reply == 1:
        return True, raw
    stored = reply[1]
    return stored == raw, stored  # a retry after a lost reply finds its own record
