"""Deadlines travel: a job handed to another process keeps the budget its producer had left."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from datetime import timedelta

import anyio
import pytest
from redis_support import Worker, fresh_namespace

from cancelable_rx import Cancelable, CancelationReason, TimeoutCancelation
from cancelable_rx.integrations.redis import Deadline, DistributedToken, JobTicket
from cancelable_rx.integrations.redis.testing import RedisServer

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    with RedisServer() as srv:
        yield srv


async def test_the_deadline_of_an_operation_travels_as_json() -> None:
    async with Cancelable.with_timeout(10) as op:
        deadline = Deadline.of(op)
        current = Deadline.of()  # the current operation's
        assert current.budget is not None and deadline.budget is not None
        assert 0 <= deadline.budget - current.budget < 0.5
    assert deadline.budget is not None and 9 < deadline.budget <= 10
    copy = Deadline.model_validate_json(deadline.model_dump_json())
    assert copy == deadline and 9 < copy.remaining() <= 10


def test_remaining_subtracts_the_time_in_transit_and_never_adds_any() -> None:
    now = time.time()
    assert Deadline(budget=5, issued_at=now - 2).remaining() == pytest.approx(3, abs=0.1)
    assert Deadline(budget=5, issued_at=now + 60).remaining() == pytest.approx(5, abs=0.01)  # clock behind: no gift
    assert Deadline(budget=5, issued_at=now - 10).remaining() == 0.0
    assert Deadline().remaining() == math.inf and Deadline.after(math.inf).budget is None
    assert Deadline.after(timedelta(seconds=2)).budget == 2.0 and Deadline.after(0).budget == 0.0


async def test_a_spent_budget_cancels_at_the_first_checkpoint() -> None:
    with pytest.raises(TimeoutCancelation):
        async with Deadline(budget=1, issued_at=time.time() - 5).cancelable(name="late job"):
            await anyio.sleep(1)


async def test_no_deadline_outside_an_operation() -> None:
    ticket = JobTicket.issue("plain")
    assert ticket.deadline.budget is None and ticket.remaining() == math.inf
    async with Deadline().cancelable() as op:
        assert op.remaining() == math.inf


@pytest.mark.parametrize("worker_backend", ["asyncio", "trio"])
async def test_a_job_handed_to_another_process_keeps_its_deadline(server: RedisServer, worker_backend: str) -> None:
    ns = fresh_namespace()
    async with Cancelable.with_timeout(2.0) as op:
        await anyio.sleep(0.3)
        ticket = JobTicket.issue(DistributedToken("job-7", server.url, namespace=ns), op)
        ends_at = time.monotonic() + op.remaining()  # when the producer's budget runs out
    assert ticket.namespace == ns and ticket.deadline.budget is not None and ticket.deadline.budget < 1.75
    worker = await Worker.start(mode="job", url=server.url, ticket=ticket.model_dump_json(), backend=worker_backend,
                                limit=30)
    try:
        ready = await worker.expect("ready")
        assert 0 < ready["remaining"] < 1.75  # less than the producer started with: transit counted
        stopped = await worker.expect("stopped", timeout=10)
        assert stopped["reason"] == "timeout" and stopped["status"] == "cancelled"
        assert abs(stopped["at"] - ends_at) < 0.3, stopped["at"] - ends_at  # the same deadline, in another process
        assert await worker.finish() == 0
    finally:
        await worker.aclose()


async def test_a_job_is_also_stopped_by_its_token(server: RedisServer) -> None:
    ns = fresh_namespace()
    ticket = JobTicket.issue("job-8", deadline=Deadline.after(60), namespace=ns)
    worker = await Worker.start(mode="job", url=server.url, ticket=ticket.model_dump_json(), limit=30)
    try:
        await worker.expect("ready")
        await DistributedToken("job-8", server.url, namespace=ns).cancel(CancelationReason.MANUAL, "job withdrawn")
        stopped = await worker.expect("stopped", timeout=10)
        assert (stopped["reason"], stopped["message"]) == ("manual", "job withdrawn")
        assert stopped["elapsed"] < 10
        assert await worker.finish() == 0
    finally:
        await worker.aclose()


async def test_the_job_operation_releases_its_token_on_every_exit(server: RedisServer) -> None:
    ticket = JobTicket.issue("job-9", deadline=Deadline.after(0.05), namespace=fresh_namespace())
    job = ticket.operation(server.url)
    with pytest.raises(TimeoutCancelation):
        async with job:
            await anyio.sleep(5)
    assert not job.token.is_listening
    with pytest.raises(KeyError):
        async with ticket.operation(server.url) as op:
            raise KeyError(op.name)


def test_bad_arguments_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="`operation` must be an operation"):
        Deadline.of()
    with pytest.raises(TypeError, match="`operation` must be a Cancelable"):
        Deadline.of("op")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="`seconds` must be a number of seconds >= 0"):
        Deadline.after(-1)
    with pytest.raises(ValueError, match="`token` must be a non-empty str"):
        JobTicket.issue("")
    with pytest.raises(TypeError, match="`deadline` must be a Deadline"):
        JobTicket.issue("j", deadline=5)  # type: ignore[arg-type]
