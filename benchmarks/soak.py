"""Soak (opt-in, takes minutes): 10,000 concurrent operations with a mix of sources,
cancelled and restarted, while the resident memory is sampled.

Run:  .venv/bin/python benchmarks/soak.py [--seconds 180] [--backend asyncio|trio] [--tasks 10000]

Each task loops: it builds an operation (a timeout, a token of its own, a shared token, a
timeout combined with a token, a parent with a child, a condition), enters it, sleeps a
random time, and is ended by its timeout, by a token cancelled from another task or from a
plain thread, by ``cancel_sync`` from a thread, or completes.  After a warm-up (a quarter
of the run) the resident set size must stay within 5% of its level at the end of the
warm-up; the script prints the samples and exits non-zero otherwise.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import sys
import threading
import time

import anyio

from cancelable_rx import Cancelable, CancelationError, CancelationToken


def rss_mb() -> float:
    with open(f"/proc/{os.getpid()}/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


class Stats:
    def __init__(self) -> None:
        self.completed = 0
        self.cancelled = 0


async def worker(i: int, deadline: float, shared: list[CancelationToken], pending: list[object], stats: Stats) -> None:
    rng = random.Random(i)
    while anyio.current_time() < deadline:
        kind = rng.randrange(6)
        nap = rng.uniform(0, 0.2)
        if kind == 0:
            op = Cancelable.with_timeout(rng.uniform(0.01, 0.2))
        elif kind == 1:
            token = CancelationToken()
            pending.append(token)  # cancelled later by the canceller thread
            op = Cancelable.with_token(token)
        elif kind == 2:
            op = Cancelable.with_token(shared[rng.randrange(len(shared))])
        elif kind == 3:
            op = Cancelable.with_timeout(rng.uniform(0.01, 0.2)).combine(Cancelable.with_token(CancelationToken()))
        elif kind == 4:
            op = Cancelable(name="parent")
            pending.append(op)  # cancel_sync() from the thread
        else:
            flag = rng.random() < 0.5
            op = Cancelable.with_condition(lambda flag=flag: flag, 0.05)
        try:
            async with op:
                if kind == 4:
                    async with Cancelable(parent=op):
                        await anyio.sleep(nap)
                else:
                    await anyio.sleep(nap)
            stats.completed += 1
        except CancelationError:
            stats.cancelled += 1


def canceller(pending: list[object], stop: threading.Event) -> None:
    rng = random.Random(7)
    while not stop.is_set():
        time.sleep(0.005)
        batch, pending[:] = pending[:], []
        for obj in batch:
            if rng.random() < 0.7:
                if isinstance(obj, CancelationToken):
                    obj.cancel_sync(message="soak")
                else:
                    obj.cancel_sync(message="soak")  # type: ignore[attr-defined]


async def main(seconds: float, tasks: int) -> int:
    stats = Stats()
    shared = [CancelationToken() for _ in range(16)]
    pending: list[object] = []
    stop = threading.Event()
    thread = threading.Thread(target=canceller, args=(pending, stop), daemon=True)
    thread.start()
    deadline = anyio.current_time() + seconds
    samples: list[tuple[float, float]] = []
    start = time.monotonic()

    async def sampler() -> None:
        while anyio.current_time() < deadline:
            await anyio.sleep(max(1.0, seconds / 30))
            # rotate the shared tokens: cancel one and replace it
            k = random.randrange(len(shared))
            shared[k].cancel_sync(message="rotate")
            shared[k] = CancelationToken()
            gc.collect()
            samples.append((time.monotonic() - start, rss_mb()))
            print(f"  t={samples[-1][0]:6.1f}s  rss={samples[-1][1]:7.1f} MB  completed={stats.completed}  cancelled={stats.cancelled}", flush=True)

    async with anyio.create_task_group() as tg:
        tg.start_soon(sampler)
        for i in range(tasks):
            tg.start_soon(worker, i, deadline, shared, pending, stats)
    stop.set()
    thread.join(5)
    warm = [s for s in samples if s[0] >= seconds / 4]
    if len(warm) < 2:
        print("run longer: not enough samples after the warm-up")
        return 2
    base, last, peak = warm[0][1], warm[-1][1], max(s[1] for s in warm)
    growth = (peak - base) / base
    ok = growth <= 0.05
    print(
        f"\nRSS after warm-up {base:.1f} MB, at the end {last:.1f} MB, peak {peak:.1f} MB: "
        f"{growth * 100:+.1f}% (target <= +5%) {'ok' if ok else 'MISSED'}; "
        f"{stats.completed + stats.cancelled:,} operations ({stats.cancelled:,} cancelled)"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=180.0)
    ap.add_argument("--tasks", type=int, default=10_000)
    ap.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
    a = ap.parse_args()
    print(f"soak: {a.tasks:,} concurrent operations for {a.seconds:.0f} s on {a.backend}")
    sys.exit(anyio.run(main, a.seconds, a.tasks, backend=a.backend))
