"""CancelationToken and LinkedCancelationToken, on asyncio and trio."""

from __future__ import annotations

import gc
import logging
import threading
import tracemalloc
from datetime import UTC

import anyio
import pytest

from cancelable_rx import (
    Cancelable,
    CancelationError,
    CancelationReason,
    CancelationToken,
    LinkedCancelationToken,
    ManualCancelation,
    OperationRegistry,
    OperationStatus,
    TimeoutCancelation,
)

pytestmark = pytest.mark.anyio


async def test_cancel_sets_fields_once() -> None:
    token = CancelationToken()
    assert not token.is_cancelled and token.reason is None and token.cancelled_at is None
    assert await token.cancel(CancelationReason.MANUAL, "stop") is True
    assert token.is_cancelled and token.is_cancelation_requested()
    assert token.reason is CancelationReason.MANUAL and token.message == "stop"
    assert token.cancelled_at is not None and token.cancelled_at.tzinfo is UTC
    assert await token.cancel(CancelationReason.TIMEOUT, "again") is False
    assert token.reason is CancelationReason.MANUAL and token.message == "stop"
    assert token.model_dump()["is_cancelled"] is True


def test_cancel_sync_forms() -> None:
    a, b, c = CancelationToken(), CancelationToken(), CancelationToken()
    assert a.cancel_sync(message="kw form") is True
    assert a.reason is CancelationReason.MANUAL and a.message == "kw form"
    assert b.cancel_sync(CancelationReason.SIGNAL, "positional form") is True
    assert b.reason is CancelationReason.SIGNAL and b.message == "positional form"
    assert c.cancel_sync() is True and c.message is None
    assert c.cancel_sync() is False


def test_bad_reason_is_a_clear_error() -> None:
    # Kept: the "token reason" row of test_checks.py checks neither the fix (message=) on
    # the token's path nor that the rejected call leaves the token uncancelled.
    token = CancelationToken()
    with pytest.raises(ValueError, match=r"`reason` must be a CancelationReason.*'stop now'.*message="):
        token.cancel_sync("stop now")  # type: ignore[arg-type]
    assert not token.is_cancelled


def test_check_raises_typed_error() -> None:
    token = CancelationToken()
    token.check()  # not cancelled: nothing happens
    token.cancel_sync(message="halt")
    with pytest.raises(ManualCancelation, match="halt") as info:
        token.check()
    assert info.value.reason is CancelationReason.MANUAL
    timed_out = CancelationToken()
    timed_out.cancel_sync(CancelationReason.TIMEOUT)
    with pytest.raises(TimeoutCancelation):
        timed_out.check()


async def test_check_async_outside_an_operation_raises_typed_error() -> None:
    token = CancelationToken()
    await token.check_async()
    await token.cancel()
    with pytest.raises(ManualCancelation):
        await token.check_async()


async def test_check_async_inside_operation_delivers_the_cancellation() -> None:
    token = CancelationToken()
    reached = False
    with pytest.raises(ManualCancelation) as info:
        async with Cancelable.with_token(token):
            await token.cancel(message="inside")
            await token.check_async()
            reached = True
    assert not reached
    assert isinstance(info.value.__cause__, anyio.get_cancelled_exc_class())


async def test_wait_for_cancel_from_another_task() -> None:
    token = CancelationToken()
    woke = anyio.Event()

    async def waiter() -> None:
        await token.wait_for_cancel()
        woke.set()

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(waiter)
            await anyio.wait_all_tasks_blocked()
            assert not woke.is_set()
            await token.cancel()
            await woke.wait()
    assert token.listener_count == 0


async def test_wait_for_cancel_woken_by_a_plain_thread() -> None:
    token = CancelationToken()
    started = threading.Event()

    def canceller() -> None:
        started.wait(5)
        token.cancel_sync(message="from thread")

    thread = threading.Thread(target=canceller)
    thread.start()
    with anyio.fail_after(5):
        started.set()
        await token.wait_for_cancel()
    thread.join(5)
    assert token.message == "from thread"


async def test_register_callback_sync_and_async_and_immediate() -> None:
    token = CancelationToken()
    seen: list[str] = []

    async def async_cb(t: CancelationToken) -> None:
        seen.append(f"async:{t.message}")

    await token.register_callback(async_cb)
    await token.register_callback(lambda t: seen.append("sync"))
    await token.cancel(message="m")
    assert seen == ["async:m", "sync"]
    await token.register_callback(lambda t: seen.append("late"))
    assert seen[-1] == "late"


async def test_failing_callback_is_logged_and_isolated(caplog: pytest.LogCaptureFixture) -> None:
    token = CancelationToken()
    seen: list[int] = []

    def bad(_: CancelationToken) -> None:
        raise RuntimeError("callback boom")

    await token.register_callback(bad)
    await token.register_callback(lambda t: seen.append(1))
    with caplog.at_level(logging.ERROR, logger="cancelable_rx"):
        assert await token.cancel() is True
    assert seen == [1]
    assert "callback boom" in caplog.text


async def test_register_callback_runs_on_loop_after_cancel_sync_from_thread() -> None:
    token = CancelationToken()
    ran_in: list[int] = []
    done = anyio.Event()

    async def cb(_: CancelationToken) -> None:
        ran_in.append(threading.get_ident())
        done.set()

    await token.register_callback(cb)
    thread = threading.Thread(target=token.cancel_sync)
    thread.start()
    with anyio.fail_after(5):
        await done.wait()
    thread.join(5)
    assert ran_in == [threading.get_ident()]


async def test_link_preserves_reason_or_uses_parent() -> None:
    source_a, source_b = CancelationToken(), CancelationToken()
    keep, parent_style = LinkedCancelationToken(), LinkedCancelationToken()
    await keep.link(source_a, preserve_reason=True)
    await parent_style.link(source_b)
    await source_a.cancel(CancelationReason.SIGNAL, "sig")
    await source_b.cancel(CancelationReason.SIGNAL, "sig")
    assert keep.reason is CancelationReason.SIGNAL and keep.message == "sig"
    assert parent_style.reason is CancelationReason.PARENT


async def test_unlink_all_detaches_from_every_source() -> None:
    # Linking to a non-token or to itself: rows of test_checks.py ("link type", "link self").
    linked = LinkedCancelationToken()
    other = CancelationToken()
    await linked.link(other)
    assert other.listener_count == 1
    linked.unlink_all()
    assert other.listener_count == 0
    await other.cancel()
    assert not linked.is_cancelled


async def test_shared_token_holds_nothing_after_100k_operations() -> None:
    token = CancelationToken()
    for _ in range(2_000):  # warm caches before measuring
        async with Cancelable.with_token(token):
            pass
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for _ in range(100_000):
        async with Cancelable.with_token(token):
            pass
    gc.collect()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    assert token.listener_count == 0
    grown = sum(stat.size_diff for stat in after.compare_to(before, "filename") if stat.size_diff > 0)
    assert grown < 64 * 1024, f"{grown} bytes retained after 100k operations"
    assert not token.is_cancelled


async def test_operation_token_mirrors_operation_cancel() -> None:
    async with Cancelable.with_timeout(0.01, suppress_cancelation=True) as op:
        token = op.token
        await anyio.sleep(1)
    assert op.is_cancelled
    assert token.is_cancelled and token.reason is CancelationReason.TIMEOUT


async def test_a_token_cancel_reaches_every_record_of_the_operation() -> None:
    # The usual cancel (a shared token, the operation's own scope catching it) takes a short
    # path through the engine: everything attached must still hear of it.
    registry = OperationRegistry()
    token = CancelationToken()
    seen: list[CancelationReason] = []
    with pytest.raises(ManualCancelation) as info:
        async with Cancelable(name="parent") as parent:
            child = Cancelable.with_token(token, name="child", parent=parent)
            await registry.register(child)
            child.cancellation.subscribe(lambda event: seen.append(event.reason))
            async with child:
                assert child.context.status is OperationStatus.RUNNING  # a record built while it runs
                await token.cancel(message="stop job 42")
                await anyio.sleep(5)
    assert info.value.message == "stop job 42" and info.value.reason is CancelationReason.MANUAL
    assert info.value.args == ("stop job 42",) and str(info.value) == "stop job 42"
    assert isinstance(info.value.__cause__, anyio.get_cancelled_exc_class())
    assert info.value.context is not None and info.value.context.id == child.id
    assert seen == [CancelationReason.MANUAL]  # the cancellation observable
    assert child.token is token and token.message == "stop job 42"
    record = child.context
    assert record.status is OperationStatus.CANCELLED and record.end_time is not None
    assert record.cancel_reason is CancelationReason.MANUAL and record.cancel_message == "stop job 42"
    assert child.id in parent.context.child_ids
    assert await registry.get_operation(child.id) is child  # registered by hand: listed until unregistered
    stats = await registry.get_statistics()
    assert stats["total_cancelled"] == 1 and stats["cancelled_by_reason"] == {"manual": 1}
    await registry.unregister(child.id)
    history = registry.get_history_sync()
    assert [(r.id, r.status, r.cancel_message) for r in history] == [(child.id, OperationStatus.CANCELLED, "stop job 42")]
    assert token.listener_count == 0


async def test_cancelling_operation_token_cancels_operation() -> None:
    with pytest.raises(CancelationError) as info:
        async with Cancelable() as op:
            await op.token.cancel(message="via own token")
            await anyio.sleep(1)
    assert info.value.message == "via own token"


async def test_debug_logs_follow_the_level_set_after_they_were_off(caplog: pytest.LogCaptureFixture) -> None:
    # The hot paths read the logger's cached answer for DEBUG (see cancelable_rx._logs):
    # turning DEBUG on after a cancel found it off must log the next cancel and exit.
    from cancelable_rx import OperationRegistry

    with caplog.at_level(logging.INFO, logger="cancelable_rx"):
        await CancelationToken().cancel()
        async with Cancelable(register_globally=True):
            pass
    assert "cancelled (manual)" not in caplog.text and "ended: completed" not in caplog.text
    with caplog.at_level(logging.DEBUG, logger="cancelable_rx"):
        token = CancelationToken()
        await token.cancel()
        async with Cancelable(register_globally=True) as op:
            pass
    assert f"token {token.id} cancelled (manual)" in caplog.text
    assert f"operation {op.id} ended: completed" in caplog.text
    await OperationRegistry.get_instance().clear_all()


def test_a_logger_class_of_its_own_is_always_asked() -> None:
    # logging.setLoggerClass before the import: a class overriding isEnabledFor may answer
    # otherwise than the level cache, so the hot paths' shortcut is not used for it.
    import subprocess
    import sys

    script = (
        "import logging, sys\n"
        "class Switched(logging.Logger):\n"
        "    force = False\n"
        "    def isEnabledFor(self, level): return self.force or super().isEnabledFor(level)\n"
        "logging.setLoggerClass(Switched)\n"
        "logging.basicConfig(level=logging.WARNING, stream=sys.stdout, format='%(message)s')\n"
        "from cancelable_rx import CancelationToken\n"
        "CancelationToken(id='quiet').cancel_sync()\n"  # (the level cache now says no for DEBUG)
        "logging.getLogger('cancelable_rx').force = True\n"
        "CancelationToken(id='forced').cancel_sync()\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True).stdout
    assert "token quiet" not in out and "token forced cancelled (manual)" in out, out
