"""LoopHandle and capture() (``_loop.py``): reaching an event loop from any thread, with
real threads and real loops, on asyncio and trio."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from anyio.abc import TaskStatus

from cancelable_rx._loop import LoopHandle, capture

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parent.parent
NO_LOOP = r"cancelable_rx needs a running asyncio or trio event loop in this thread"


async def _grab() -> LoopHandle:
    return capture()


# -- capture() ------------------------------------------------------------------------------


async def test_capture_describes_the_running_loop(anyio_backend: str) -> None:
    handle = capture()
    assert handle.thread_id == threading.get_ident() and handle.in_loop_thread()
    assert handle.is_trio is (anyio_backend == "trio")
    before = handle.now()
    after = anyio.current_time()
    assert before <= after < before + 1  # the loop's own clock
    with handle.scope_cls() as scope:
        scope.cancel()
        await anyio.lowlevel.checkpoint()
    assert scope.cancelled_caught


async def test_capture_is_cached_per_loop() -> None:
    first = capture()
    from_other_task: list[LoopHandle] = []

    async def other_task() -> None:
        from_other_task.append(capture())

    async with anyio.create_task_group() as tg:
        tg.start_soon(other_task)
    assert capture() is first and from_other_task == [first]


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_each_loop_gets_its_own_handle(backend: str) -> None:
    async def grab_twice() -> tuple[LoopHandle, LoopHandle]:
        return capture(), capture()

    a1, a2 = anyio.run(grab_twice, backend=backend)
    b1, b2 = anyio.run(grab_twice, backend=backend)
    assert a1 is a2 and b1 is b2 and a1 is not b1


async def test_two_loops_in_two_threads_each_capture_their_own(anyio_backend: str) -> None:
    worker_ok: list[bool] = []
    worker_ready, main_done = threading.Event(), threading.Event()

    async def worker_main() -> None:
        me = threading.get_ident()
        worker_ready.set()
        for _ in range(2_000):
            worker_ok.append(capture().thread_id == me)
            await anyio.lowlevel.checkpoint()
            if main_done.is_set() and len(worker_ok) >= 200:
                break

    thread = threading.Thread(target=anyio.run, args=(worker_main,), kwargs={"backend": anyio_backend})
    thread.start()
    me = threading.get_ident()
    main_ok: list[bool] = []
    with anyio.fail_after(5):
        await anyio.to_thread.run_sync(worker_ready.wait, 5)
        for _ in range(200):
            main_ok.append(capture().thread_id == me)
            await anyio.lowlevel.checkpoint()
    main_done.set()
    await anyio.to_thread.run_sync(thread.join, 5)
    assert not thread.is_alive()
    assert main_ok and all(main_ok) and worker_ok and all(worker_ok)


def test_capture_outside_a_loop_is_a_clear_error() -> None:
    with pytest.raises(RuntimeError, match=NO_LOOP):
        capture()


async def test_capture_in_a_worker_thread_is_a_clear_error() -> None:
    with pytest.raises(RuntimeError, match=NO_LOOP):
        await anyio.to_thread.run_sync(capture)


# -- call: inline on the loop thread, a hop from elsewhere -------------------------------------


async def test_call_runs_inline_on_the_loop_thread() -> None:
    handle = capture()
    ran: list[int] = []
    handle.call(lambda: ran.append(threading.get_ident()))
    assert ran == [threading.get_ident()]  # already ran: no checkpoint in between
    with pytest.raises(ZeroDivisionError):
        handle.call(lambda: 1 / 0)  # inline, so the caller sees the exception


async def test_call_from_another_thread_hops_to_the_loop() -> None:
    handle = capture()
    loop_thread = threading.get_ident()
    ran_in: list[int] = []
    worker: list[tuple[int, bool]] = []
    done = anyio.Event()

    def on_loop() -> None:
        ran_in.append(threading.get_ident())
        done.set()

    def in_worker() -> None:
        worker.append((threading.get_ident(), handle.in_loop_thread()))
        handle.call(on_loop)

    thread = threading.Thread(target=in_worker)
    thread.start()
    with anyio.fail_after(5):
        await done.wait()
    thread.join(5)
    [(worker_thread, worker_in_loop)] = worker
    assert worker_thread != loop_thread and not worker_in_loop
    assert ran_in == [loop_thread]


async def test_a_failing_hopped_callback_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    handle = capture()
    reached = anyio.Event()

    def bad() -> None:
        reached.set()
        raise RuntimeError("hopped boom")

    with caplog.at_level(logging.ERROR, logger="cancelable_rx"):
        await anyio.to_thread.run_sync(handle.call, bad)  # returns at once: nothing raised there
        with anyio.fail_after(5):
            await reached.wait()
    assert "callback scheduled on the loop failed" in caplog.text and "hopped boom" in caplog.text
    # The loop survived the failure: it still runs callbacks.
    again = anyio.Event()
    await anyio.to_thread.run_sync(handle.call, again.set)
    with anyio.fail_after(5):
        await again.wait()


async def test_run_soon_on_the_loop_thread_runs_later_not_inline() -> None:
    handle = capture()
    ran = anyio.Event()
    handle.run_soon(ran.set)
    assert not ran.is_set()
    with anyio.fail_after(5):
        await ran.wait()


async def _wait_in_a_scope(handle: LoopHandle, *, task_status: TaskStatus[Any] = anyio.TASK_STATUS_IGNORED) -> None:
    """Enter a scope of the handle's class (as an operation's is), hand it over, wait in it."""
    with handle.scope_cls() as scope:
        task_status.started(scope)
        await anyio.sleep(5)


async def test_cancel_scope_cancels_at_once_from_outside_and_inside_the_scope() -> None:
    handle = capture()
    me = anyio.get_current_task()
    async with anyio.create_task_group() as tg:
        scope = await tg.start(_wait_in_a_scope, handle)
        handle.cancel_scope(scope)  # from a task outside the scope
        assert scope.cancel_called  # at once: not queued for later
        assert anyio.get_current_task() == me  # the calling task is the current one again
    assert scope.cancelled_caught

    with handle.scope_cls() as own:  # from the task inside the scope: at the next checkpoint
        handle.cancel_scope(own)
        assert own.cancel_called
        await anyio.lowlevel.checkpoint()
        pytest.fail("the checkpoint must be cancelled")  # pragma: no cover
    assert own.cancelled_caught


@pytest.mark.parametrize("where", ["in the cancel", "right after clearing the current task"])
def test_an_error_while_cancelling_leaves_the_calling_task_current(where: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # E.g. a signal handler that raises (a second Ctrl-C) between two statements.
    import cancelable_rx._loop as loop_module

    class Scope:
        def cancel(self) -> None:
            if where == "in the cancel":
                raise KeyboardInterrupt

    if where != "in the cancel":
        real = loop_module._leave_task
        assert real is not None

        def leave_then_interrupted(loop: object, task: object) -> None:
            real(loop, task)
            raise KeyboardInterrupt

        monkeypatch.setattr(loop_module, "_leave_task", leave_then_interrupted)

    async def main() -> None:
        me = asyncio.current_task()
        with pytest.raises(KeyboardInterrupt):
            capture().cancel_scope(Scope())  # a scope this task is not inside
        assert asyncio.current_task() is me
        await asyncio.sleep(0)  # the task still runs normally

    asyncio.run(main())


def test_cancel_scope_with_a_task_factory_lets_the_tasks_see_who_cancels() -> None:
    # A task factory (a monitor) may make tasks whose cancel() asks for the current task,
    # and anyio's delivery calls it: with a factory the cancel runs as is.
    seen: list[object] = []

    class Traced(asyncio.Task):  # type: ignore[type-arg]
        def cancel(self, msg: object = None) -> bool:
            seen.append(asyncio.current_task())
            return super().cancel(msg)

    async def main() -> None:
        asyncio.get_running_loop().set_task_factory(lambda loop, coro, **kw: Traced(coro, loop=loop, **kw))
        handle = capture()
        async with anyio.create_task_group() as tg:
            handle.cancel_scope(await tg.start(_wait_in_a_scope, handle))
            me = asyncio.current_task()
        assert seen and seen[0] is me  # the worker's cancel() saw the cancelling task

    asyncio.run(main())


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_run_soon_on_a_closed_loop_is_a_silent_no_op(backend: str, caplog: pytest.LogCaptureFixture) -> None:
    handle = anyio.run(_grab, backend=backend)  # the loop has finished (and asyncio's is closed)
    ran: list[str] = []

    async def never() -> None:  # pragma: no cover - must not run
        ran.append("spawned")

    def from_thread() -> None:
        handle.run_soon(lambda: ran.append("thread"))

    with caplog.at_level(logging.DEBUG, logger="cancelable_rx"):
        handle.run_soon(lambda: ran.append("here"))  # must not raise
        handle.spawn(never)
        thread = threading.Thread(target=from_thread)
        thread.start()
        thread.join(5)
    assert ran == []
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


# -- spawn: background tasks -----------------------------------------------------------------


async def test_spawn_runs_a_background_task_and_logs_its_failure(caplog: pytest.LogCaptureFixture) -> None:
    handle = capture()
    ran_in: list[int] = []
    ok, failed = anyio.Event(), anyio.Event()

    async def work() -> None:
        await anyio.lowlevel.checkpoint()  # a real task: it can await
        ran_in.append(threading.get_ident())
        ok.set()

    async def broken() -> None:
        await anyio.lowlevel.checkpoint()
        failed.set()
        raise RuntimeError("task boom")

    with caplog.at_level(logging.ERROR, logger="cancelable_rx"):
        handle.spawn(work)  # from the loop thread
        assert ran_in == []  # started in the background, not run inline
        await anyio.to_thread.run_sync(handle.spawn, broken)  # from another thread
        with anyio.fail_after(5):
            await ok.wait()
            await failed.wait()
    assert ran_in == [threading.get_ident()]
    assert "background callback failed" in caplog.text and "task boom" in caplog.text


# -- trio is never imported by the package ------------------------------------------------------

_PROGRAM = """
import sys

import anyio

import cancelable_rx
from cancelable_rx import Cancelable
from cancelable_rx._loop import capture

try:
    capture()
except RuntimeError as err:
    assert "needs a running asyncio or trio event loop" in str(err), err
else:
    raise AssertionError("capture() outside a loop must raise")


async def main():
    async with Cancelable() as op:
        await anyio.lowlevel.checkpoint()
    return op.status.value


status = {run}
assert status == "completed", status
{check}
print("trio loaded:", "trio" in sys.modules)
"""


def _run_program(run: str, check: str = "") -> subprocess.CompletedProcess[str]:
    program = _PROGRAM.format(run=run, check=check)
    return subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60, cwd=ROOT)


def test_asyncio_never_imports_trio() -> None:
    result = _run_program("anyio.run(main)", check="assert 'trio' not in sys.modules, 'trio was imported'")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "trio loaded: False"


def test_the_same_program_runs_on_trio() -> None:
    result = _run_program("anyio.run(main, backend='trio')")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "trio loaded: True"
