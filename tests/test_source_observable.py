"""ObservableSource (``sources/observable.py``): any reactivex Observable as a source; on
asyncio and trio."""

from __future__ import annotations

import threading

import anyio
import pytest
import reactivex
from reactivex.subject import Subject

from cancelable_rx import Cancelable, CancelationError, CancelationReason

pytestmark = pytest.mark.anyio


async def test_observable_source_first_item_cancels_from_another_thread() -> None:
    subject: Subject[int] = Subject()
    entered = threading.Event()

    def emitter() -> None:
        entered.wait(5)
        subject.on_next(42)

    thread = threading.Thread(target=emitter)
    thread.start()
    with anyio.fail_after(5), pytest.raises(CancelationError) as info:
        async with Cancelable.with_observable(subject, CancelationReason.CONDITION, "quota hit"):
            entered.set()
            await anyio.sleep_forever()
    thread.join(5)
    assert info.value.reason is CancelationReason.CONDITION and info.value.message == "quota hit"


async def test_observable_error_cancels_with_error_reason() -> None:
    boom = RuntimeError("feed died")
    with pytest.raises(CancelationError) as info:
        async with Cancelable.with_observable(reactivex.throw(boom)) as op:
            await anyio.sleep(5)
    assert info.value.reason is CancelationReason.ERROR and "feed died" in info.value.message
    assert info.value.__cause__ is boom  # the exception itself, not only its text
    assert op.context.error == "feed died" and op.context.cancel_reason is CancelationReason.ERROR


async def test_timeout_cancelation_is_a_timeout_error() -> None:
    with pytest.raises(TimeoutError):  # what retry libraries and `except TimeoutError` look for
        async with Cancelable.with_timeout(0.01):
            await anyio.sleep(5)


async def test_observable_subscription_is_disposed_at_exit() -> None:
    subject: Subject[int] = Subject()
    async with Cancelable().add_source(subject):
        assert len(subject.observers) == 1
    assert subject.observers == []


async def test_completing_without_an_item_never_fires() -> None:
    async with Cancelable.with_observable(reactivex.empty()) as op:
        await anyio.lowlevel.checkpoint()
    assert op.is_completed and op.cancel_reason is None
