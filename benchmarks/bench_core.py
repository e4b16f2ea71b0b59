"""Core overhead benchmark: cancelable_rx against raw anyio, in one run, on both backends.

Run:  .venv/bin/python benchmarks/bench_core.py [--quick] [--json PATH]

Each case is timed in interleaved rounds (ours, baseline, ours, ...) and reported as the
median per-operation time of each and their ratio, so machine noise hits both sides
(see ``_harness.py``).  The cases of conditions, progress, concurrency and timer lateness
are in ``_core_cases.py``.
"""

from __future__ import annotations

import statistics
import sys
import threading
import time

import anyio
from _core_cases import (
    raw_cpu_poll,
    raw_lateness,
    raw_report,
    raw_report_silent,
    raw_start_many,
    rx_condition,
    rx_cpu_poll,
    rx_lateness,
    rx_report,
    rx_report_silent,
    rx_start_many,
    rx_timeout_token_condition,
)
from _harness import Loop, Row, arguments, compare, finish, machine, print_table

from cancelable_rx import Cancelable, CancelationError, CancelationToken

# -- enter/exit loops: each returns seconds for n operations -----------------------------

async def raw_scope(n: int) -> float:
    t = time.perf_counter()
    for _ in range(n):
        with anyio.CancelScope():
            pass
    return time.perf_counter() - t


async def raw_fail_after(n: int) -> float:
    t = time.perf_counter()
    for _ in range(n):
        with anyio.fail_after(30):
            pass
    return time.perf_counter() - t


async def rx_bare(n: int) -> float:
    t = time.perf_counter()
    for _ in range(n):
        async with Cancelable():
            pass
    return time.perf_counter() - t


async def rx_timeout(n: int) -> float:
    t = time.perf_counter()
    for _ in range(n):
        async with Cancelable.with_timeout(30):
            pass
    return time.perf_counter() - t


_TOKEN = CancelationToken()


async def rx_token(n: int) -> float:
    token = _TOKEN
    t = time.perf_counter()
    for _ in range(n):
        async with Cancelable.with_token(token):
            pass
    return time.perf_counter() - t


async def rx_timeout_token(n: int) -> float:
    token = _TOKEN
    t = time.perf_counter()
    for _ in range(n):
        async with Cancelable.with_timeout(30).combine(Cancelable.with_token(token)):
            pass
    return time.perf_counter() - t


# -- cancel until exit -----------------------------------------------------------------

async def _raw_worker(holder: list[anyio.CancelScope], ready: anyio.Event, done: anyio.Event, stamp: list[float]) -> None:
    with anyio.CancelScope() as scope:
        holder.append(scope)
        ready.set()
        await anyio.sleep_forever()
    stamp[0] = time.perf_counter()
    done.set()


async def raw_cancel_to_exit(n: int) -> float:
    total = 0.0
    for _ in range(n):
        ready, done = anyio.Event(), anyio.Event()
        holder: list[anyio.CancelScope] = []
        stamp = [0.0]
        async with anyio.create_task_group() as tg:
            tg.start_soon(_raw_worker, holder, ready, done, stamp)
            await ready.wait()
            t0 = time.perf_counter()
            holder[0].cancel()
            await done.wait()
        total += stamp[0] - t0
    return total


async def _rx_worker(token: CancelationToken, ready: anyio.Event, done: anyio.Event, stamp: list[float]) -> None:
    try:
        async with Cancelable.with_token(token):
            ready.set()
            await anyio.sleep_forever()
    except CancelationError:
        stamp[0] = time.perf_counter()
    done.set()


async def rx_cancel_to_exit(n: int) -> float:
    total = 0.0
    for _ in range(n):
        ready, done = anyio.Event(), anyio.Event()
        token = CancelationToken()
        stamp = [0.0]
        async with anyio.create_task_group() as tg:
            tg.start_soon(_rx_worker, token, ready, done, stamp)
            await ready.wait()
            t0 = time.perf_counter()
            await token.cancel()
            await done.wait()
        total += stamp[0] - t0
    return total


def _cancel_later(op: Cancelable, go: threading.Event, t0: list[float]) -> None:
    go.wait(5)
    time.sleep(0.001)
    t0[0] = time.perf_counter()
    op.cancel_sync(message="bench")


async def thread_cancel_samples(n: int) -> list[float]:
    """Seconds from ``cancel_sync()`` in a plain thread to the operation's exit."""
    samples = []
    for _ in range(n):
        op = Cancelable()
        go = threading.Event()
        t0 = [0.0]
        th = threading.Thread(target=_cancel_later, args=(op, go, t0))
        th.start()
        try:
            async with op:
                go.set()
                await anyio.sleep_forever()
        except CancelationError:
            samples.append(time.perf_counter() - t0[0])
        th.join()
    return samples


# label, ours, baseline, baseline label, target ratio, ops per round
CASES: list[tuple[str, Loop, Loop, str, float, int]] = [
    ("bare Cancelable()", rx_bare, raw_scope, "CancelScope()", 1.3, 2000),
    ("with_timeout(30)", rx_timeout, raw_fail_after, "fail_after(30)", 1.1, 2000),
    ("with_token(t)", rx_token, raw_scope, "CancelScope()", 1.3, 2000),
    ("with_condition(f, 0.01)", rx_condition, raw_scope, "CancelScope()", 3.0, 2000),
    ("timeout + token combine", rx_timeout_token, raw_fail_after, "fail_after(30)", 1.5, 2000),
    ("timeout + token + condition combine", rx_timeout_token_condition, raw_fail_after, "fail_after(30)", 3.0, 2000),
    ("token.cancel() until exited", rx_cancel_to_exit, raw_cancel_to_exit, "scope.cancel() until exited", 1.3, 200),
    ("report_progress(), 1 sync callback", rx_report, raw_report, "async def calling the callback", 1.3, 20000),
    ("report_progress(), no listener", rx_report_silent, raw_report_silent, "empty async def", 1.1, 20000),
    ("10,000 concurrent operations started and ended", rx_start_many, raw_start_many, "10,000 CancelScope()", 1.2, 10000),
    ("lateness of with_timeout(0.02), median", rx_lateness, raw_lateness, "move_on_after(0.02)", 1.2, 25),
]


async def run_backend(backend: str, rounds: int) -> list[Row]:
    rows = []
    for label, ours, base, base_label, target, n in CASES:
        r = rounds if n > 100 else max(3, rounds)
        ma, mb = await compare(ours, base, n, r)
        rows.append(Row("core", backend, label, ma, mb, target, baseline_label=base_label))
    # CPU while 1,000 operations each poll a condition every 10 ms: ours and one raw task
    # polling the same 1,000 conditions (process CPU seconds per wall second)
    ma, mb = await compare(rx_cpu_poll, raw_cpu_poll, 1, max(3, rounds // 2), warmup=False)
    rows.append(
        Row("core", backend, "CPU: 1,000 conditions polled every 10 ms", ma, mb, 1.2,
            baseline_label="one task polling the same 1,000 conditions", unit="CPU s/s")
    )
    samples = await thread_cancel_samples(30 if rounds < 7 else 100)
    rows.append(Row("core", backend, "cancel_sync() from a thread until exited (median)", statistics.median(samples), None, 1e-3, kind="absolute"))
    return rows


def main() -> int:
    args = arguments("core overheads against raw anyio")
    rounds = 3 if args.quick else 9
    info = machine()
    print(f"python {info['python']}, anyio {info['versions']['anyio']}, trio {info['versions']['trio']}, {info['cpu']}")
    rows: list[Row] = []
    for backend in ("asyncio", "trio"):
        backend_rows = anyio.run(run_backend, backend, rounds, backend=backend)
        print_table(backend, backend_rows)
        rows += backend_rows
    return finish(rows, args.json, "core")


if __name__ == "__main__":
    sys.exit(main())
