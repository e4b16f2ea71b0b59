"""Demo: ``python -m cancelable_rx`` — one operation stopped by composed sources.

A worker processes items; the operation is cancelled by whichever fires first: a
timeout, a token cancelled from a plain thread, or a condition.  It prints why it
stopped and exits 0 when the outcome is the expected one.
"""

from __future__ import annotations

import argparse
import sys
import threading

import anyio

from . import CancelationError, Cancelable, CancelationToken


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m cancelable_rx",
        description="Run a worker under one cancelation composed of a timeout, a token "
        "cancelled from another thread and a condition; print which fired first.",
    )
    p.add_argument("--timeout", type=float, default=2.0, help="seconds before the timeout fires (default 2)")
    p.add_argument("--thread-cancel-after", type=float, default=None, metavar="S",
                   help="cancel the token from a plain thread after S seconds")
    p.add_argument("--stop-at", type=int, default=None, metavar="N",
                   help="a condition that fires once N items are processed")
    p.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
    return p.parse_args(argv)


async def _run(args: argparse.Namespace) -> int:
    token = CancelationToken()
    processed = 0
    op = Cancelable.with_timeout(args.timeout, name="demo")
    if args.stop_at is not None:
        op = op.combine(Cancelable.with_condition(lambda: processed >= args.stop_at, 0.01, "enough_items"))
    op = op.combine(Cancelable.with_token(token))
    if args.thread_cancel_after is not None:
        timer = threading.Timer(args.thread_cancel_after, token.cancel_sync, kwargs={"message": "cancelled from a thread"})
        timer.daemon = True
        timer.start()
    try:
        async with op:
            while True:
                processed += 1
                await anyio.sleep(0.001)
    except CancelationError as err:
        print(f"stopped after {processed} items: {type(err).__name__} (reason={err.reason.value}): {err.message}")
        return 0
    print("finished without cancellation (unexpected)")
    return 1


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    return anyio.run(_run, args, backend=args.backend)


if __name__ == "__main__":
    sys.exit(main())
