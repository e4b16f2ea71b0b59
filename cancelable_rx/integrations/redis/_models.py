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
from json.encoder import encode_basestring_ascii as _encode
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


_REASON_JSON = {reason: json.dumps(reason.value) for reason in CancelationReason}
_origin: tuple[int, str] = (0, "")  # (pid, the JSON of host and pid): a forked child makes its own


def _origin_json() -> str:
    global _origin
    pid = os.getpid()
    cached = _origin
    if cached[0] != pid:
        cached = _origin = (pid, f'"origin":{{"host":{_encode(_HOST)},"pid":{pid},"operation_id":')
    return cached[1]


def cancel_json(
    name: str, reason: CancelationReason, message: str | None, operation_id: str | None, deadline: float | None
) -> bytes:
    """A `CancelPayload` from this process as JSON, written directly (it is on the path of
    every cancel; ``CancelPayload.model_validate_json`` reads it back, see the tests).

    The same text ``json.dumps`` would write (ASCII, no spaces), from pieces made once per
    process (host and pid, the reasons) and the escaped strings of this cancel."""
    return (
        f'{{"v":1,"name":{_encode(name)},"reason":{_REASON_JSON[reason]},'
        f'"message":{"null" if message is None else _encode(message)},{_origin_json()}'
        f'{"null" if operation_id is None else _encode(operation_id)}}},'
        f'"time":"{datetime.now(UTC).isoformat()}","deadline":{"null" if deadline is None else repr(float(deadline))}}}'
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
