"""TokenSource (``sources/token.py``): a token as a source, with the token's reason; on
asyncio and trio."""

from __future__ import annotations

import threading

import anyio
import pytest

from cancelable_rx import (
    Cancelable,
    CancelationReason,
    CancelationToken,
    ConditionCancelation,
    ManualCancelation,
    TimeoutSource,
    TokenSource,
)

pytestmark = pytest.mark.anyio


async def test_token_source_uses_token_reason() -> None:
    token = CancelationToken()
    with pytest.raises(ManualCancelation, match="by token"):
        async with Cancelable().add_source(TimeoutSource(5) | TokenSource(token)):
            await token.cancel(message="by token")
            await anyio.sleep(5)
    assert token.listener_count == 0


async def test_token_cancelled_from_a_thread_keeps_its_reason() -> None:
    token = CancelationToken()
    src = TokenSource(token)
    entered = threading.Event()

    def canceller() -> None:
        entered.wait(5)
        token.cancel_sync(CancelationReason.CONDITION, "quota reached")

    thread = threading.Thread(target=canceller)
    thread.start()
    with anyio.fail_after(5), pytest.raises(ConditionCancelation, match="quota reached"):
        async with Cancelable().add_source(src) as op:
            assert token.listener_count == 1
            entered.set()
            await anyio.sleep_forever()
    thread.join(5)
    assert op.cancel_reason is CancelationReason.CONDITION
    assert src.event is not None and src.event.source is src
    assert token.listener_count == 0
