"""`CancelableWebSocket`: a Starlette/FastAPI ``WebSocket`` whose calls check an operation."""

from __future__ import annotations

from typing import Any

from starlette.websockets import WebSocketDisconnect

from cancelable_rx import Cancelable, CancelationReason, OperationStatus
from cancelable_rx._checks import fail_type

from ._request import new_request_operation, request_connection

__all__ = ("CancelableWebSocket",)


class CancelableWebSocket:
    """A WebSocket wrapper: every call first checks ``cancelable``'s cancellation, and a
    client that closes the connection cancels it with reason ``DISCONNECT``.

    ``cancelable`` defaults to the connection's own operation (with the middleware: it runs
    for the whole connection, nothing to enter), or without the middleware to an operation
    on the connection's fresh token (with one warning).

    Cancellation: when a receive learns that the client left (Starlette raises
    ``WebSocketDisconnect``), ``cancelable`` is cancelled with reason ``DISCONNECT`` and,
    inside its block, the cancellation is delivered right there (leaving the block raises
    `DisconnectCancelation`); outside it, `DisconnectCancelation` is raised.  Cleanup that
    must still await (telling other clients) belongs in a shielded section
    (``with anyio.CancelScope(shield=True):``).

    Thread-safety: loop thread only, like the WebSocket itself.
    """

    def __init__(self, websocket: Any, cancelable: Cancelable | None = None) -> None:
        if cancelable is None:
            if not isinstance(getattr(websocket, "scope", None), dict):
                fail_type(
                    "websocket", "a Starlette/FastAPI WebSocket", websocket,
                    "or pass `cancelable=` (any object with the WebSocket's methods then works)",
                )
            conn = request_connection(websocket)
            cancelable = conn.operation if conn is not None else new_request_operation(
                websocket, None, "CancelableWebSocket"
            )
        elif not isinstance(cancelable, Cancelable):
            fail_type("cancelable", "a Cancelable or None", cancelable, "None uses the connection's operation")
        self.websocket = websocket
        self.cancelable = cancelable

    async def _progress(self, message: str) -> None:
        op = self.cancelable
        if op.status in (OperationStatus.RUNNING, OperationStatus.SHIELDED):
            await op.report_progress(message)
            return
        try:  # not running: reported if the operation's face reports outside its block (compat does)
            await op.report_progress(message)
        except RuntimeError:  # the main face: only a running operation reports progress
            pass

    async def _disconnected(self, err: WebSocketDisconnect) -> None:
        op = self.cancelable
        op.cancel_sync(CancelationReason.DISCONNECT, f"the client disconnected (websocket close code {err.code})")
        await op.check_cancelation()  # inside the block: the cancellation lands here

    async def accept(self, **kwargs: Any) -> None:
        """Accept the connection (``subprotocol=``, ``headers=``) and report progress."""
        await self.cancelable.check_cancelation()
        await self.websocket.accept(**kwargs)
        await self._progress("WebSocket connected")

    async def send_text(self, data: str) -> None:
        """Send text, after a cancellation check."""
        await self.cancelable.check_cancelation()
        await self.websocket.send_text(data)

    async def send_bytes(self, data: bytes) -> None:
        """Send bytes, after a cancellation check."""
        await self.cancelable.check_cancelation()
        await self.websocket.send_bytes(data)

    async def send_json(self, data: Any) -> None:
        """Send JSON, after a cancellation check."""
        await self.cancelable.check_cancelation()
        await self.websocket.send_json(data)

    async def receive_text(self) -> str:
        """Receive text, after a cancellation check (see the class for a disconnect)."""
        await self.cancelable.check_cancelation()
        try:
            text: str = await self.websocket.receive_text()
        except WebSocketDisconnect as err:
            await self._disconnected(err)
            raise
        return text

    async def receive_bytes(self) -> bytes:
        """Receive bytes, after a cancellation check (see the class for a disconnect)."""
        await self.cancelable.check_cancelation()
        try:
            data: bytes = await self.websocket.receive_bytes()
        except WebSocketDisconnect as err:
            await self._disconnected(err)
            raise
        return data

    async def receive_json(self) -> Any:
        """Receive JSON, after a cancellation check (see the class for a disconnect)."""
        await self.cancelable.check_cancelation()
        try:
            return await self.websocket.receive_json()
        except WebSocketDisconnect as err:
            await self._disconnected(err)
            raise

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection and report progress."""
        await self.websocket.close(code, reason)
        await self._progress("WebSocket closed")
