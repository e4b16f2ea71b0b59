"""Data of ``tools/compat_suite.py``: the reference's tests that fail for a deliberate
difference (each naming its row of ``docs/migration.md``), and those that fail against the
reference itself (measured with hother-cancelable 0.11.3 on Python 3.13)."""

from __future__ import annotations

DELIBERATE: dict[str, str] = {}
"""A regular expression matched against a test id -> the migration page's row (its first cell)."""

REFERENCE_FAILS: dict[str, tuple[str, ...]] = {
    "asyncio": (r"test_condition\.py::TestConditionSourceEdgeCases::test_monitor_infrastructure_error$",),
    "trio": (),
}
"""Tests that fail against the reference itself, per backend: not run there."""
