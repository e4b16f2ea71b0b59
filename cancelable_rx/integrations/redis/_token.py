"""DistributedToken: a `CancelationToken` whose state lives in Redis, shared by every
process that names it.

Cancelling writes the token's cancel record first (create-only, with an expiry: the first
reason wins), then announces it; the local flag flips once the record is written, with
the reason the record holds.  A listening token flips when the record appears, whichever
process wrote it: through the announcement, the read that follows every (re)subscription,
or the periodic re-read.  The flip goes through the base token's own machinery, so
operations, links, ``wait_for_cancel`` and callbacks are notified on their own loops.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import math
import threading
import weakref
from functools import partial
from typing import TYPE_CHECKING, Any, Self

from redis import Redis
from redis.asyncio import Redis as AsyncRedis

from cancelable_rx import CancelationReason, CancelationToken, current_operation
from cancelable_rx._checks import check_message, check_reason

from . import _io
from ._config import DEFAULT_NAMESPACE, Endpoint, check_name, check_namespace, check_seconds, endpoint_of
from ._link import Link, link_for, next_serial
from ._listener import DEFAULT_INTERVAL, Watch
from ._models import CancelPayload, Origin, cancel_json, parse

if TYPE_CHECKING:
    from types import TracebackType

    from cancelable_rx._rx import Listener

__all__ = ("DEFAULT_TTL", "DEFAULT_WRITE_TIMEOUT", "DistributedToken")

logger = logging.getLogger("cancelable_rx.redis")

DEFAULT_TTL = 86400.0
"""Seconds a cancel record lives (one day)."""
DEFAULT_WRITE_TIMEOUT = 30.0
"""Seconds a cancel (or a first read) keeps retrying while Redis is unreachable."""


class DistributedToken(CancelationToken):
    """A cancelation token shared across processes through Redis.

    ``DistributedToken("job-42", "redis://host:6379/0")`` in any number of processes names
    the same token.  It is a `CancelationToken`: use it with ``Cancelable.with_token``, in
    ``|`` / ``&`` compositions, in decorators, with ``check()``, ``wait_for_cancel()`` and
    ``register_callback()``.

    Args:
        name: the token's name (non-empty); the key is ``{namespace}:token:{name}``.
        redis: a ``redis://``, ``rediss://`` (TLS) or ``unix://`` URL (username and password
            in the URL are passed through), or a redis-py client (``redis.Redis`` or
            ``redis.asyncio.Redis``) whose connection settings are used.
        namespace: the prefix of every key and channel (default ``cancelable_rx``).
        ttl: seconds a cancel record lives in Redis (default one day); afterwards the
            name can be cancelled anew.
        reread_interval: seconds between the safety-net re-reads of the record (default 5).
        write_timeout: seconds a cancel keeps retrying while Redis is unreachable (default 30).

    Listening: `start` (or ``async with token:``) subscribes, then reads the record, and
    raises `RedisConnectError` at once if Redis cannot be reached or refuses the password.
    Using the token in an operation, ``wait_for_cancel`` or ``register_callback`` starts
    listening in the background if it was not started (failures are then logged).  It
    stops listening when it is cancelled, when `aclose` is called, or when it is garbage
    collected: a process holds nothing for tokens it no longer uses.

    Cancellation: `cancel` writes the record (``SET NX`` with the expiry, then ``PUBLISH``),
    retrying for up to ``write_timeout`` while Redis is unreachable; the first reason
    written wins in every process, and the local flag flips with the reason the record
    holds (a cancel that lost returns False).  `cancel_sync` does the same without waiting.
    `cancel_info` tells who cancelled, when, and with how much of their deadline left.

    Thread-safety: every method may be called from any thread.  The Redis work never
    blocks the caller's event loop: on asyncio it runs on that loop (redis-py's asyncio
    client), on trio on the package's I/O thread.
    """

    __slots__ = ("_endpoint", "_ttl", "_interval", "_write_timeout", "_mu", "_serial", "_started", "_home",
                 "_closed", "_pending", "_link", "_remote", "__weakref__")

    if TYPE_CHECKING:
        _endpoint: Endpoint
        _ttl: float
        _interval: float
        _write_timeout: float
        _mu: threading.Lock
        _serial: int
        _started: concurrent.futures.Future[None] | None
        _home: asyncio.AbstractEventLoop | None
        _closed: bool
        _pending: bool
        _link: Link | None
        _remote: CancelPayload | bytes | None

    name: str
    namespace: str = DEFAULT_NAMESPACE

    def __init__(
        self,
        name: str,
        redis: str | Redis | AsyncRedis,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        ttl: float = DEFAULT_TTL,
        reread_interval: float = DEFAULT_INTERVAL,
        write_timeout: float = DEFAULT_WRITE_TIMEOUT,
    ) -> None:
        name = check_name(name)
        endpoint = endpoint_of(redis)
        namespace = check_namespace(namespace)
        ttl = check_seconds(ttl, "ttl", "3600")
        interval = check_seconds(reread_interval, "reread_interval", "5")
        write_timeout = check_seconds(write_timeout, "write_timeout", "30")
        super().__init__(id=name, name=name, namespace=namespace)
        for slot, value in (
            ("_endpoint", endpoint), ("_ttl", ttl), ("_interval", interval), ("_write_timeout", write_timeout),
            ("_mu", threading.Lock()), ("_serial", next_serial()), ("_started", None), ("_home", None), ("_closed", False),
            ("_pending", False), ("_link", None), ("_remote", None),
        ):
            object.__setattr__(self, slot, value)

    def __hash__(self) -> int:
        return hash((self.namespace, self.name))

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, DistributedToken)
            and (other.namespace, other.name, other._endpoint.key) == (self.namespace, self.name, self._endpoint.key)
        )

    @property
    def cancel_info(self) -> CancelPayload | None:
        """The cancel record this token flipped on (reason, message, origin host/pid/operation,
        time, the canceller's remaining deadline), or None."""
        remote = self._remote
        if isinstance(remote, bytes):  # this process's own record, parsed when first asked for
            remote = CancelPayload.model_validate_json(remote)
            object.__setattr__(self, "_remote", remote)
        return remote

    @property
    def is_listening(self) -> bool:
        """True while the token is registered with its process's Redis listener."""
        return self._link is not None

    # -- listening -------------------------------------------------------------------------

    async def start(self) -> Self:
        """Start listening: subscribe, then read the record (it may already be cancelled).

        Returns once the token listens (or is cancelled).  Raises `RedisConnectError` if
        Redis cannot be reached or refuses the credentials, and RuntimeError if the token
        was closed.  Idempotent; a failed start can be retried.
        """
        fut = self._begin()
        if fut is not None:
            await _io.wait(fut, cancel_on_abort=False)  # shared: other callers may wait for it too
        return self

    async def aclose(self) -> None:
        """Stop listening and release this process's connection if nobody else uses it.

        Idempotent.  Cancellation: the release completes even if the caller is cancelled.
        A closed token can still be cancelled and checked; it no longer listens.
        """
        with self._mu:
            if self._closed:
                return
            object.__setattr__(self, "_closed", True)
            started, home = self._started, self._home
        if started is not None and home is not None:
            try:
                await _io.run_at(home, self._unregister(started), shield=True)
            except RuntimeError:  # its loop has ended, and the listening with it
                object.__setattr__(self, "_link", None)

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def _begin(self) -> concurrent.futures.Future[None] | None:
        """The registration with the listener, started if needed (thread-safe)."""
        with self._mu:
            if self._closed:
                raise RuntimeError(f"{self!r} was closed (aclose); make a new DistributedToken to listen again")
            fut = self._started
            if fut is not None or self.is_cancelled:
                return fut
            home = _io.home()
            fut = _io.submit(self._register(), home)
            object.__setattr__(self, "_started", fut)
            object.__setattr__(self, "_home", home)
        # The future is the token's: a weak reference back keeps them out of a cycle, so a
        # token nobody uses is freed at once (and stops listening).
        fut.add_done_callback(partial(_on_started, weakref.ref(self)))
        return fut

    def _start_failed(self, fut: concurrent.futures.Future[None]) -> None:
        with self._mu:
            if self._started is fut:  # a later start() tries again
                object.__setattr__(self, "_started", None)

    async def _register(self) -> None:
        """On the home loop: open the link, watch the key (subscribe, then read)."""
        link = link_for(self._endpoint)
        serial, namespace, name = self._serial, self.namespace, self.name
        watching = False
        try:
            await link.open()
            if self._closed or self.is_cancelled:
                link.release()
                return
            watch = Watch(serial, namespace, name, self._interval)
            watch.ref = weakref.ref(self, partial(_collected, link, serial, namespace, name))
            object.__setattr__(self, "_link", link)
            watching = True
            await link.watch(watch, self._write_timeout)
        except BaseException:
            object.__setattr__(self, "_link", None)
            if watching:
                link.unwatch(serial, namespace, name)
            else:
                link.release()
            raise
        if self._link is None or self._closed:  # delivered while reading, or closed meanwhile
            link.unwatch(serial, namespace, name)
            object.__setattr__(self, "_link", None)

    async def _unregister(self, started: concurrent.futures.Future[None]) -> None:
        """On the home loop: wait for a registration in flight, then drop it."""
        try:
            await _io_future(started)
        except BaseException:  # noqa: S110 - a failed start holds nothing
            pass
        link = self._link
        if link is not None:
            object.__setattr__(self, "_link", None)
            link.unwatch(self._serial, self.namespace, self.name)

    def _auto_start(self) -> None:
        if self._started is None and not self._closed and not self.is_cancelled:
            try:
                fut = self._begin()
            except RuntimeError:
                return
            if fut is not None:
                fut.add_done_callback(partial(_log_failed_start, self.name))

    def _listen(self, fn: Listener, key: object = None) -> None:
        """The base token's listener hook; also starts listening (in the background) if needed."""
        if self._started is None:
            self._auto_start()
        super()._listen(fn, key)

    async def register_callback(self, callback: Any) -> None:
        """As `CancelationToken.register_callback`; also starts listening if needed."""
        self._auto_start()
        await super().register_callback(callback)

    def _detach(self, link: Link) -> None:
        """On the link's loop: the link closed (its loop ended); listen anew when used again."""
        with self._mu:
            if self._link is link:
                object.__setattr__(self, "_link", None)
                object.__setattr__(self, "_started", None)
                object.__setattr__(self, "_home", None)

    def _deliver(self, payload: CancelPayload) -> None:
        """On the home loop: the record appeared (the link drops the watch right after).
        `_flip`, inlined: this is the path of every cancel announced by Redis."""
        object.__setattr__(self, "_link", None)
        if self._remote is None:
            object.__setattr__(self, "_remote", payload)
        CancelationToken.cancel_sync(self, payload.reason, payload.message)

    def _flip(self, payload: CancelPayload) -> None:
        """Set the local state from a record (any thread; the first flip wins)."""
        if self._remote is None:
            object.__setattr__(self, "_remote", payload)
        CancelationToken.cancel_sync(self, payload.reason, payload.message)

    # -- cancelling ------------------------------------------------------------------------

    def _payload(self, reason: CancelationReason, message: str | None) -> bytes:
        op = current_operation()
        deadline: float | None = None
        if op is not None:
            try:
                remaining = op.remaining()
                deadline = None if math.isinf(remaining) else remaining
            except Exception:  # read off the operation's loop (trio's clock): leave it out
                deadline = None
        return cancel_json(self.name, reason, message, op.id if op is not None else None, deadline)

    async def _write(self, raw: bytes) -> tuple[bool, bytes]:
        """On the home loop: write the record (the link is held for the write only)."""
        link = link_for(self._endpoint)
        try:
            await link.open()
            return await link.write_cancel(self.namespace, self.name, raw, self._ttl, self._write_timeout)
        finally:
            link.release()

    def _stored(self, stored: bytes, reason: CancelationReason, message: str | None) -> CancelPayload:
        """The record Redis holds; a malformed one (written by someone else) is logged and
        this process uses the reason it asked for."""
        try:
            payload: CancelPayload = parse(CancelPayload, stored)
            if payload.name != self.name:
                raise ValueError(f"it names token {payload.name!r}")
        except ValueError as err:
            logger.warning("cancelable_rx: the cancel record of token %r is malformed (%s); cancelled with the "
                           "requested reason in this process only", self.name, err)
            return CancelPayload(name=self.name, reason=reason, message=message, origin=Origin.here())
        return payload

    async def cancel(self, reason: CancelationReason = CancelationReason.MANUAL, message: str | None = None) -> bool:
        """Cancel the token in every process: write the record, then flip the local flag.

        Returns True if this call's record won, False if the token was already cancelled
        (here, or in Redis by someone else: the local flag then takes *that* reason).
        Callbacks registered from this loop are awaited, as for a local token.

        Cancellation: the write is shielded: a cancellation of the caller takes effect
        once the record is written (or the write gave up, after at most ``write_timeout``
        seconds), and the flag has flipped by then.  Raises `RedisConnectError` (bad
        credentials) or redis-py's ``ConnectionError`` if Redis stayed unreachable for
        ``write_timeout`` seconds; the flag does not flip then.  RuntimeError if the
        connections it used were closed under it (their event loop is ending).
        """
        reason = check_reason(reason)
        message = check_message(message)
        if self.is_cancelled:
            return False
        raw = self._payload(reason, message)
        won, stored = await _io.run_at(_io.home(), self._write(raw), shield=True)
        if won:  # the record is ours: no need to read it back
            if self._remote is None:
                object.__setattr__(self, "_remote", raw)
        else:
            payload = self._stored(stored, reason, message)
            if self._remote is None:
                object.__setattr__(self, "_remote", payload)
            reason, message = payload.reason, payload.message
        await CancelationToken.cancel(self, reason, message)
        return won

    def cancel_sync(self, reason: CancelationReason = CancelationReason.MANUAL, message: str | None = None) -> bool:
        """Cancel from any thread without waiting: the record is written in the background,
        and the local flag flips once it is (with the reason the record holds).

        Returns True if this call sent the request, False if the token was already
        cancelled or a `cancel_sync` is in flight.  Never blocks.  If Redis stays
        unreachable for ``write_timeout`` seconds the failure is logged and the token is
        cancelled in this process only.
        """
        reason = check_reason(reason)
        message = check_message(message)
        with self._mu:
            if self.is_cancelled or self._pending:
                return False
            object.__setattr__(self, "_pending", True)
        fut = _io.submit(self._write(self._payload(reason, message)), _io.home())
        fut.add_done_callback(partial(self._written, reason, message))
        return True

    def _written(
        self, reason: CancelationReason, message: str | None,
        fut: concurrent.futures.Future[tuple[bool, bytes]],
    ) -> None:
        """A write done without a waiting caller: flip the flag (any thread)."""
        object.__setattr__(self, "_pending", False)
        if fut.cancelled():
            return
        err = fut.exception()
        if err is not None:
            logger.error("cancelable_rx: the cancel of token %r could not be written to Redis (%s); cancelled "
                         "in this process only", self.name, err)
            CancelationToken.cancel_sync(self, reason, message)
            return
        self._flip(self._stored(fut.result()[1], reason, message))


def _on_started(ref: weakref.ref[DistributedToken], fut: concurrent.futures.Future[None]) -> None:
    token = ref()
    if token is not None and (fut.cancelled() or fut.exception() is not None):
        token._start_failed(fut)


def _log_failed_start(name: str, fut: concurrent.futures.Future[None]) -> None:
    if not fut.cancelled() and fut.exception() is not None:
        logger.error("cancelable_rx: token %r could not start listening: %s", name, fut.exception())


def _collected(link: Link, serial: int, namespace: str, name: str, _: object) -> None:
    """A listening token was garbage collected (any thread): drop its watch on its loop."""
    _io.call_soon(link.loop, link.unwatch, serial, namespace, name)


async def _io_future(fut: concurrent.futures.Future[Any]) -> Any:
    """Await a thread-safe future on the running loop."""
    return await asyncio.wrap_future(fut)
