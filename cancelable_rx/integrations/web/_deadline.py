"""The deadline header: a remaining time budget carried from one HTTP hop to the next.

Format (chosen here, gRPC-style: a budget, never a wall-clock time, so clocks need not
agree)::

    x-request-timeout-ms: 1500

an integer number of milliseconds the receiver may spend on the request, written with 1 to
9 ASCII digits (0 to 999,999,999 ms, about 11.5 days).  ``0`` means the budget is spent:
the request is cancelled at its first checkpoint.  Anything else (a sign, a decimal point,
letters, more than 9 digits, an empty value) is malformed: the server ignores it, logs a
warning and uses its own default.  When the header is repeated, the smallest valid value
wins (the tightest budget).

Outgoing requests carry the remaining budget of the current operation, rounded down to the
millisecond, so a chain of hops never grows the budget.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from typing import Final

__all__ = ("DEADLINE_HEADER", "MAX_HEADER_MS", "format_budget", "parse_budget", "read_budget")

logger = logging.getLogger("cancelable_rx.integrations.web")

DEADLINE_HEADER: Final = "x-request-timeout-ms"
"""The header name (lower case, as ASGI delivers it)."""
MAX_HEADER_MS: Final = 999_999_999
"""The largest budget the header can carry, in milliseconds (9 digits)."""

_HEADER_BYTES: Final = DEADLINE_HEADER.encode("ascii")
_MAX_DIGITS: Final = 9


def parse_budget(value: bytes | str) -> float | None:
    """The budget in seconds written in one header value, or None if it is malformed.

    >>> parse_budget(b"1500")
    1.5
    >>> parse_budget("-3") is None
    True
    """
    if isinstance(value, str):
        try:
            value = value.encode("ascii")
        except UnicodeEncodeError:
            return None
    text = value.strip(b" \t")
    if not text or len(text) > _MAX_DIGITS or not text.isdigit():  # bytes.isdigit(): ASCII digits only
        return None
    return int(text) / 1000.0


def read_budget(headers: Iterable[tuple[bytes, bytes]]) -> tuple[float | None, bytes | None]:
    """Read the deadline header from ASGI ``headers``.

    Returns ``(seconds, None)`` for a valid budget (the smallest when repeated),
    ``(None, None)`` when the header is absent and ``(None, raw)`` when it is present but no
    value is valid (``raw`` is the first value, for the warning).
    """
    best: float | None = None
    bad: bytes | None = None
    for name, value in headers:
        if name == _HEADER_BYTES or (len(name) == len(_HEADER_BYTES) and name.lower() == _HEADER_BYTES):
            seconds = parse_budget(value)
            if seconds is None:
                if bad is None:
                    bad = value
            elif best is None or seconds < best:
                best = seconds
    if best is not None:
        return best, None
    return None, bad


def format_budget(seconds: float) -> str | None:
    """The header value for ``seconds`` left (rounded down to the millisecond, capped at
    `MAX_HEADER_MS`), or None when there is no budget to send (``math.inf``)."""
    if seconds == math.inf:
        return None
    if not seconds > 0:  # spent, or NaN
        return "0"
    return str(min(MAX_HEADER_MS, math.floor(seconds * 1000.0)))
