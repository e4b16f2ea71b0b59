"""serve() (``_service.py``): workers stopped gracefully on signals, and the exit codes; on
asyncio and trio.  Real signals (SIGUSR1, so the test runner's own Ctrl-C stays its own)."""

from __future__ import annotations

import os
import signal

import anyio
import pytest

from cancelable_rx import Cancelable, CancelationReason, serve

pytestmark = pytest.mark.anyio
SIG = signal.SIGUSR1


def _kill_soon() -> None:
    os.kill(os.getpid(), SIG)


async def test_workers_that_return_give_their_codes() -> None:
    async def ok(op: Cancelable) -> None:
        await anyio.lowlevel.checkpoint()

    async def three(op: Cancelable) -> int:
        return 3

    assert await serve(ok, signals=(SIG,)) == 0
    assert await serve(ok, three, signals=(SIG,)) == 3


async def test_a_first_signal_asks_every_worker_to_stop() -> None:
    stopped: list[str] = []

    async def worker(op: Cancelable) -> None:
        request = await op.wait_for_stop()
        assert request.reason is CancelationReason.PARENT and request.grace == 5
        stopped.append(op.name or "")

    async def sender(op: Cancelable) -> None:
        await anyio.sleep(0.05)
        _kill_soon()
        await op.wait_for_stop()

    with anyio.fail_after(5):
        code = await serve(worker, worker, sender, grace=5, signals=(SIG,), name="svc")
    assert code == 0 and stopped == ["svc/worker", "svc/worker"]


async def test_a_second_signal_or_the_end_of_the_grace_cancels() -> None:
    cancelled: list[str] = []

    async def stubborn(op: Cancelable) -> None:
        try:
            await anyio.sleep(0.02)
            _kill_soon()
            await anyio.sleep(0.05)
            _kill_soon()  # the second one
            await anyio.sleep(5)
        finally:
            cancelled.append("cleanup ran")

    with anyio.fail_after(5):
        assert await serve(stubborn, grace=60, signals=(SIG,)) == 128 + SIG
    assert cancelled == ["cleanup ran"]

    async def ignores(op: Cancelable) -> None:
        await anyio.sleep(0.02)
        _kill_soon()
        await anyio.sleep(5)  # the grace period (0.1 s) ends first

    start = anyio.current_time()
    with anyio.fail_after(5):
        assert await serve(ignores, grace=0.1, signals=(SIG,)) == 128 + SIG
    assert anyio.current_time() - start < 2


async def test_a_worker_that_raises_stops_the_service_with_1(caplog: pytest.LogCaptureFixture) -> None:
    others: list[str] = []

    async def broken(op: Cancelable) -> None:
        await anyio.sleep(0.02)
        raise RuntimeError("worker broke")

    async def other(op: Cancelable) -> None:
        try:
            await anyio.sleep(5)
        finally:
            others.append("cancelled")

    with anyio.fail_after(5):
        assert await serve(broken, other, signals=(SIG,)) == 1
    assert others == ["cancelled"] and "worker broke" in caplog.text


async def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match=r"`workers` must be at least one value"):
        await serve()
    with pytest.raises(TypeError, match=r"`workers\[0\]` must be callable"):
        await serve(3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"`grace` must be"):
        await serve(lambda op: anyio.sleep(0), grace=-1)  # type: ignore[arg-type,return-value]
    with pytest.raises(ValueError, match=r"`signals` must be valid signal numbers"):
        await serve(lambda op: anyio.sleep(0), signals=(99999,))  # type: ignore[arg-type,return-value]
