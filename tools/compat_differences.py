"""Data of ``tools/compat_suite.py``: the reference's tests that fail for a deliberate
difference (each naming its row of ``docs/migration.md``), those that fail because they
read or write the reference's private attributes (each naming its row of the page's table
of private internals), and those that fail against the reference itself (measured with
hother-cancelable 0.11.3 on Python 3.13).

Every entry was checked by hand against the failure it explains; a test lands in `PRIVATE`
only if it touches an attribute with a leading underscore that the reference does not
document, and fails on the main face because that attribute is not there (or means
something else)."""

from __future__ import annotations

DELIBERATE: dict[str, str] = {
    # the web integration observes disconnects through the app's own receive/send (no token in the
    # scope, WebSockets handled), builds main-face operations named from the ASGI scope, and answers
    # SIGNAL with 503 (a disconnect is DISCONNECT)
    r"test_fastapi\.py::TestRequestCancelationMiddleware::": "`RequestCancelationMiddleware`",
    r"test_fastapi\.py::TestGetRequestToken::": "`get_request_token(request)` with the middleware",
    r"test_fastapi\.py::TestCancelableDependency::": "`cancelable_dependency`'s `timeout`",
    r"test_fastapi\.py::TestWithCancelation::test_decorator_(signal_cancelation|no_raise)$": "`with_cancelation`",
    r"test_base_integration\.py::TestFastAPIIntegration::test_cancellable_dependency$":
        "`cancelable_dependency`'s `timeout`",
    # the tests patch report_progress on one operation (main face: no __dict__)
    r"test_fastapi\.py::TestCancelableWebSocket::test_websocket_(accept|close)$": "patching a method on one operation",
    # trio forbids constructing a backend cancel exception
    r"test_token\.py::TestCancelationToken::test_check_async$": "`token.check_async()`",
    r"test_streams\.py::.*test_progress_callback_with_invalid_metadata$": "stream progress callbacks",
    # isolated registries
    r"test_registry\.py::TestRegistryEdgeCases::test_singleton_via_direct_new$": "`OperationRegistry()`",
    # the library logs under its own name
    r"test_logging\.py::TestGetLogger::test_null_handler_present$": "logging",
    # a clear error instead of a silent no-op (the issue asks for it)
    r"test_cancelable\.py::TestCancelableLifecycle::test_exit_without_enter$": "`__aexit__` without `__aenter__`",
    # a bare operation is ~10x cheaper: two `anyio.sleep(0)` in callbacks cost more than one
    r"test_overhead\.py::TestPerformanceOverhead::test_callback_overhead$": "callback overhead relative to a bare operation",
    # any token links: no warning that a plain CancelationToken cannot be linked
    r"test_cancelable\.py::TestCancelableFinal100Percent::test_(parent_token|combined_cancelables)_not_linkable_warning$":
        "a child or a combined operation whose token is a plain `CancelationToken`",
    # the reference's own calls, patched by its tests: not how this engine links or records
    r"test_cancelable\.py::TestCancelableFinal100Percent::test_token_linking_exception$":
        "`LinkedCancelationToken.link`, `OperationContext.update_status` patched",
    r"test_cancelable\.py::TestCancelableFinal100Percent::test_aexit_status_handling_exception$":
        "`LinkedCancelationToken.link`, `OperationContext.update_status` patched",
    # main-face operations keep their state in slots: no __dict__ to patch a method into
    r"test_registry\.py::TestRegistryEdgeCases::test_cancel_all_with_error$": "patching a method on one operation",
}
"""A regular expression matched against a test id -> the migration page's row (its first cell)."""

_C = r"test_cancelable\.py::"
PRIVATE: dict[str, str] = {
    # an operation's token, made eagerly by the reference (here on first use of op.token)
    r"test_composition\.py::TestCancelableComposition::test_combine_timeout_and_token$": "`op._token`",
    r"test_real_world\.py::TestIntegration::test_(http_download_simulation|multi_stage_pipeline_success)$": "`op._token`",
    # parent/child bookkeeping: a WeakSet of children and a weak reference to the parent
    _C + r"TestCancelableBasics::test_parent_child_relationship$": "`op._children`, `op._parent_ref`",
    _C + r"TestCancelableComprehensiveCoverage::test_parent_(child_cancelation|cancelation_propagates_to_children)$":
        "`op._children`, `op._parent_ref`",
    _C + r"TestCancelableFinal100Percent::test_(cancel_with_precancelled_children|cancel_without_propagating_to_"
    r"children|child_already_cancelled_skip|child_cancelation_mix_states|destructor_with_parent_cleanup"
    r"|parent_token_linking)$": "`op._children`, `op._parent_ref`",
    r"test_edge_cases\.py::TestCircularReferences::test_(parent_child_relationship_cleanup|weak_references_prevent_"
    r"cycles)$": "`op._children`, `op._parent_ref`",
    # the list of open shield scopes
    _C + r"TestCancelableComprehensiveCoverage::test_shield_remove_from_list$": "`op._shields`",
    _C + r"TestCancelableFinal100Percent::test_shield(_cleanup_during_active_shield|_cleanup_multiple_shields"
    r"|_cleanup_on_cancelation|_in_shields_list|_normal_exit|s_cleanup_in_finally)$": "`op._shields`",
    _C + r"TestCancelableShieldEdgeCases::test_shield_cleanup_on_exception$": "`op._shields`",
    # the callback lists, the source list, the scope, the linking machinery, the finalizer
    _C + r"TestCancelableComprehensiveCoverage::test_(async_error_callback|error_in_error_callback)$":
        "`op._status_callbacks`",
    _C + r"TestCancelableComprehensiveCoverage::test_(multiple_sources_cancelation_reason_detection|source_stop_"
    r"monitoring_exception)$": "`op._sources`",
    _C + r"TestCancelableFinal100Percent::test_(cancelation_from_triggered_source|cancelation_with_deadline_and_"
    r"sources|source_check_with_deadline_and_source|source_check_without_deadline)$": "`op._sources`",
    _C + r"TestCancelableFinal100Percent::test_(aexit_scope_exit_exception|scope_none_in_token_callback)$":
        "`op._scope`",
    _C + r"TestCancelableComprehensiveCoverage::test_already_linked_state$":
        "`op._cancellables_to_link`, `op._safe_link_tokens()`, `op._collect_all_tokens()`",
    _C + r"TestCancelableFinal100Percent::test_(deeply_nested_token_collection|token_linking_failure)$":
        "`op._cancellables_to_link`, `op._safe_link_tokens()`, `op._collect_all_tokens()`",
    _C + r"TestCancelableLifecycle::test_del_with_active_sources$": "`op.__del__()`",
    # a source's task group when it is started directly
    r"test_condition\.py::TestConditionSourceEdgeCases::test_(monitor_condition_cancelled_error|monitor_task_group_"
    r"cancellation_reraises|stop_monitoring_with_task_group_error)$": "`source._task_group`, `source._stop_event`",
    r"test_composite\.py::(TestAllOfSource::test_all_of_stop_monitoring|TestCompositeSource::test_stop_monitoring_"
    r"task_group_cleanup)$": "`source._task_group`, `source._stop_event`",
    r"test_signal\.py::TestSignalSource::test_(signal_monitoring_lifecycle|stop_monitoring_with_exception)$":
        "`source._task_group`, `source._stop_event`",
    # the bridge's memory stream, worker task and pending queue
    r"test_anyio_bridge\.py::TestAnyioBridge::test_(bridge_initialization|bridge_pending_callback_queue_full_on_"
    r"startup|bridge_queue_full_handling|bridge_queuing_before_start|bridge_start_already_started_warning|bridge_"
    r"start_processes_pending|call_soon_threadsafe_after_start|call_soon_threadsafe_send_exception|multiple_bridge_"
    r"instances|stop_method_closes_streams|stop_method_handles_stream_close_errors|stop_method_when_streams_dont_"
    r"exist|worker_end_of_stream_handling|worker_exception_handling)$":
        "`bridge._worker`, `bridge._send_stream`, `bridge._receive_stream`, `bridge._pending_callbacks`",
}
"""A regular expression matched against a test id -> the row of the migration page's table of
the reference's private internals (its first cell)."""

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
