"""The web demo: a Starlette app behind `RequestCancelationMiddleware`, served by uvicorn
on 127.0.0.1, and a scripted client that shows what the middleware does::

    python -m cancelable_rx.integrations.web.demo            # the tour, then exit
    python -m cancelable_rx.integrations.web.demo --serve    # keep serving (try it with curl)

Needs the ``web-demo`` extra (starlette, httpx, uvicorn).  Exit status: 0 when every
scene ended as shown, 1 otherwise, 2 when a dependency is missing.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import socket
import sys
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import anyio
import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cancelable_rx import OperationContext, OperationRegistry

from . import (
    DEADLINE_HEADER,
    AsyncDeadlineTransport,
    RequestCancelationMiddleware,
    cancelable_streaming_response,
    get_request_operation,
)

__all__ = ("build_app", "main")


async def report(request: Request) -> Response:
    """A slow report computed in a worker thread that stops when the request is cancelled."""
    op = get_request_operation(request)
    assert op is not None
    rows = int(request.query_params.get("rows", "400"))

    def compute() -> int:
        done = 0
        while done < rows and not op.is_cancelled:  # the thread sees the request's cancellation
            time.sleep(0.005)
            done += 1
        return done

    done = await op.run_in_thread(compute)
    return JSONResponse({"rows": done})


async def ticks(request: Request) -> Response:
    """Server-sent events, one every 20 ms, forever."""

    async def produce() -> AsyncIterator[str]:
        i = 0
        while True:
            yield f"data: tick {i}\n\n"
            i += 1
            await anyio.sleep(0.02)

    return await cancelable_streaming_response(produce(), media_type="text/event-stream")


async def budget(request: Request) -> Response:
    """What this service was given: the header and the request's remaining time."""
    op = get_request_operation(request)
    assert op is not None
    left = op.remaining()
    return JSONResponse({"header": request.headers.get(DEADLINE_HEADER), "remaining_s": None if left == math.inf else left})


async def hop(request: Request) -> Response:
    """Call ``/budget`` on ``?to=`` with the remaining budget of this request."""
    async with httpx.AsyncClient(transport=AsyncDeadlineTransport()) as client:
        answer = await client.get(request.query_params["to"])
    return JSONResponse({"downstream": answer.json()})


def build_app(default_timeout: float | None = 10.0) -> RequestCancelationMiddleware:
    """The demo app: ``/report``, ``/ticks``, ``/budget``, ``/hop``."""
    routes = [Route("/report", report), Route("/ticks", ticks), Route("/budget", budget), Route("/hop", hop)]
    return RequestCancelationMiddleware(Starlette(routes=routes), default_timeout=default_timeout, register_globally=True)


def _last(path: str) -> OperationContext | None:
    """The record of the last request to ``path`` that ended."""
    for record in reversed(OperationRegistry.get_instance().get_history_sync()):
        if record.name is not None and record.name.endswith(" " + path):
            return record
    return None


async def _ended(path: str, after: float) -> OperationContext:
    with anyio.fail_after(5):
        while True:
            record = _last(path)
            if record is not None and record.end_time is not None and record.end_time.timestamp() >= after:
                return record
            await anyio.sleep(0.005)


def _reason(record: OperationContext) -> str:
    reason = record.cancel_reason.value if record.cancel_reason is not None else "-"
    return f"{record.status.value}/{reason}"


async def _tour(base: str) -> list[tuple[str, str, str, bool]]:
    """Run the scenes; returns (scene, what the client saw, what the server recorded, ok)."""
    rows: list[tuple[str, str, str, bool]] = []
    async with httpx.AsyncClient(base_url=base) as client:
        # 1. The client gives up on a slow report: the worker thread stops early.
        start = time.time()
        try:
            await client.get("/report", timeout=0.3)
            seen = "an answer"
        except httpx.TimeoutException:
            seen = "gave up after 0.3 s"
        record = await _ended("/report", start)
        rows.append(("client leaves a slow report", seen, f"{_reason(record)}: {record.cancel_message}",
                     record.cancel_reason is not None and record.cancel_reason.value == "disconnect"))
        # 2. The client's budget ends first: 504.
        start = time.time()
        response = await client.get("/report", headers={DEADLINE_HEADER: "200"})
        record = await _ended("/report", start)
        rows.append((f"{DEADLINE_HEADER}: 200", f"HTTP {response.status_code}", _reason(record),
                     response.status_code == 504))
        # 3. A stream the client stops reading after 5 events.
        start = time.time()
        events = 0
        async with client.stream("GET", "/ticks") as stream:
            async for line in stream.aiter_lines():
                if line.startswith("data:"):
                    events += 1
                    if events == 5:
                        break
        record = await _ended("/ticks", start)
        rows.append(("client stops a stream", f"{events} events", f"{_reason(record)}",
                     record.cancel_reason is not None and record.cancel_reason.value == "disconnect"))
        # 4. The budget travels to the next service, smaller at each hop.
        response = await client.get("/hop", params={"to": f"{base}/budget"}, headers={DEADLINE_HEADER: "1500"})
        downstream = response.json()["downstream"]
        rows.append((f"two hops, {DEADLINE_HEADER}: 1500", f"downstream got {downstream['header']} ms",
                     f"downstream remaining {downstream['remaining_s']:.3f} s",
                     0 < int(downstream["header"]) <= 1500))
        # 5. A malformed header: served with the server's default (and a warning in the log).
        response = await client.get("/budget", headers={DEADLINE_HEADER: "soon"})
        rows.append((f"{DEADLINE_HEADER}: soon", f"HTTP {response.status_code}",
                     f"remaining {response.json()['remaining_s']:.1f} s (server default)", response.status_code == 200))
    return rows


async def _serve(app: Any, sock: socket.socket, tour: bool) -> int:
    import uvicorn  # noqa: PLC0415 - optional: only the demo needs a server

    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_level="warning"))
    port = sock.getsockname()[1]
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: server.serve(sockets=[sock]))
        while not server.started:
            await anyio.sleep(0.01)
        if not tour:
            print(f"serving on http://127.0.0.1:{port}  (Ctrl-C to stop); try:")
            print(f"  curl -m 0.5 http://127.0.0.1:{port}/report      # give up: the server cancels")
            print(f"  curl -H '{DEADLINE_HEADER}: 200' http://127.0.0.1:{port}/report")
            print(f"  curl -N http://127.0.0.1:{port}/ticks")
            return 0
        rows = await _tour(f"http://127.0.0.1:{port}")
        server.should_exit = True
    width = max(len(r[0]) for r in rows)
    seen_width = max(len(r[1]) for r in rows)
    print(f"{'scene':<{width}}  {'client':<{seen_width}}  server (status/reason)")
    for scene, seen, recorded, ok in rows:
        print(f"{scene:<{width}}  {seen:<{seen_width}}  {recorded}{'' if ok else '   <-- unexpected'}")
    return 0 if all(r[3] for r in rows) else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cancelable_rx.integrations.web.demo",
        description="Cancel web requests on client disconnect and deadlines (cancelable_rx).",
    )
    parser.add_argument("--serve", action="store_true", help="keep serving instead of running the tour")
    parser.add_argument("--port", type=int, default=0, help="port for --serve (default: a free one)")
    args = parser.parse_args(argv)
    try:
        import uvicorn  # noqa: F401, PLC0415 - optional: say so clearly if it is missing
    except ImportError:
        print("the web demo needs uvicorn: pip install 'cancelable-rx[web-demo]'", file=sys.stderr)
        return 2
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port if args.serve else 0))
    sock.listen(128)
    try:
        return asyncio.run(_serve(build_app(), sock, tour=not args.serve))
    except KeyboardInterrupt:
        return 0
    finally:
        sock.close()


if __name__ == "__main__":
    sys.exit(main())
