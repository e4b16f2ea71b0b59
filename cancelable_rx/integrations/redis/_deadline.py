"""Deadlines that travel: the remaining budget of an operation, handed to another process.

A `Deadline` is the number of seconds an operation had left when it was issued, and the
wall-clock time it was issued at; the process that receives it subtracts the time the
job spent in transit (by its own clock, never adding time if the clocks disagree) and
runs the rest of the work under what is left.  A `JobTicket` adds the name of the
`DistributedToken` that cancels the job, so a worker stops when its budget runs out *or*
when anyone cancels the job, whichever comes first.
"""

from __future__ import annotations

import math
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import anyio
from pydantic import BaseModel, ConfigDict, Field
from redis import Redis
from redis.asyncio import Redis as AsyncRedis

from cancelable_rx import Cancelable, current_operation
from cancelable_rx._checks import check_instance, check_timeout, fail_value

from ._config import DEFAULT_NAMESPACE, check_name, check_namespace
from ._token import DistributedToken

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ("Deadline", "JobOperation", "JobTicket")


class Deadline(BaseModel):
    """A time budget as JSON: ``budget`` seconds left at ``issued_at`` (Unix time).

    ``budget`` None means no deadline.  Build it with `Deadline.of` (an operation's
    remaining time) or `Deadline.after` (seconds), send ``deadline.model_dump_json()``,
    and on the other side ``Deadline.model_validate_json(...)`` then `remaining` or
    `cancelable`.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    budget: float | None = Field(default=None, ge=0)
    issued_at: float = Field(default_factory=time.time)

    @classmethod
    def of(cls, operation: Cancelable | None = None) -> Deadline:
        """The remaining budget of ``operation`` (default: the current one), now.

        Loop thread of the operation only (it reads the loop clock).  Before the operation
        is entered that is its own timeout; while it runs, the time left until its
        effective deadline (its own or an enclosing parent's).
        """
        op = operation if operation is not None else current_operation()
        if op is None:
            fail_value("operation", "an operation", None, "pass one, or call Deadline.of() inside `async with op:`")
        check_instance(op, Cancelable, "operation", "a Cancelable")
        remaining = op.remaining()
        return cls(budget=None if math.isinf(remaining) else remaining)

    @classmethod
    def after(cls, seconds: float | timedelta) -> Deadline:
        """A budget of ``seconds`` (>= 0, or a timedelta) from now; ``math.inf`` for none."""
        budget = check_timeout(seconds, "seconds")
        return cls(budget=None if math.isinf(budget) else budget)

    def remaining(self) -> float:
        """Seconds left now: the budget less the time since it was issued (``math.inf`` for
        no deadline, ``0.0`` once spent).  A clock that runs behind the issuer's never adds
        time; one that runs ahead shortens the budget by the difference."""
        if self.budget is None:
            return math.inf
        elapsed = max(0.0, time.time() - self.issued_at)
        return max(0.0, self.budget - elapsed)

    def cancelable(self, operation_id: str | None = None, name: str | None = None, **kwargs: Any) -> Cancelable:
        """``Cancelable.with_timeout(self.remaining(), ...)``: an operation that keeps the budget
        (a spent one cancels at its first checkpoint with ``TIMEOUT``)."""
        return Cancelable.with_timeout(self.remaining(), operation_id, name, **kwargs)


class JobTicket(BaseModel):
    """What a job carries to the worker that runs it: the name of the `DistributedToken`
    that cancels it, and its `Deadline`.

    Producer: ``JobTicket.issue("job-42")`` inside an operation (its remaining time is the
    budget), put ``ticket.model_dump_json()`` in the job.  Worker:
    ``async with JobTicket.model_validate_json(raw).operation(redis_url) as op:``.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    token: str
    namespace: str = DEFAULT_NAMESPACE
    deadline: Deadline = Field(default_factory=Deadline)

    @classmethod
    def issue(
        cls,
        token: str | DistributedToken,
        operation: Cancelable | None = None,
        *,
        deadline: Deadline | None = None,
        namespace: str | None = None,
    ) -> JobTicket:
        """A ticket for the job cancelled by ``token`` (a name or a `DistributedToken`, whose
        namespace is used), with ``deadline``, else the remaining budget of ``operation`` (or
        of the current operation; no deadline outside one)."""
        if isinstance(token, DistributedToken):
            name, ns = token.name, token.namespace
        else:
            name, ns = check_name(token, "token"), DEFAULT_NAMESPACE
        if namespace is not None:
            ns = check_namespace(namespace)
        if deadline is not None:
            check_instance(deadline, Deadline, "deadline", "a Deadline", "e.g. Deadline.after(30)")
        elif operation is not None or current_operation() is not None:
            deadline = Deadline.of(operation)
        else:
            deadline = Deadline()
        return cls(token=name, namespace=ns, deadline=deadline)

    def remaining(self) -> float:
        """Seconds left of the job's budget (see `Deadline.remaining`)."""
        return self.deadline.remaining()

    def operation(
        self, redis: str | Redis | AsyncRedis, operation_id: str | None = None, name: str | None = None,
        **token_options: Any,
    ) -> JobOperation:
        """An async context manager that runs the job's work: an operation with the remaining
        budget as its timeout and the job's `DistributedToken` as a source (started on enter
        and closed on exit).  ``token_options`` go to `DistributedToken`."""
        token = DistributedToken(self.token, redis, namespace=self.namespace, **token_options)
        return JobOperation(self.deadline.cancelable(operation_id, name or f"job {self.token}"), token)


class JobOperation:
    """``async with ticket.operation(url) as op:`` (see `JobTicket.operation`).

    Cancellation: leaving raises `TimeoutCancelation` when the budget ran out, or the
    error for the reason of the job's cancel (`ManualCancelation`...); the token stops
    listening on every exit path.
    """

    def __init__(self, operation: Cancelable, token: DistributedToken) -> None:
        self.operation = operation
        self.token = token

    async def __aenter__(self) -> Cancelable:
        await self.token.start()
        try:
            self.operation.add_source(self.token)
            return await self.operation.__aenter__()
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self.token.aclose()
            raise

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        try:
            return await self.operation.__aexit__(exc_type, exc, tb)
        finally:
            with anyio.CancelScope(shield=True):
                await self.token.aclose()

    def __repr__(self) -> str:
        return f"<JobOperation {self.operation!r} token={self.token.name!r}>"
