"""A worker process for the Redis tests: ``python tests/redis_worker.py '<json config>'``.

It reports on stdout, one JSON object per line: ``{"event": "ready", ...}`` once it
listens, then what stopped its work.  It gives up (exit 3) after ``limit`` seconds, so a
test that fails never leaves it running.

Modes:
  wait   listen to ``names`` (one operation per token) and report each one's end
  track  run one operation tracked by a ClusterRegistry, report progress, until cancelled
  job    run a JobTicket's work (its deadline and its token) and report how it ended
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

import anyio

from cancelable_rx import Cancelable, CancelationError
from cancelable_rx.integrations.redis import ClusterRegistry, DistributedToken, JobTicket


def say(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


async def wait_mode(cfg: dict[str, Any]) -> None:
    stopped: dict[str, list[Any]] = {}
    tokens = [DistributedToken(n, cfg["url"], namespace=cfg["ns"], reread_interval=cfg.get("interval", 5.0))
              for n in cfg["names"]]
    async with anyio.create_task_group() as tg:
        for tok in tokens:
            await tok.start()

        async def run(tok: DistributedToken, ready: anyio.Event) -> None:
            try:
                async with Cancelable.with_token(tok):
                    ready.set()
                    await anyio.sleep_forever()
            except CancelationError as err:
                info = tok.cancel_info
                stopped[tok.name] = [err.reason.value, err.message, info.origin.pid if info else None,
                                     time.monotonic()]
                if cfg.get("each"):
                    say(event="stopped", name=tok.name, reason=err.reason.value, message=tok.message,
                        origin_pid=info.origin.pid if info else None, at=time.monotonic())

        for tok in tokens:
            ready = anyio.Event()
            tg.start_soon(run, tok, ready)
            await ready.wait()
        say(event="ready", pid=os.getpid(), listening=sum(t.is_listening for t in tokens))
    for tok in tokens:
        await tok.aclose()
    say(event="done", stopped=stopped)


async def track_mode(cfg: dict[str, Any]) -> None:
    async with ClusterRegistry(cfg["url"], namespace=cfg["ns"], heartbeat_interval=cfg.get("beat", 0.2)) as cluster:
        op = Cancelable(name=cfg.get("name", "tracked work"))
        try:
            async with cluster.track(op):
                await op.report_progress("started", {"step": 0})
                say(event="ready", id=op.id, pid=os.getpid())
                step = 0
                while True:
                    step += 1
                    await op.report_progress(f"step {step}", {"step": step})
                    await anyio.sleep(0.05)
        except CancelationError as err:
            say(event="stopped", reason=err.reason.value, message=err.message)


async def job_mode(cfg: dict[str, Any]) -> None:
    ticket = JobTicket.model_validate_json(cfg["ticket"])
    start = time.monotonic()
    left = ticket.remaining()
    try:
        async with ticket.operation(cfg["url"], reread_interval=cfg.get("interval", 5.0)) as op:
            say(event="ready", remaining=left, pid=os.getpid())
            await anyio.sleep_forever()
    except CancelationError as err:
        say(event="stopped", reason=err.reason.value, message=err.message, elapsed=time.monotonic() - start,
            status=op.status.value, at=time.monotonic())


MODES = {"wait": wait_mode, "track": track_mode, "job": job_mode}


def main() -> int:
    cfg = json.loads(sys.argv[1])

    async def bounded() -> None:
        with anyio.fail_after(cfg.get("limit", 60)):
            await MODES[cfg["mode"]](cfg)

    try:
        anyio.run(bounded, backend=cfg.get("backend", "asyncio"))
    except TimeoutError:
        say(event="gave up")
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
