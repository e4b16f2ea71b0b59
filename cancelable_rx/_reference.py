"""Small names of the reference API with no better home: `LinkState`, `get_logger`,
`ContextBridge`."""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
from collections.abc import Callable
from concurrent.futures import Executor
from enum import Enum
from functools import partial
from typing import Any, TypeVar

import anyio.to_thread

__all__ = ("ContextBridge", "LinkState", "get_logger")

T = TypeVar("T")


class LinkState(str, Enum):  # noqa: UP042 - like OperationStatus
    """The reference's token-linking states.  Kept for code that names them; operations
    here link their tokens without a state machine (listening is lock-free)."""

    NOT_LINKED = "not_linked"
    LINKING = "linking"
    LINKED = "linked"
    CANCELLED = "cancelled"
    FAILED = "failed"


def get_logger(name: str | None = None) -> logging.Logger:
    """A standard-library logger, named ``name`` or after the calling module.  It configures
    nothing (handlers and levels are the application's).  The library logs under
    ``"cancelable_rx"``."""
    if name is None:
        frame = inspect.currentframe()
        caller = frame.f_back if frame is not None else None
        name = caller.f_globals.get("__name__", "cancelable") if caller is not None else "cancelable"
    return logging.getLogger(name)


class ContextBridge:
    """Carry context variables (the current operation among them) into worker threads.

    ``op.run_in_thread(fn)`` already does this; these static methods keep the reference's
    spelling.
    """

    @staticmethod
    def copy_context() -> dict[contextvars.ContextVar[Any], Any]:
        """The current context variables and their values."""
        return dict(contextvars.copy_context())

    @staticmethod
    def restore_context(context_dict: dict[contextvars.ContextVar[Any], Any]) -> None:
        """Set each variable of ``context_dict`` in the current context."""
        for var, value in context_dict.items():
            var.set(value)

    @staticmethod
    async def run_in_thread_with_context(
        func: Callable[..., T], *args: Any, executor: Executor | None = None, **kwargs: Any
    ) -> T:
        """Run ``func(*args, **kwargs)`` in a worker thread that sees the caller's context
        variables; returns its result.

        Cancellation: as ``anyio.to_thread.run_sync`` (the thread runs to its end; the
        caller's cancellation is seen when it returns).  With ``executor``, the thread is the
        executor's (asyncio only).
        """
        ctx = contextvars.copy_context()
        call = partial(ctx.run, func, *args, **kwargs)
        if executor is None:
            return await anyio.to_thread.run_sync(call)

        return await asyncio.get_running_loop().run_in_executor(executor, call)
