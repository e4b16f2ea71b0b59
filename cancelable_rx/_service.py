"""The common shape of a service: run workers; on the first SIGTERM/SIGINT ask them to stop
within a grace period, on the second (or when the grace ends) cancel them; exit with the
right code.  `serve` (async) and `run_service` (a process's main)."""

from __future__ import annotations

import logging
import signal
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta

import anyio

from ._cancelable import Cancelable
from ._checks import check_callable, check_not_empty, check_signal, check_timeout
from ._models import CancelationReason, OperationStatus

__all__ = ("run_service", "serve")

logger = logging.getLogger("cancelable_rx")
Worker = Callable[[Cancelable], Awaitable[int | None]]
DEFAULT_GRACE = 30.0
"""Kubernetes' default ``terminationGracePeriodSeconds``."""


async def serve(
    *workers: Worker,
    grace: float | timedelta = DEFAULT_GRACE,
    signals: Sequence[int] = (signal.SIGTERM, signal.SIGINT),
    name: str = "service",
) -> int:
    """Run ``workers`` until they return; stop them gracefully on a signal.

    Each worker is called as ``await worker(op)`` with an operation of its own, a child of
    the service's operation: it sees the stop (``op.stop_requested``, ``op.wait_for_stop()``,
    ``op.stream(...)`` ending cleanly) and may use ``op`` as the parent of its own
    operations.  The first of ``signals`` requests a stop with ``grace`` seconds; a second
    one, or the end of the grace period, cancels every worker.

    Returns the exit code: ``128 + signal number`` when the workers were cancelled after a
    signal (a second signal, or the grace period ran out), ``1`` when a worker raised
    (the others are then cancelled, and the error is logged), else the first non-zero code
    a worker returned, else ``0`` (a graceful stop included).

    Main thread only (signal handlers).  Cancellation: an enclosing cancellation propagates.
    """
    check_not_empty(workers, "workers", "serve(consume_queue, grace=30)")
    for i, worker in enumerate(workers):
        check_callable(worker, f"workers[{i}]", "an async function called as await worker(op)")
    seconds = check_timeout(grace, "grace")
    checked = tuple(check_signal(s) for s in signals)
    check_not_empty(checked, "signals", "signals=(signal.SIGTERM, signal.SIGINT)")
    service = Cancelable.with_signal(*checked, name=name, graceful=seconds, suppress_cancelation=True)
    codes: list[int] = []
    crashed: list[BaseException] = []

    async def run(worker: Worker) -> None:
        label = f"{name}/{getattr(worker, '__name__', 'worker')}"
        try:
            async with Cancelable(name=label, parent=service, suppress_cancelation=True) as op:
                code = await worker(op)
            if code:
                codes.append(int(code))
        except Exception as err:
            logger.exception("cancelable_rx: worker %s failed; stopping the service", label)
            crashed.append(err)
            service.cancel_sync(CancelationReason.ERROR, f"worker {label} failed: {err!r}")

    async with service:
        async with anyio.create_task_group() as tg:
            for worker in workers:
                tg.start_soon(run, worker)
    if crashed:
        return 1
    if service.status is OperationStatus.CANCELLED and service.cancel_reason is CancelationReason.SIGNAL:
        fired = service.stop_request.source if service.stop_request is not None else None
        signum = getattr(fired, "signal_number", None) or checked[0]
        return 128 + int(signum)
    return codes[0] if codes else 0


def run_service(
    *workers: Worker,
    grace: float | timedelta = DEFAULT_GRACE,
    signals: Sequence[int] = (signal.SIGTERM, signal.SIGINT),
    name: str = "service",
    backend: str = "asyncio",
) -> int:
    """`serve` as a process's main: ``sys.exit(run_service(worker, grace=25))``."""
    return anyio.run(lambda: serve(*workers, grace=grace, signals=signals, name=name), backend=backend)
