"""The typed errors (``_exceptions.py``): what an operation raises equals what the public
constructors build (the cancel path builds some without running ``__init__``), and every
one survives pickling (they cross process boundaries in worker pools)."""

from __future__ import annotations

import pickle
from typing import Any

import pytest

from cancelable_rx import (
    CancelationError,
    CancelationReason,
    CancelEvent,
    ConditionCancelation,
    DisconnectCancelation,
    ManualCancelation,
    ParentCancelation,
    SignalCancelation,
    TimeoutCancelation,
)
from cancelable_rx._exceptions import error_for
from cancelable_rx.sources.timeout import TimeoutSource


class _Fired:
    """What the builders read off an event's source (the fields a real source has)."""

    def __init__(self, **fields: Any) -> None:
        self.__dict__.update(fields)


def _state(err: BaseException) -> tuple[Any, ...]:
    fields = {k: v for k, v in vars(err).items() if k != "_op"}
    return type(err), err.args, str(err), repr(err), fields


CASES = [
    (CancelEvent(CancelationReason.MANUAL, None, None), ManualCancelation()),
    (CancelEvent(CancelationReason.MANUAL, "stop now", None), ManualCancelation("stop now")),
    (CancelEvent(CancelationReason.TIMEOUT, None, TimeoutSource(2.5)), TimeoutCancelation(2.5)),
    (CancelEvent(CancelationReason.TIMEOUT, "late", TimeoutSource(0.1)), TimeoutCancelation(0.1, "late")),
    (CancelEvent(CancelationReason.SIGNAL, None, _Fired(signal_number=15)), SignalCancelation(15)),
    (CancelEvent(CancelationReason.CONDITION, "met", _Fired(condition_name="disk")), ConditionCancelation("disk", "met")),
    (
        CancelEvent(CancelationReason.PARENT, None, _Fired(parent_id="p1", parent_reason=CancelationReason.MANUAL)),
        ParentCancelation("p1", CancelationReason.MANUAL),
    ),
    (CancelEvent(CancelationReason.ERROR, "boom", None), CancelationError(CancelationReason.ERROR, "boom")),
    (CancelEvent(CancelationReason.DISCONNECT, None, None), DisconnectCancelation()),
]
IDS = [f"{event.reason.value}-{'message' if event.message else 'default'}" for event, _ in CASES]


@pytest.mark.parametrize(("event", "expected"), CASES, ids=IDS)
def test_the_error_an_operation_raises_equals_the_public_constructors(event: CancelEvent, expected: CancelationError) -> None:
    built = error_for(event)
    assert _state(built) == _state(expected)
    assert built.reason is expected.reason and built.message == expected.message and built.context is None
    assert isinstance(built, CancelationError)
    if event.reason is CancelationReason.TIMEOUT:
        assert isinstance(built, TimeoutError)  # as anyio.fail_after raises


@pytest.mark.parametrize(("event", "expected"), CASES, ids=IDS)
def test_a_reason_given_as_its_string_value_builds_the_same_error(event: CancelEvent, expected: CancelationError) -> None:
    # A source class may name its reason by value (``reason = "manual"``, a str enum's value).
    as_text = CancelEvent(event.reason.value, event.message, event.source)  # type: ignore[arg-type]
    assert _state(error_for(as_text)) == _state(expected)


@pytest.mark.parametrize(("event", "expected"), CASES, ids=IDS)
def test_every_typed_error_survives_pickling(event: CancelEvent, expected: CancelationError) -> None:
    built = error_for(event)
    again = pickle.loads(pickle.dumps(built))
    assert _state(again) == _state(built)
