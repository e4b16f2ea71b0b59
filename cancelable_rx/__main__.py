"""Demo: ``python -m cancelable_rx`` — a cancelable data pipeline, end to end.

A producer streams a few thousand records (simulated I/O) in batches; the pipeline
validates and "stores" each batch under ONE cancelation composed of a timeout and a
data-quality condition (too many bad records), run as a service: the first Ctrl-C (or
SIGTERM) asks it to stop, and it finishes the batch in hand and stops cleanly; a second
one stops it at once.  A live progress bar follows the operation's progress observable; at
the end the demo prints why it stopped and the partial result.
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import AsyncIterator
from typing import Any

import anyio

from . import Cancelable, CancelationError, CancelationReason, serve
from ._terminal import terminal_progress

EPILOG = """\
exit status:
  0    the pipeline completed, stopped gracefully after a first Ctrl-C / SIGTERM (it
       finished the batch in hand), or stopped by the timeout or the quality condition you
       configured (use --fail-on-cancel to get 124 / 3 for those instead)
  1    an unexpected error
  130  stopped at once by a second Ctrl-C (SIGINT), or when the grace period ran out;
       143 for SIGTERM

examples:
  python -m cancelable_rx                           # stops when bad records pile up
  python -m cancelable_rx --max-bad 1000 --timeout 1  # stops on the timeout
  python -m cancelable_rx --max-bad 1000            # runs to completion (Ctrl-C to stop)
  python -m cancelable_rx --max-bad 1000 --store-delay 1  # Ctrl-C finishes the batch, twice stops now
"""

_EXIT_FOR_REASON = {CancelationReason.TIMEOUT: 124, CancelationReason.CONDITION: 3}


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m cancelable_rx",
        description="Run a cancelable pipeline over N records, stopped by whichever fires first: "
        "a timeout, Ctrl-C/SIGTERM, or too many bad records. Prints why it stopped and the partial result.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--items", type=int, default=3000, help="records to produce (default 3000)")
    p.add_argument("--rate", type=float, default=2000.0, help="records per second the producer delivers (default 2000)")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds before the timeout fires (default 30)")
    p.add_argument("--max-bad", type=int, default=40, help="stop once more than this many bad records were seen (default 40)")
    p.add_argument("--bad-ratio", type=float, default=0.02, help="share of bad records the producer emits (default 0.02)")
    p.add_argument("--seed", type=int, default=7, help="random seed for the bad records (default 7)")
    p.add_argument("--grace", type=float, default=10.0, help="seconds to finish the batch in hand after a first Ctrl-C (default 10)")
    p.add_argument("--store-delay", type=float, default=0.0, help="seconds it takes to store each batch (default 0)")
    p.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
    p.add_argument("--no-progress", action="store_true", help="do not draw the progress bar")
    p.add_argument("--fail-on-cancel", action="store_true", help="exit 124 on timeout and 3 on the condition")
    args = p.parse_args(argv)
    if args.items <= 0:
        p.error(f"--items must be > 0, got {args.items}")
    if args.rate <= 0:
        p.error(f"--rate must be > 0, got {args.rate}")
    if args.max_bad < 0:
        p.error(f"--max-bad must be >= 0, got {args.max_bad}")
    if not 0 <= args.bad_ratio <= 1:
        p.error(f"--bad-ratio must be between 0 and 1, got {args.bad_ratio}")
    if args.grace < 0:
        p.error(f"--grace must be >= 0, got {args.grace}")
    if args.store_delay < 0:
        p.error(f"--store-delay must be >= 0, got {args.store_delay}")
    return args


async def produce(n: int, rate: float, bad_ratio: float, seed: int) -> AsyncIterator[list[dict[str, Any]]]:
    """Simulated I/O: batches of records arrive at ``rate`` records per second."""
    rng = random.Random(seed)
    size = max(1, int(rate / 100))
    for start in range(0, n, size):
        await anyio.sleep(size / rate)
        yield [
            {"id": i, "value": None if rng.random() < bad_ratio else rng.random()}
            for i in range(start, min(n, start + size))
        ]


async def _pipeline(args: argparse.Namespace, service: Cancelable) -> int:
    bad = 0
    stored: list[int] = []
    read = 0
    op = Cancelable.with_timeout(args.timeout, name="pipeline", parent=service).combine(
        Cancelable.with_condition(lambda: bad > args.max_bad, 0.02, "too_many_bad_records")
    )
    size = max(1, int(args.rate / 100))
    total = -(-args.items // size)
    bar = None if args.no_progress else terminal_progress(op, total=total, desc="batches")
    batches = op.stream(produce(args.items, args.rate, args.bad_ratio, args.seed), report_interval=1)

    def last_ids() -> list[int]:
        return stored[-3:]

    try:
        async with op:
            async for batch in batches:
                for record in batch:  # a batch, once started, is finished
                    read += 1
                    if record["value"] is None:
                        bad += 1
                        continue
                    stored.append(record["id"])
                if args.store_delay:
                    await anyio.sleep(args.store_delay)  # "storing" the batch: a stop request does not interrupt it
    except CancelationError as err:
        if bar is not None:
            bar.close()
        print(f"stopped: {type(err).__name__} (reason={err.reason.value}): {err.message}")
        print(f"partial result: {read} of {args.items} records read, {len(stored)} stored, {bad} bad; last ids stored: {last_ids()}")
        return _EXIT_FOR_REASON.get(err.reason, 1) if args.fail_on_cancel else 0
    except anyio.get_cancelled_exc_class():
        # The service cancelled us (a second signal, or the grace period ran out): that is an
        # enclosing cancellation, which propagates; say what was done first.
        if bar is not None:
            bar.close()
        print(f"stopped at once: {op.cancel_message}")
        print(f"partial result: {read} of {args.items} records read, {len(stored)} stored, {bad} bad; last ids stored: {last_ids()}")
        raise
    if bar is not None:
        bar.close()
    if op.stop_requested:
        print(f"stopped gracefully ({op.stop_request.message if op.stop_request else ''}): finished the batch in hand")
        print(f"partial result: {read} of {args.items} records read, {len(stored)} stored, {bad} bad; last ids stored: {last_ids()}")
        return 0
    print(f"completed: {read} records read, {len(stored)} stored, {bad} bad")
    return 0


async def _run(args: argparse.Namespace) -> int:
    async def pipeline(service: Cancelable) -> int:
        return await _pipeline(args, service)

    return await serve(pipeline, grace=args.grace, name="demo")


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    try:
        return anyio.run(_run, args, backend=args.backend)
    except KeyboardInterrupt:  # Ctrl-C before or after the operation listened for it
        print("interrupted")
        return 130
    except Exception as err:  # an unexpected error: say so, exit 1
        print(f"error: {type(err).__name__}: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
