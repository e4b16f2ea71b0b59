"""ClusterRegistry: the operations of every process, seen and cancelled through Redis.

An operation opts in with ``async with cluster.track(op):``.  While it runs, its process
renews a heartbeat record (``{ns}:op:{id}``: id, name, status, host, pid, start time,
progress, deadline) that expires ``ttl`` seconds after the last renewal, so the record of
a process that died disappears on its own.  When the operation ends, its final record
moves to a bounded history list.  `ClusterRegistry.cancel_operation` writes the cancel
record of the operation's `DistributedToken` (named ``op:{id}``), which the process that
runs it listens to: it reaches that process even across a reconnect.

All Redis work runs on the registry's home loop (``_io.home``: the first caller's asyncio
loop, or the package's I/O thread under trio); the heartbeat reads each operation's record
there (records are readable from any thread).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Self, cast

from redis import Redis
from redis.asyncio import Redis as AsyncRedis

from cancelable_rx import Cancelable, CancelationReason, OperationStatus
from cancelable_rx._checks import (
    check_instance,
    check_message,
    check_non_negative_int,
    check_optional_str,
    check_positive_int,
    check_reason,
    check_status,
    check_str,
    fail_value,
)

from . import _io
from ._config import (
    DEFAULT_NAMESPACE,
    Endpoint,
    check_namespace,
    check_seconds,
    endpoint_of,
    history_key,
    index_key,
    record_key,
)
from ._link import Link, link_for
from ._models import CancelPayload, OperationRecord, Origin, parse
from ._tracked import Entry, TrackedOperation, token_name

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ("DEFAULT_HEARTBEAT", "ClusterRegistry", "TrackedOperation")

logger = logging.getLogger("cancelable_rx.redis")
DEFAULT_HEARTBEAT = 2.0
"""Seconds between heartbeats (records expire after three missed ones)."""
_BATCH = 500


class ClusterRegistry:
    """A registry of operations across processes, kept in Redis.

    Args:
        redis: a Redis URL or a redis-py client (as for `DistributedToken`).
        namespace: the prefix of every key (default ``cancelable_rx``).
        heartbeat_interval: seconds between the renewals of each tracked record (default 2).
        ttl: seconds a record outlives its last renewal (default three intervals); a
            process that dies disappears from `list_operations` after it.
        max_history: how many ended operations the history keeps (default 1000; oldest go).
        write_timeout: seconds a cancel keeps retrying while Redis is unreachable.

    Use it as ``async with ClusterRegistry(url) as cluster:`` (or call `aclose`); the
    connection is opened on first use, and a wrong password is a `RedisConnectError` there.

    Thread-safety: methods may be called from any thread with an event loop (asyncio or
    trio); the Redis work runs on the registry's home loop (the first caller's asyncio loop,
    or the package's I/O thread under trio) and never blocks the caller's loop.
    """

    def __init__(
        self,
        redis: str | Redis | AsyncRedis,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        heartbeat_interval: float = DEFAULT_HEARTBEAT,
        ttl: float | None = None,
        max_history: int = 1000,
        write_timeout: float = 5.0,
    ) -> None:
        self._redis = redis
        self._endpoint: Endpoint = endpoint_of(redis)
        self.namespace = check_namespace(namespace)
        self.heartbeat_interval = check_seconds(heartbeat_interval, "heartbeat_interval", "2")
        if ttl is None:
            ttl = 3 * self.heartbeat_interval
        self.ttl = check_seconds(ttl, "ttl", str(3 * self.heartbeat_interval))
        if self.ttl <= self.heartbeat_interval:
            fail_value("ttl", f"longer than heartbeat_interval ({self.heartbeat_interval:g} s)", ttl,
                       f"e.g. ttl={3 * self.heartbeat_interval:g}")
        self.max_history = check_positive_int(max_history, "max_history", "e.g. max_history=1000")
        self.write_timeout = check_seconds(write_timeout, "write_timeout", "5")
        # home loop only:
        self._home: asyncio.AbstractEventLoop | None = None
        self._link: Link | None = None
        self._opening: asyncio.Lock | None = None
        self._tracked: dict[str, Entry] = {}
        self._beat: asyncio.Task[None] | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"<ClusterRegistry {self._endpoint.display} namespace={self.namespace!r}>"

    # -- the connection (home loop) ----------------------------------------------------------

    async def _client(self) -> Link:
        if self._closed:
            raise RuntimeError(f"{self!r} was closed")
        link = self._link
        if link is not None:
            return link
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            if self._link is None:
                link = link_for(self._endpoint)
                try:
                    await link.open()
                except BaseException:
                    link.release()
                    raise
                self._link = link
            return self._link

    async def _run(self, coro: Any, *, shield: bool = False) -> Any:
        """Run ``coro`` (a coroutine using the link) on the registry's home loop (the first
        caller's, see ``_io.home``) and await it here."""
        home = self._home
        if home is None:
            home = self._home = _io.home()
        return await _io.run_at(home, coro, shield=shield)

    async def open(self) -> Self:
        """Connect now (otherwise the first call does).  Raises `RedisConnectError`."""
        await self._run(self._client())
        return self

    async def aclose(self) -> None:
        """Stop heartbeats and release the connection (tracked operations keep running; their
        records expire).  Idempotent."""
        if self._home is None:
            self._closed = True
            return
        try:
            await self._run(self._close(), shield=True)
        except RuntimeError:  # its loop has ended: so has everything it ran
            self._closed = True

    async def _close(self) -> None:
        self._closed = True
        beat, self._beat = self._beat, None
        if beat is not None:
            beat.cancel()
        self._tracked.clear()
        link, self._link = self._link, None
        if link is not None:
            link.release()

    async def __aenter__(self) -> Self:
        return await self.open()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    # -- tracking -------------------------------------------------------------------------------

    def track(self, operation: Cancelable) -> TrackedOperation:
        """``async with cluster.track(op) as op:`` runs ``op`` (not yet entered) as a tracked
        operation: listed across processes while it runs, cancellable from any of them
        (`cancel_operation`), in the history once it ended."""
        check_instance(operation, Cancelable, "operation", "a Cancelable", "e.g. cluster.track(Cancelable())")
        if operation.status is not OperationStatus.PENDING:
            fail_value("operation", "an operation that was not entered yet", operation,
                       "track a new operation: cluster.track(Cancelable(...))")
        return TrackedOperation(self, operation)

    async def _add(self, entry: Entry) -> None:
        link = await self._client()
        op_id = entry.op.id
        record = entry.record(OperationStatus.RUNNING).model_dump_json()

        async def write(client: AsyncRedis) -> None:
            pipe = client.pipeline(transaction=True)
            pipe.set(record_key(self.namespace, op_id), record, px=round(self.ttl * 1000))
            pipe.zadd(index_key(self.namespace), {op_id: entry.start})
            await pipe.execute()

        await link.run(write, self.write_timeout)
        self._tracked[op_id] = entry
        if self._beat is None or self._beat.done():
            self._beat = asyncio.ensure_future(self._heartbeat())

    async def _finish(self, entry: Entry) -> None:
        op_id = entry.op.id
        self._tracked.pop(op_id, None)
        link = self._link
        if link is None:
            return
        record = entry.record().model_dump_json()

        async def write(client: AsyncRedis) -> None:
            pipe = client.pipeline(transaction=True)
            pipe.lpush(history_key(self.namespace), record)
            pipe.ltrim(history_key(self.namespace), 0, self.max_history - 1)
            pipe.delete(record_key(self.namespace, op_id))
            pipe.zrem(index_key(self.namespace), op_id)
            await pipe.execute()

        try:
            await link.run(write, self.write_timeout)
        except Exception as err:
            logger.warning("cancelable_rx: the final record of operation %s could not be written (%s); its live "
                           "record expires in %.1f s", op_id, err, self.ttl)

    async def _heartbeat(self) -> None:
        px = round(self.ttl * 1000)
        while self._tracked and not self._closed:
            await asyncio.sleep(self.heartbeat_interval)
            link = self._link
            entries = list(self._tracked.values())
            if link is None or not entries:
                continue
            records = [(record_key(self.namespace, entry.op.id), entry.record().model_dump_json()) for entry in entries]

            async def beat(client: AsyncRedis) -> None:
                pipe = client.pipeline(transaction=False)
                for key, record in records:  # noqa: B023 - awaited within this iteration
                    pipe.set(key, record, px=px)
                await pipe.execute()

            try:  # once (budget 0): through `Link.run`, which never reopens a closed link's sockets
                await link.run(beat, 0.0)
            except Exception as err:
                logger.warning("cancelable_rx: heartbeat to Redis at %s failed (%s)", self._endpoint.display, err)

    # -- reading and cancelling --------------------------------------------------------------

    async def list_operations(
        self, status: OperationStatus | None = None, name_pattern: str | None = None
    ) -> list[OperationRecord]:
        """The live tracked operations of every process (oldest first), optionally only those
        with ``status`` or whose name contains ``name_pattern``.  Records of processes that
        stopped renewing them are gone (and dropped from the index)."""
        check_status(status)
        check_optional_str(name_pattern, "name_pattern", "a substring of the operation names")
        records: list[OperationRecord] = await self._run(self._list())
        if status is not None:
            records = [r for r in records if r.status is status]
        if name_pattern is not None:
            records = [r for r in records if r.name is not None and name_pattern in r.name]
        return records

    async def _list(self) -> list[OperationRecord]:
        link = await self._client()
        ns = self.namespace
        found = await link.run(lambda c: c.zrange(index_key(ns), 0, -1), self.write_timeout)
        ids = [i.decode() if isinstance(i, bytes) else str(i) for i in found]
        records: list[OperationRecord] = []
        dead: list[str] = []
        for start in range(0, len(ids), _BATCH):
            batch = ids[start : start + _BATCH]
            keys = [record_key(ns, i) for i in batch]

            async def mget(client: AsyncRedis, keys: list[str] = keys) -> list[Any]:
                return cast(list[Any], await client.mget(keys))

            values = await link.run(mget, self.write_timeout)
            for op_id, raw in zip(batch, values, strict=True):
                if raw is None:
                    dead.append(op_id)
                    continue
                try:
                    records.append(parse(OperationRecord, raw))
                except ValueError as err:
                    logger.warning("cancelable_rx: ignored a malformed record of operation %r (%s)", op_id, err)
        if dead:
            await link.run(lambda c: c.zrem(index_key(ns), *dead), self.write_timeout)
        return records

    async def get_operation(self, operation_id: str) -> OperationRecord | None:
        """The live record of ``operation_id``, or None (unknown, ended, or its process died)."""
        check_str(operation_id, "operation_id", "pass the operation's id, e.g. op.id")
        return await self._run(self._get(operation_id))

    async def _get(self, operation_id: str) -> OperationRecord | None:
        link = await self._client()
        raw = await link.run(lambda c: c.get(record_key(self.namespace, operation_id)), self.write_timeout)
        if raw is None:
            return None
        try:
            record: OperationRecord = parse(OperationRecord, raw)
        except ValueError as err:
            logger.warning("cancelable_rx: ignored a malformed record of operation %r (%s)", operation_id, err)
            return None
        return record

    async def cancel_operation(
        self,
        operation_id: str,
        reason: CancelationReason = CancelationReason.MANUAL,
        message: str | None = None,
    ) -> bool:
        """Cancel a tracked operation in whatever process runs it.  True if it is live here
        (its record exists), False for an unknown, ended or dead one.

        The cancel is a record in Redis (see `DistributedToken`): the operation's process
        sees it even if it is reconnecting when it is written.
        """
        check_str(operation_id, "operation_id", "pass the operation's id, e.g. op.id")
        reason = check_reason(reason)
        message = check_message(message)
        name = token_name(operation_id)
        raw = CancelPayload(name=name, reason=reason, message=message, origin=Origin.here()).model_dump_json()
        return bool(await self._run(self._cancel(operation_id, name, raw.encode())))

    async def _cancel(self, operation_id: str, name: str, raw: bytes) -> bool:
        link = await self._client()
        if not await link.run(lambda c: c.exists(record_key(self.namespace, operation_id)), self.write_timeout):
            return False
        await link.write_cancel(self.namespace, name, raw, max(self.ttl, 3600.0), self.write_timeout)
        return True

    async def get_history(
        self, limit: int | None = None, status: OperationStatus | None = None
    ) -> list[OperationRecord]:
        """Final records of ended operations, oldest first (``limit``: the newest N), at most
        ``max_history`` of them."""
        if limit is not None:
            check_non_negative_int(limit, "limit", "or None for all")
        check_status(status)
        records: list[OperationRecord] = await self._run(self._history())
        if status is not None:
            records = [r for r in records if r.status is status]
        if limit is not None:
            records = records[-limit:] if limit else []
        return records

    async def _history(self) -> list[OperationRecord]:
        link = await self._client()
        values = await link.run(lambda c: c.lrange(history_key(self.namespace), 0, -1), self.write_timeout)
        records = []
        for raw in reversed(values):
            try:
                records.append(parse(OperationRecord, raw))
            except ValueError as err:
                logger.warning("cancelable_rx: ignored a malformed history record (%s)", err)
        return records
