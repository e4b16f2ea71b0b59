"""OS signals as sources (``sources/signal.py``): real signals sent to this process, on
asyncio and trio."""

from __future__ import annotations

import os
import signal
import threading

import anyio
import pytest

from cancelable_rx import Cancelable, CancelationReason, SignalCancelation
from cancelable_rx.sources import _signal_hub

pytestmark = [pytest.mark.anyio, pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="POSIX signals only")]


async def _send(sig: int) -> None:
    os.kill(os.getpid(), sig)


async def test_signal_cancels_and_handler_is_restored() -> None:
    previous = signal.getsignal(signal.SIGUSR1)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            with pytest.raises(SignalCancelation) as info:
                async with Cancelable.with_signal(signal.SIGUSR1) as op:
                    assert signal.getsignal(signal.SIGUSR1) is not previous
                    tg.start_soon(_send, signal.SIGUSR1)  # runs once the body waits below
                    await anyio.sleep_forever()
    assert info.value.signal_number == signal.SIGUSR1
    assert "SIGUSR1" in info.value.message
    assert op.cancel_reason is CancelationReason.SIGNAL
    assert signal.getsignal(signal.SIGUSR1) is previous
    assert _signal_hub.listener_count(signal.SIGUSR1) == 0


async def test_two_operations_on_one_signal_both_fire() -> None:
    previous = signal.getsignal(signal.SIGUSR2)
    results: list[int] = []
    both_in = anyio.Event()
    count = 0

    async def op_task() -> None:
        nonlocal count
        try:
            async with Cancelable.with_signal(signal.SIGUSR2, signal.SIGUSR1):
                count += 1
                if count == 2:
                    both_in.set()
                await anyio.sleep_forever()
        except SignalCancelation as err:
            results.append(err.signal_number)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(op_task)
            tg.start_soon(op_task)
            await both_in.wait()
            assert _signal_hub.listener_count(signal.SIGUSR2) == 2
            os.kill(os.getpid(), signal.SIGUSR2)
    assert results == [signal.SIGUSR2, signal.SIGUSR2]
    assert signal.getsignal(signal.SIGUSR2) is previous


def test_signal_outside_main_thread_is_a_clear_error() -> None:
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            Cancelable.with_signal(signal.SIGUSR1)
        except BaseException as err:  # noqa: BLE001 - handed to the main thread
            errors.append(err)

    thread = threading.Thread(target=worker, name="not-main")
    thread.start()
    thread.join(5)
    assert len(errors) == 1 and isinstance(errors[0], RuntimeError)
    assert "main thread" in str(errors[0]) and "not-main" in str(errors[0])
