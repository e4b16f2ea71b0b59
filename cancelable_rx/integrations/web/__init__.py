"""Web requests (ASGI): cancel on client disconnect, deadlines across HTTP hops, safe
streaming responses.  Install with ``pip install "cancelable-rx[web]"``; see ``docs/web.md``.

* `RequestCancelationMiddleware`: one operation per HTTP request and WebSocket connection,
  cancelled with reason ``DISCONNECT`` when the client leaves and ``TIMEOUT`` when its
  deadline (server default, shortened by the ``x-request-timeout-ms`` header) passes.
* `get_request_operation`, `get_request_token`, `cancelable_dependency`, `with_cancelation`:
  request-scoped cancellation in endpoints (FastAPI or Starlette).
* `cancelable_streaming_response`: a streaming body that stops producing on a disconnect,
  the deadline or a token, records its partial result and reason, and never holds a cancel
  scope across ``yield``.
* `CancelableWebSocket`: WebSocket calls that check the connection's cancellation.
* `AsyncDeadlineTransport`, `DeadlineTransport`: httpx transports that send the current
  operation's remaining budget to the next service and stop at the deadline.
"""

from ._deadline import DEADLINE_HEADER, MAX_HEADER_MS, format_budget, parse_budget
from ._httpx import AsyncDeadlineTransport, BudgetExhausted, DeadlineTransport
from ._middleware import DEFAULT_STATUSES, RequestCancelationMiddleware, status_for
from ._request import cancelable_dependency, get_request_operation, get_request_token, with_cancelation
from ._streaming import CancelableStreamingResponse, cancelable_streaming_response
from ._websocket import CancelableWebSocket

__all__ = (
    "DEADLINE_HEADER",
    "DEFAULT_STATUSES",
    "MAX_HEADER_MS",
    "AsyncDeadlineTransport",
    "BudgetExhausted",
    "CancelableStreamingResponse",
    "CancelableWebSocket",
    "DeadlineTransport",
    "RequestCancelationMiddleware",
    "cancelable_dependency",
    "cancelable_streaming_response",
    "format_budget",
    "get_request_operation",
    "get_request_token",
    "parse_budget",
    "status_for",
    "with_cancelation",
)
