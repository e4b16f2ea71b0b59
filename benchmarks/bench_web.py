"""Web benchmark: the cost of RequestCancelationMiddleware on uvicorn, and how fast a
client's disconnect cancels the request's operation.

Run:  .venv/bin/python benchmarks/bench_web.py [--quick]

* **Overhead.** Two uvicorn servers (subprocesses, one core's worth each at most) serve the
  same trivial Starlette endpoint, one behind the middleware.  A local load generator (raw
  HTTP/1.1 keep-alive over asyncio streams, many connections, bounded in time) loads them
  in interleaved rounds (plain, middleware, plain, ...); requests/s are compared by their
  medians.  Target: the middleware costs at most 5%.
* **Disconnect latency.** The client starts a streaming request, reads its first chunk,
  closes the socket and notes the time (``time.monotonic``, system-wide); the server notes
  the time the request's operation recorded its cancellation (its ``cancellation``
  observable).  Target: median under 5 ms.

Exit status 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import subprocess
import sys
import time
from typing import Any

TARGET_OVERHEAD = 0.05
TARGET_LATENCY = 0.005


# -- the server (run in a subprocess: python bench_web.py --serve plain|middleware PORT) --

def build(kind: str) -> Any:
    import anyio
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
    from starlette.routing import Route

    from cancelable_rx.integrations.web import RequestCancelationMiddleware, get_request_operation

    cancelled: dict[str, float] = {}

    async def hello(request: Request) -> Response:
        return PlainTextResponse("ok")

    async def wait(request: Request) -> Response:
        op = get_request_operation(request)
        key = request.query_params["id"]
        assert op is not None
        op.cancellation.subscribe(lambda event: cancelled.__setitem__(key, time.monotonic()))

        async def body():  # one chunk, then nothing until the client leaves
            yield b"started\n"
            await anyio.sleep_forever()

        return StreamingResponse(body())

    async def latencies(request: Request) -> Response:
        return JSONResponse(cancelled)

    app = Starlette(routes=[Route("/", hello), Route("/wait", wait), Route("/latencies", latencies)])
    return RequestCancelationMiddleware(app) if kind == "middleware" else app


def serve(kind: str, port: int) -> None:
    import uvicorn

    uvicorn.run(build(kind), host="127.0.0.1", port=port, log_level="error", access_log=False, lifespan="off")


# -- the client ------------------------------------------------------------------------

REQUEST = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"


async def _connection(port: int, until: float, counts: list[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    done = 0
    try:
        while time.monotonic() < until:
            writer.write(REQUEST)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            done += 1
    finally:
        counts.append(done)
        writer.close()


async def load(port: int, seconds: float, connections: int) -> float:
    """Requests per second over ``seconds``, ``connections`` keep-alive connections."""
    counts: list[int] = []
    start = time.monotonic()
    await asyncio.gather(*(_connection(port, start + seconds, counts) for _ in range(connections)))
    return sum(counts) / (time.monotonic() - start)


async def disconnect_latencies(port: int, n: int) -> list[float]:
    closed: dict[str, float] = {}
    for i in range(n):
        key = f"d{i}"
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"GET /wait?id={key} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
        await reader.readuntil(b"started\n")
        writer.transport.abort()  # the client is gone
        closed[key] = time.monotonic()
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.2)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /latencies HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
    raw = await reader.read()
    writer.close()
    seen = json.loads(raw.split(b"\r\n\r\n", 1)[1])
    return [seen[k] - t for k, t in closed.items() if k in seen] + [float("inf")] * (n - len(seen))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start(kind: str) -> tuple[subprocess.Popen[bytes], int]:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, __file__, "--serve", kind, str(port)])
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError(f"the {kind} server did not start") from None
            time.sleep(0.05)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="shorter rounds (less precise)")
    parser.add_argument("--serve", nargs=2, metavar=("KIND", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve[0], int(args.serve[1]))
        return 0
    seconds, rounds, connections = (1.0, 3, 16) if args.quick else (2.0, 5, 32)
    servers = {kind: _start(kind) for kind in ("plain", "middleware")}
    try:
        rates: dict[str, list[float]] = {"plain": [], "middleware": []}
        for kind in rates:  # warm up
            asyncio.run(load(servers[kind][1], 0.3, connections))
        for _ in range(rounds):
            for kind in rates:
                rates[kind].append(asyncio.run(load(servers[kind][1], seconds, connections)))
        latencies = asyncio.run(disconnect_latencies(servers["middleware"][1], 30 if args.quick else 100))
    finally:
        for proc, _ in servers.values():
            proc.terminate()
            proc.wait(10)
    plain, wrapped = statistics.median(rates["plain"]), statistics.median(rates["middleware"])
    overhead = 1 - wrapped / plain
    median_latency = statistics.median(latencies)
    ok_overhead = overhead <= TARGET_OVERHEAD
    ok_latency = median_latency < TARGET_LATENCY
    print(f"python {sys.version.split()[0]}; uvicorn, {connections} keep-alive connections, "
          f"{rounds} rounds of {seconds:.0f} s each side")
    print("\n| case | with middleware | without | result | target |\n|---|---:|---:|---:|---:|")
    print(f"| trivial endpoint, requests/s (median) | {wrapped:,.0f} | {plain:,.0f} | "
          f"{overhead * 100:+.1f}% cost | <= {TARGET_OVERHEAD * 100:.0f}% {'ok' if ok_overhead else 'MISSED'} |")
    p90 = sorted(latencies)[int(len(latencies) * 0.9)]
    print(f"| disconnect -> operation cancelled (median, p90) | {median_latency * 1e3:.2f} ms, {p90 * 1e3:.2f} ms | – | "
          f"{len(latencies)} disconnects | < {TARGET_LATENCY * 1e3:.0f} ms {'ok' if ok_latency else 'MISSED'} |")
    print(f"\nrounds (requests/s): plain {[round(r) for r in rates['plain']]}, "
          f"middleware {[round(r) for r in rates['middleware']]}")
    return 0 if ok_overhead and ok_latency else 1


if __name__ == "__main__":
    sys.exit(main())
