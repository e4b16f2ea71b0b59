"""Data of ``tools/compat_suite.py``: the reference's tests that fail for a deliberate
difference (each naming its row of ``docs/migration.md``), and those that fail against the
reference itself (measured with hother-cancelable 0.11.3 on Python 3.13)."""

from __future__ import annotations

DELIBERATE: dict[str, str] = {
    # the web integration observes disconnects through the app's own receive/send and checks its arguments
    r"test_fastapi\.py::TestRequestCancelationMiddleware::": "`RequestCancelationMiddleware`",
    r"test_fastapi\.py::TestGetRequestToken::": "`get_request_token(request)` with the middleware",
    r"test_fastapi\.py::TestCancelableDependency::": "`cancelable_dependency`'s `timeout`",
    r"test_fastapi\.py::TestWithCancelation::": "`with_cancelation`",
    r"test_fastapi\.py::TestCancelableStreamingResponse::": "`cancelable_streaming_response`",
    r"test_fastapi\.py::TestCancelableWebSocket::": "bad arguments",
    r"test_base_integration\.py::TestFastAPIIntegration::": "`get_request_token(request)` with the middleware",
    # trio forbids constructing a backend cancel exception
    r"test_token\.py::TestCancelationToken::test_check_async$": "`token.check_async()`",
    r"test_streams\.py::.*test_progress_callback_with_invalid_metadata$": "stream progress callbacks",
    # isolated registries
    r"test_registry\.py::TestRegistryEdgeCases::test_singleton_via_direct_new$": "`OperationRegistry()`",
    # the library logs under its own name
    r"test_logging\.py::TestGetLogger::test_null_handler_present$": "logging",
}
"""A regular expression matched against a test id -> the migration page's row (its first cell)."""

REFERENCE_FAILS: dict[str, tuple[str, ...]] = {
    "asyncio": (r"test_condition\.py::TestConditionSourceEdgeCases::test_monitor_infrastructure_error$",),
    "trio": (  # the reference on trio: asyncio-only test code, or its own failures there
        r"performance/test_scalability\.py::TestScalability::test_large_stream_cancelation$",
        r"unit/test_anyio_bridge\.py::TestAnyioBridge::test_bridge_pending_callback_queue_full_on_startup$",
        r"unit/test_anyio_bridge\.py::TestAnyioBridge::test_bridge_queue_full_handling$",
        r"unit/test_anyio_bridge\.py::TestAnyioBridge::test_bridge_start_already_started_warning$",
        r"unit/test_anyio_bridge\.py::TestAnyioBridge::test_bridge_start_processes_pending$",
        r"unit/test_anyio_bridge\.py::TestAnyioBridge::test_call_soon_threadsafe_after_start$",
        r"unit/test_anyio_bridge\.py::TestAnyioBridge::test_call_soon_threadsafe_send_exception$",
        r"unit/test_anyio_bridge\.py::TestAnyioBridge::test_stop_method_closes_streams$",
        r"unit/test_anyio_bridge\.py::TestAnyioBridge::test_stop_method_handles_stream_close_errors$",
        r"unit/test_anyio_bridge\.py::TestAnyioBridge::test_worker_end_of_stream_handling$",
        r"unit/test_anyio_bridge\.py::TestAnyioBridge::test_worker_exception_handling$",
        r"unit/test_cancelable\.py::TestCancelableComprehensiveCoverage::test_check_cancelation_public_api$",
        r"unit/test_cancelable\.py::TestCancelableFinal100Percent::test_destructor_with_parent_cleanup$",
        r"unit/test_cancelable\.py::TestCancelableThreadOperations::test_run_in_thread_with_args$",
        r"unit/test_cancelable\.py::TestCancelableThreadOperations::test_run_in_thread_with_context$",
        r"unit/test_cancelable\.py::TestCancelableWrapping::test_wrap_checks_cancelation$",
        r"unit/test_cancelable\.py::TestCancelableWrapping::test_wrapping_checks_cancelation$",
        r"unit/test_condition\.py::TestConditionSourceEdgeCases::test_monitor_infrastructure_error$",
        r"unit/test_context_bridge\.py::TestContextBridge::test_context_inheritance$",
        r"unit/test_context_bridge\.py::TestContextBridge::test_context_isolation$",
        r"unit/test_context_bridge\.py::TestContextBridge::test_multiple_context_vars$",
        r"unit/test_context_bridge\.py::TestContextBridge::test_run_in_thread_with_context$",
        r"unit/test_context_bridge\.py::TestContextBridge::test_run_in_thread_with_context_args$",
        r"unit/test_context_bridge\.py::TestContextBridge::test_run_in_thread_with_context_executor$",
        r"unit/test_edge_cases\.py::TestCircularReferences::test_no_circular_references_in_hierarchy$",
        r"unit/test_edge_cases\.py::TestContextVariableThreadSafety::test_context_variable_isolation_between_operations$",
        r"unit/test_edge_cases\.py::TestContextVariableThreadSafety::test_context_variable_propagation_to_threads$",
        r"unit/test_edge_cases\.py::TestMemoryLeakPrevention::test_operation_context_cleanup$",
        r"unit/test_edge_cases\.py::TestMemoryLeakPrevention::test_thread_operation_cleanup$",
        r"unit/test_registry\.py::TestRegistryEdgeCases::test_cleanup_with_history_limit$",
        r"unit/test_streams\.py::TestCancelableAsyncIterator::test_iterator_cancelation_saves_partial$",
        r"unit/test_streams\.py::TestStreamEdgeCases::test_iterator_cancelation_without_buffer$",
        r"unit/test_thread_cancelation\.py::TestAnyioBridge::test_bridge_executes_async_callback_from_thread$",
        r"unit/test_thread_cancelation\.py::TestAnyioBridge::test_bridge_executes_callback_from_thread$",
        r"unit/test_thread_cancelation\.py::TestAnyioBridge::test_bridge_handles_multiple_callbacks$",
        r"unit/test_thread_cancelation\.py::TestBridgeErrorHandling::test_cancel_sync_with_failing_callback$",
        r"unit/test_thread_cancelation\.py::TestPynputScenario::test_keyboard_listener_simulation$",
        r"unit/test_thread_cancelation\.py::TestTokenCancelSync::test_cancel_sync_triggers_callbacks$",
        r"unit/test_token\.py::TestCancelationToken::test_check_async$",
    ),
}
"""Tests that fail against the reference itself, per backend: not run there."""
