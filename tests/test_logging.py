"""Structured logging: DEBUG records carry operation attributes; nothing at INFO."""

from __future__ import annotations

import logging

import anyio
import pytest

from cancelable_rx import Cancelable, CancelationError, OperationRegistry

pytestmark = pytest.mark.anyio


async def test_lifecycle_records_at_debug_carry_attributes(caplog: pytest.LogCaptureFixture) -> None:
    registry = OperationRegistry.get_instance()
    await registry.clear_all()
    with caplog.at_level(logging.DEBUG, logger="cancelable_rx"):
        with pytest.raises(CancelationError):
            async with Cancelable.with_timeout(0.01, name="logged", register_globally=True) as op:
                await anyio.sleep(1)
    ended = [r for r in caplog.records if getattr(r, "operation_id", None) == op.id]
    assert ended, "no record carried the operation id"
    record = ended[-1]
    assert record.levelno == logging.DEBUG
    assert record.operation_name == "logged"  # type: ignore[attr-defined]
    assert record.cancel_reason == "timeout"  # type: ignore[attr-defined]
    await registry.clear_all()


async def test_silent_at_info(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="cancelable_rx"):
        async with Cancelable(register_globally=True, name="quiet"):
            pass
        with pytest.raises(CancelationError):
            async with Cancelable.with_timeout(0.01):
                await anyio.sleep(1)
    assert [r for r in caplog.records if r.name.startswith("cancelable_rx")] == []
    await OperationRegistry.get_instance().clear_all()
