"""Demo: ``python -m cancelable_rx`` — a cancelable data pipeline, end to end.

A producer streams a few thousand records (simulated I/O); the pipeline validates and
"stores" them under ONE cancelation composed of a timeout, Ctrl-C / SIGTERM and a
data-quality condition (too many bad records).  A live progress bar follows the
operation's progress observable; at the end the demo prints why it stopped and the
partial result.
"""

from __future__ import annotations

import argparse
import random
import signal
import sys
from collections.abc import AsyncIterator
from typing import Any

import anyio

from . import Cancelable, CancelationError, CancelationReason
from ._terminal import terminal_progress

EPILOG = """\
exit status:
  0    the pipeline completed, or stopped by the timeout or the quality condition
       you configured (use --fail-on-cancel to get 124 / 3 for those instead)
  1    an unexpected error
  130  interrupted with Ctrl-C (SIGINT); 143 with SIGTERM

examples:
  python -m cancelable_rx                           # stops when bad records pile up
  python -m cancelable_rx --max-bad 1000 --timeout 1  # stops on the timeout
  python -m cancelable_rx --max-bad 1000            # runs to completion (Ctrl-C to stop)
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
    return args


async def produce(n: int, rate: float, bad_ratio: float, seed: int) -> AsyncIterator[dict[str, Any]]:
    """Simulated I/O: records arrive in small batches at ``rate`` per second."""
    rng = random.Random(seed)
    batch = max(1, int(rate / 100))
    for i in range(n):
        if i % batch == 0:
            await anyio.sleep(batch / rate)
        yield {"id": i, "value": None if rng.random() < bad_ratio else rng.random()}


async def _run(args: argparse.Namespace) -> int:
    bad = 0
    stored: list[int] = []
    op = (
        Cancelable.with_timeout(args.timeout, name="pipeline")
        .combine(Cancelable.with_signal(signal.SIGINT, signal.SIGTERM))
        .combine(Cancelable.with_condition(lambda: bad > args.max_bad, 0.02, "too_many_bad_records"))
    )
    bar = None if args.no_progress else terminal_progress(op, total=args.items, desc="records")
    records = op.stream(produce(args.items, args.rate, args.bad_ratio, args.seed), report_interval=25)
    try:
        async with op:
            async for record in records:
                if record["value"] is None:
                    bad += 1
                    continue
                stored.append(record["id"])
    except CancelationError as err:
        if bar is not None:
            bar.close()
        partial = records.partial_result
        last = [r["id"] for r in (partial.buffer or [])[-3:]]
        print(f"stopped: {type(err).__name__} (reason={err.reason.value}): {err.message}")
        print(f"partial result: {partial.count} of {args.items} records read, {len(stored)} stored, {bad} bad; last ids read: {last}")
        if err.reason is CancelationReason.SIGNAL:
            return 128 + (getattr(err, "signal_number", signal.SIGINT) or signal.SIGINT)
        return _EXIT_FOR_REASON.get(err.reason, 1) if args.fail_on_cancel else 0
    if bar is not None:
        bar.close()
    print(f"completed: {records.partial_result.count} records read, {len(stored)} stored, {bad} bad")
    return 0


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
