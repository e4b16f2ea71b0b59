"""What travels through Redis: pydantic models, serialised as JSON (never pickle).

`CancelPayload` is a cancel record (the value of a token's key, and the message announcing
it); `OperationRecord` is a tracked operation's heartbeat or final record.  Both carry a
format version ``v``; unknown fields are ignored (a newer writer stays readable), anything
else that does not validate is *malformed*: readers log it and ignore it.
"""

from __future__ import annotations

import json
import math
import os
import socket
import time
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cancelable_rx import CancelationReason, OperationStatus

__all__ = ("MAX_PAYLOAD", "CancelPayload", "OperationRecord", "Origin", "cancel_json", "json_safe", "parse")

MAX_PAYLOAD = 64 * 1024
"""Bytes; a longer value is malformed (nothing the package writes comes near it)."""

_HOST = socket.gethostname()


class Origin(BaseModel):
    """Who cancelled: host, process id, and the operation that asked (if any)."""

    model_config = ConfigDict(frozen=True, extra="ignore", cache_strings="keys")

    host: str
    pid: int
    operation_id: str | None = None

    @classmethod
    def here(cls, operation_id: str | None = None) -> Origin:
        return cls(host=_HOST, pid=os.getpid(), operation_id=operation_id)


class CancelPayload(BaseModel):
    """A cancel record: which token, why, who, when, and the canceller's remaining budget.

    ``deadline`` is the number of seconds the cancelling operation had left when it
    cancelled (None: it had no deadline, or the cancel came from outside an operation).
    """

    model_config = ConfigDict(frozen=True, extra="ignore", cache_strings="keys")

    v: Literal[1] = 1
    name: str
    reason: CancelationReason
    message: str | None = None
    origin: Origin
    time: datetime = Field(default_factory=lambda: datetime.now(UTC))
    deadline: float | None = Field(default=None, ge=0)


class OperationRecord(BaseModel):
    """One tracked operation as the cluster sees it.

    A live record is renewed by its process's heartbeat and expires when the process stops
    renewing it; an ended one (``end_time`` set) sits in the bounded history.
    ``deadline_at`` is when the operation's deadline passes (None: no deadline);
    `remaining` turns it into seconds.
    """

    model_config = ConfigDict(frozen=True, extra="ignore", cache_strings="keys")

    v: Literal[1] = 1
    id: str
    name: str | None = None
    status: OperationStatus
    host: str
    pid: int
    start_time: datetime
    heartbeat_at: datetime
    end_time: datetime | None = None
    progress: str | None = None
    progress_metadata: dict[str, Any] = Field(default_factory=dict)
    deadline_at: datetime | None = None
    cancel_reason: CancelationReason | None = None
    cancel_message: str | None = None
    error: str | None = None

    def remaining(self) -> float:
        """Seconds left until ``deadline_at`` by this machine's clock (``math.inf`` for none)."""
        if self.deadline_at is None:
            return math.inf
        return max(0.0, self.deadline_at.timestamp() - time.time())


def cancel_json(
    name: str, reason: CancelationReason, message: str | None, operation_id: str | None, deadline: float | None
) -> bytes:
    """A `CancelPayload` from this process as JSON, written directly (it is on the path of
    every cancel; ``CancelPayload.model_validate_json`` reads it back, see the tests)."""
    return json.dumps(
        {
            "v": 1,
            "name": name,
            "reason": reason.value,
            "message": message,
            "origin": {"host": _HOST, "pid": os.getpid(), "operation_id": operation_id},
            "time": datetime.now(UTC).isoformat(),
            "deadline": deadline,
        },
        separators=(",", ":"),
    ).encode()


def json_safe(value: Any) -> Any:
    """``value`` as JSON data (what JSON cannot hold becomes its ``repr``)."""
    return json.loads(json.dumps(value, default=repr))


def parse(model: type[BaseModel], raw: bytes | str) -> Any:
    """``raw`` validated as ``model``; raises ValueError (with the reason) if it is malformed."""
    if len(raw) > MAX_PAYLOAD:
        raise ValueError(f"{len(raw)} bytes, more than {MAX_PAYLOAD}")
    try:
        return model.model_validate_json(raw)
    except ValidationError as err:
        raise ValueError(f"{err.error_count()} validation error(s): {err.errors()[0]['msg']}") from None
