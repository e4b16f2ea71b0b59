"""Web benchmark: the cost of RequestCancelationMiddleware on uvicorn, and how fast a
client's disconnect cancels the request's operation.

Run:  .venv/bin/python benchmarks/bench_web.py [--quick] [--rounds N] [--seconds S]
      .venv/bin/python benchmarks/bench_web.py --instructions   (valgrind; ~10 minutes)

* **Overhead.** uvicorn servers (one subprocess each) serve the same trivial endpoint, with
  and without the middleware: a Starlette app (``PlainTextResponse("ok")``), the same
  Starlette app with ``default_timeout=30`` (a deadline per request), and a FastAPI app
  (``return {"ok": True}``).  On a machine with two cores or more the servers are pinned
  to one core and the load generator to another, so the load generator never competes
  with the server it measures.  The load generator (asyncio protocols, HTTP/1.1
  keep-alive, one request in flight per connection, each round bounded in time) loads the
  servers in interleaved rounds (plain, middleware, middleware, plain, ...: each pair in
  both orders); requests/s are compared by their medians.  Each round also reads the
  server's CPU time (``/proc``): CPU µs per request and how busy the server was (near 100%
  means the server, not the load generator, set the pace).  Target: the middleware costs
  at most 5% of the requests/s.
* **Instructions** (``--instructions``, needs valgrind): the same trivial Starlette
  endpoint served by uvicorn under callgrind, plain, with the middleware, and with only a
  raw ``anyio.CancelScope`` around the app (the floor of any design that gives each
  request a cancel scope); instructions per request = the difference between a run of
  3,520 and one of 320 requests (32 keep-alive connections), divided by 3,200.  Counts do
  not move with the machine's load, unlike times on a shared machine.  (valgrind runs
  about 50x slower: the middleware's watcher sweep period is scaled by as much, so that
  sweeps per request match a real run.)
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
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from typing import Any

TARGET_OVERHEAD = 0.05
TARGET_LATENCY = 0.005
CASES = (
    ("starlette", "trivial Starlette endpoint"),
    ("starlette-deadline", "the same, `default_timeout=30`"),
    ("fastapi", "trivial FastAPI endpoint"),
)


# -- the server (run in a subprocess: python bench_web.py --serve CASE plain|middleware PORT) --

def build(case: str, kind: str) -> Any:
    import anyio
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
    from starlette.routing import Route

    from cancelable_rx.integrations.web import RequestCancelationMiddleware, get_request_operation

    if case == "fastapi":
        from fastapi import FastAPI

        api = FastAPI()

        @api.get("/")
        async def root() -> dict[str, bool]:
            return {"ok": True}

        if kind == "middleware":
            api.add_middleware(RequestCancelationMiddleware)
        return api

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
    if kind == "scope":  # the floor: a raw cancel scope around the app, nothing else
        classes: list[Any] = []  # the backend's scope class, as the engine uses it

        async def scoped(scope: Any, receive: Any, send: Any) -> None:
            if not classes:
                classes.append(type(anyio.CancelScope()))
            with classes[0]():
                await app(scope, receive, send)

        return scoped
    if kind != "middleware":
        return app
    return RequestCancelationMiddleware(app, default_timeout=30 if case == "starlette-deadline" else None)


def serve(case: str, kind: str, port: int) -> None:
    import uvicorn

    if os.environ.get("BENCH_WEB_SLOWDOWN"):  # under valgrind: as many sweeps per request
        from cancelable_rx.integrations.web import _connection

        _connection._SWEEP_PERIOD *= float(os.environ["BENCH_WEB_SLOWDOWN"])
    app = build(case, kind)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="error", access_log=False, lifespan="off")


# -- the load generator ------------------------------------------------------------------

REQUEST = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"


class _Client(asyncio.Protocol):
    """One keep-alive connection: sends a request, reads the response, sends the next one
    until ``until`` (the load generator's own cost per request stays small)."""

    def __init__(self, until: float) -> None:
        self.until = until
        self.done = 0
        self.buffer = b""
        self.finished: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.transport.write(REQUEST)  # type: ignore[union-attr]

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                break
            head = buffer[:end].lower()
            at = head.find(b"content-length:")
            length = int(head[at + 15 :].split(b"\r\n", 1)[0]) if at >= 0 else 0
            if len(buffer) < end + 4 + length:
                break
            buffer = buffer[end + 4 + length :]
            self.done += 1
            if time.monotonic() < self.until:
                self.transport.write(REQUEST)  # type: ignore[union-attr]
            else:
                self.transport.close()  # type: ignore[union-attr]
                break
        self.buffer = buffer

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.finished.done():
            self.finished.set_result(self.done)


async def load(port: int, seconds: float, connections: int) -> float:
    """Requests per second over ``seconds``, ``connections`` keep-alive connections."""
    loop = asyncio.get_running_loop()
    start = time.monotonic()
    clients = [
        (await loop.create_connection(lambda: _Client(start + seconds), "127.0.0.1", port))[1]
        for _ in range(connections)
    ]
    done = sum(await asyncio.gather(*(client.finished for client in clients)))
    return done / (time.monotonic() - start)


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


# -- the run -----------------------------------------------------------------------------

def _cores() -> tuple[set[int] | None, set[int] | None]:
    """(the servers' cores, the load generator's), or (None, None) when pinning is not
    possible (fewer than two cores, or no ``sched_setaffinity``)."""
    try:
        cores = sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return None, None
    if len(cores) < 2:
        return None, None
    return {cores[0]}, set(cores[1:])


def _cpu_seconds(pid: int) -> float | None:
    """The user + system CPU time of process ``pid`` (Linux ``/proc``), or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Server:
    def __init__(self, case: str, kind: str, cores: set[int] | None) -> None:
        self.port = _free_port()
        self.proc = subprocess.Popen([sys.executable, __file__, "--serve", case, kind, str(self.port)])
        if cores is not None:
            os.sched_setaffinity(self.proc.pid, cores)
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.proc.kill()
                    raise RuntimeError(f"the {case}/{kind} server did not start") from None
                time.sleep(0.05)

    def round(self, seconds: float, connections: int) -> tuple[float, float | None, float | None]:
        """One round: (requests/s, server CPU µs per request, server CPU busy fraction)."""
        cpu0, t0 = _cpu_seconds(self.proc.pid), time.monotonic()
        rate = asyncio.run(load(self.port, seconds, connections))
        cpu1, t1 = _cpu_seconds(self.proc.pid), time.monotonic()
        if cpu0 is None or cpu1 is None:
            return rate, None, None
        return rate, (cpu1 - cpu0) / (rate * (t1 - t0)) * 1e6, (cpu1 - cpu0) / (t1 - t0)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def _serve_requests(port: int, n: int, connections: int) -> None:
    """``n`` requests over ``connections`` keep-alive connections, in lock step (blocking)."""
    deadline = time.monotonic() + 300
    while True:
        try:
            socks = [socket.create_connection(("127.0.0.1", port), timeout=120) for _ in range(connections)]
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    buffers = [b""] * connections
    for _ in range(n // connections):
        for sock in socks:
            sock.sendall(REQUEST)
        for i, sock in enumerate(socks):
            buffer = buffers[i]
            while b"\r\n\r\n" not in buffer:
                buffer += sock.recv(65536)
            head, rest = buffer.split(b"\r\n\r\n", 1)
            at = head.lower().find(b"content-length:")
            length = int(head[at + 15 :].split(b"\r\n", 1)[0]) if at >= 0 else 0
            while len(rest) < length:
                rest += sock.recv(65536)
            buffers[i] = rest[length:]
    for sock in socks:
        sock.close()


def _instructions(case: str, kind: str, n: int, connections: int) -> int:
    """The instructions a uvicorn server run under callgrind executes, start to stop,
    serving ``n`` requests."""
    import tempfile

    port = _free_port()
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "callgrind.out")
        env = dict(os.environ, PYTHONHASHSEED="0", BENCH_WEB_SLOWDOWN="50")
        proc = subprocess.Popen(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, __file__,
             "--serve", case, kind, str(port)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            _serve_requests(port, n, connections)
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(120)
        with open(out) as f:
            for line in f:
                if line.startswith(("summary:", "totals:")):
                    return int(line.split()[1])
    raise RuntimeError("callgrind wrote no totals")


def instructions_main(connections: int) -> int:
    """``--instructions``: instructions per request, plain, floor and middleware."""
    if shutil.which("valgrind") is None:
        print("--instructions needs valgrind (apt-get install valgrind)")
        return 2
    small, large = 320, 3520
    per_request = {}
    for kind in ("plain", "scope", "middleware"):
        counts = [_instructions("starlette", kind, n, connections) for n in (small, large)]
        per_request[kind] = (counts[1] - counts[0]) / (large - small)
    plain = per_request["plain"]
    print(f"python {sys.version.split()[0]}; uvicorn (h11, asyncio) under callgrind; {connections} keep-alive "
          f"connections; ({large} - {small} requests) / {large - small}")
    print("\n| trivial Starlette endpoint | instructions per request | over plain | target |\n|---|---:|---:|---:|")
    print(f"| plain | {plain:,.0f} | | |")
    for kind, label in (("scope", "a raw anyio cancel scope around the app (the floor)"),
                        ("middleware", "`RequestCancelationMiddleware(app)`")):
        extra = per_request[kind] - plain
        print(f"| {label} | {per_request[kind]:,.0f} | +{extra:,.0f} ({extra / plain:+.1%}) | <= 5% |")
    return 0


def _median(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer, shorter rounds (less precise)")
    parser.add_argument("--rounds", type=int, help="rounds per server (even; default 8, quick 4)")
    parser.add_argument("--seconds", type=float, help="seconds per round (default 2, quick 1)")
    parser.add_argument("--connections", type=int, default=32, help="keep-alive connections (default 32)")
    parser.add_argument("--instructions", action="store_true", help="instructions per request under callgrind")
    parser.add_argument("--serve", nargs=3, metavar=("CASE", "KIND", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve[0], args.serve[1], int(args.serve[2]))
        return 0
    if args.instructions:
        return instructions_main(args.connections)
    rounds = args.rounds or (4 if args.quick else 8)
    seconds = args.seconds or (1.0 if args.quick else 2.0)
    connections = args.connections
    server_cores, client_cores = _cores()
    if client_cores is not None:
        os.sched_setaffinity(0, client_cores)
    servers = {(case, kind): _Server(case, kind, server_cores) for case, _ in CASES for kind in ("plain", "middleware")}
    results: dict[tuple[str, str], list[tuple[float, float | None, float | None]]] = {key: [] for key in servers}
    try:
        for server in servers.values():  # warm up
            server.round(0.5, connections)
        for i in range(rounds):
            for case, _ in CASES:
                order = ("plain", "middleware") if i % 4 in (0, 3) else ("middleware", "plain")
                for kind in order:
                    results[case, kind].append(servers[case, kind].round(seconds, connections))
        latencies = asyncio.run(disconnect_latencies(servers["starlette", "middleware"].port, 30 if args.quick else 100))
    finally:
        for server in servers.values():
            server.stop()

    pinned = (
        f"servers on core {sorted(server_cores)}, load generator on {sorted(client_cores)}"
        if server_cores and client_cores
        else "not pinned"
    )
    print(f"python {sys.version.split()[0]}; uvicorn (h11, asyncio); {connections} keep-alive connections; "
          f"{rounds} interleaved rounds of {seconds:g} s per server; {pinned}")
    print("\n| case | requests/s with middleware | without | cost (requests/s) | server CPU µs/request "
          "with / without | server busy | target |\n|---|---:|---:|---:|---:|---:|---:|")
    ok = True
    for case, label in CASES:
        plain, wrapped = results[case, "plain"], results[case, "middleware"]
        rate_p, rate_m = statistics.median(r[0] for r in plain), statistics.median(r[0] for r in wrapped)
        cpu_p, cpu_m = _median([r[1] for r in plain]), _median([r[1] for r in wrapped])
        busy = _median([r[2] for r in plain + wrapped])
        overhead = 1 - rate_m / rate_p
        met = overhead <= TARGET_OVERHEAD
        ok = ok and met
        cpu = f"{cpu_m:.1f} / {cpu_p:.1f} ({cpu_m / cpu_p - 1:+.1%})" if cpu_m and cpu_p else "–"
        print(f"| {label} | {rate_m:,.0f} | {rate_p:,.0f} | {overhead:+.1%} | {cpu} | "
              f"{busy:.0%} | <= {TARGET_OVERHEAD:.0%} {'ok' if met else 'MISSED'} |" if busy is not None else
              f"| {label} | {rate_m:,.0f} | {rate_p:,.0f} | {overhead:+.1%} | {cpu} | – | "
              f"<= {TARGET_OVERHEAD:.0%} {'ok' if met else 'MISSED'} |")
    median_latency = statistics.median(latencies)
    ok_latency = median_latency < TARGET_LATENCY
    p90 = sorted(latencies)[int(len(latencies) * 0.9)]
    print(f"\n| disconnect -> operation cancelled | median {median_latency * 1e3:.2f} ms, p90 {p90 * 1e3:.2f} ms "
          f"({len(latencies)} disconnects) | < {TARGET_LATENCY * 1e3:.0f} ms {'ok' if ok_latency else 'MISSED'} |")
    print("\nrounds (requests/s):")
    for case, _ in CASES:
        for kind in ("plain", "middleware"):
            print(f"  {case} {kind}: {[round(r[0]) for r in results[case, kind]]}")
    return 0 if ok and ok_latency else 1


if __name__ == "__main__":
    sys.exit(main())
