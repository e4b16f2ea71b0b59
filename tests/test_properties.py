"""Property-based tests (hypothesis) of the composition rules."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from cancelable_rx import AllOfSource, AnyOfSource, CancelationReason, CancelationToken, CancelEvent, TokenSource

reasons = st.sampled_from(list(CancelationReason))


class _Host:
    """A minimal source host: token sources need no loop or task to fire by hand."""

    applies_deadlines = True

    def run_soon(self, fn: object) -> None:  # pragma: no cover - never hops here
        raise AssertionError("no hop expected")

    call = run_soon
    fail = run_soon

    def start_soon(self, fn: object) -> None:  # pragma: no cover - never needs tasks here
        raise AssertionError("no task expected")


@given(order=st.permutations(range(4)), reasons_=st.lists(reasons, min_size=4, max_size=4))
def test_any_of_fires_once_with_the_first_reason(order: list[int], reasons_: list[CancelationReason]) -> None:
    tokens = [CancelationToken() for _ in range(4)]
    anyof = AnyOfSource(*[TokenSource(t) for t in tokens])
    seen: list[CancelEvent] = []
    anyof._listen(seen.append)
    disarm = anyof.arm(_Host())
    for i in order:
        tokens[i].cancel_sync(reasons_[i], f"token {i}")
    assert disarm is not None
    disarm()
    assert len(seen) == 1
    assert seen[0].reason is reasons_[order[0]] and seen[0].message == f"token {order[0]}"
    assert all(t.listener_count == 0 for t in tokens)


@given(order=st.permutations(range(3)), reasons_=st.lists(reasons, min_size=3, max_size=3))
def test_all_of_fires_exactly_when_the_last_part_fires(order: list[int], reasons_: list[CancelationReason]) -> None:
    tokens = [CancelationToken() for _ in range(3)]
    parts = [TokenSource(t) for t in tokens]
    allof = AllOfSource(*parts)
    seen: list[CancelEvent] = []
    allof._listen(seen.append)
    disarm = allof.arm(_Host())
    for i in order:
        assert seen == []  # not before every part has fired
        tokens[i].cancel_sync(reasons_[i], f"part {i}")
        tokens[i].cancel_sync(CancelationReason.ERROR, "again")  # a part counts once
    assert disarm is not None
    disarm()
    assert len(seen) == 1
    last = order[-1]
    assert seen[0].reason is reasons_[last] and seen[0].source is parts[last]
    assert allof.fired_count == 3
