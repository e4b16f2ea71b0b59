"""A tracked operation: what ``async with cluster.track(op):`` does around the operation,
and the record its process renews while it runs.

Entering starts the operation's own `DistributedToken` (``op:{id}``, what
``ClusterRegistry.cancel_operation`` cancels) and adds it as a source, writes the first
record, then enters the operation; leaving leaves it and writes the final record.  The
registry it belongs to is seen through `Registry` (the module ``_cluster`` is above this
one).
"""

from __future__ import annotations

import time
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

import anyio
from redis import Redis
from redis.asyncio import Redis as AsyncRedis

from cancelable_rx import Cancelable, OperationStatus

from ._models import OperationRecord, Origin, json_safe
from ._token import DistributedToken

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ("Entry", "Registry", "TrackedOperation", "deadline_at", "token_name")


class Registry(Protocol):
    """What a tracked operation needs from its `ClusterRegistry`."""

    namespace: str
    heartbeat_interval: float
    write_timeout: float
    _redis: str | Redis | AsyncRedis

    async def _run(self, coro: Coroutine[Any, Any, Any], *, shield: bool = False) -> Any: ...

    async def _add(self, entry: Entry) -> None: ...

    async def _finish(self, entry: Entry) -> None: ...


def token_name(operation_id: str) -> str:
    """The name of the `DistributedToken` that cancels a tracked operation."""
    return f"op:{operation_id}"


class Entry:
    """A tracked operation, as the heartbeat sees it (fields written on the loop thread,
    read on the registry's home loop: one attribute at a time)."""

    __slots__ = ("op", "start", "deadline_at", "progress", "progress_metadata")

    def __init__(self, op: Cancelable, deadline_at: float | None) -> None:
        self.op = op
        self.start = time.time()
        self.deadline_at = deadline_at
        self.progress: str | None = None
        self.progress_metadata: dict[str, Any] = {}

    def on_progress(self, operation_id: str, message: Any, metadata: dict[str, Any] | None) -> None:
        self.progress = None if message is None else str(message)
        self.progress_metadata = json_safe(metadata or {})

    def record(self, status: OperationStatus | None = None) -> OperationRecord:
        """The record now (any thread): ``status`` overrides the operation's."""
        ctx = self.op.context
        origin = Origin.here()
        return OperationRecord(
            id=ctx.id,
            name=ctx.name,
            status=status or ctx.status,
            host=origin.host,
            pid=origin.pid,
            start_time=datetime.fromtimestamp(self.start, UTC),
            heartbeat_at=datetime.now(UTC),
            end_time=ctx.end_time,
            progress=self.progress,
            progress_metadata=self.progress_metadata,
            deadline_at=datetime.fromtimestamp(self.deadline_at, UTC) if self.deadline_at is not None else None,
            cancel_reason=ctx.cancel_reason,
            cancel_message=ctx.cancel_message,
            error=ctx.error,
        )


def deadline_at(op: Cancelable) -> float | None:
    remaining = op.remaining()
    return None if remaining == float("inf") else time.time() + remaining


class TrackedOperation:
    """``async with cluster.track(op) as op:`` (see `ClusterRegistry.track`).

    Entering starts the operation's `DistributedToken` (``op:{id}``) and adds it as a
    source, writes the first record, then enters the operation.  Leaving leaves the
    operation (raising what it raises), then writes the final record to the history and
    closes the token, on every exit path (shielded; the final write waits at most the
    registry's ``write_timeout``).
    """

    def __init__(self, cluster: Registry, operation: Cancelable) -> None:
        self.cluster = cluster
        self.operation = operation
        self.token = DistributedToken(
            token_name(operation.id), cluster._redis, namespace=cluster.namespace,
            reread_interval=max(cluster.heartbeat_interval, 0.05), write_timeout=cluster.write_timeout,
        )
        self._entry: Entry | None = None

    async def __aenter__(self) -> Cancelable:
        op, cluster = self.operation, self.cluster
        await self.token.start()
        try:
            op.add_source(self.token)
            entry = Entry(op, deadline_at(op))
            op.on_progress(entry.on_progress)
            await cluster._run(cluster._add(entry))
            self._entry = entry
            await op.__aenter__()
        except BaseException:
            await self._teardown()
            raise
        entry.deadline_at = deadline_at(op)  # now with an enclosing parent's deadline too
        return op

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        try:
            return await self.operation.__aexit__(exc_type, exc, tb)
        finally:
            await self._teardown()

    async def _teardown(self) -> None:
        with anyio.CancelScope(shield=True):
            entry, self._entry = self._entry, None
            if entry is not None:
                with anyio.move_on_after(self.cluster.write_timeout + 1):
                    await self.cluster._run(self.cluster._finish(entry), shield=True)
            await self.token.aclose()
