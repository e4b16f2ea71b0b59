"""TokenSource: cancel when a CancelationToken is cancelled."""

from __future__ import annotations

from .._models import CancelationReason, CancelEvent
from .._token import CancelationToken
from .base import ArmContext, CancelationSource

__all__ = ("TokenSource",)


class TokenSource(CancelationSource):
    """Fires when ``token`` is cancelled, with the token's reason and message.

    Thread-safety: the token may be cancelled from any thread.
    """

    reason = CancelationReason.MANUAL

    def __init__(self, token: CancelationToken, name: str | None = None) -> None:
        if not isinstance(token, CancelationToken):
            raise TypeError(f"`token` must be a CancelationToken, got {token!r}")
        super().__init__(name)
        self.token = token

    def _fresh(self) -> TokenSource:
        return TokenSource(self.token, self.name)

    def _on_token(self, token: CancelationToken) -> None:
        reason = token.reason or CancelationReason.MANUAL
        self._fire_value(CancelEvent(reason, token.message or f"Token {token.id[:8]} was cancelled", self))

    def _start(self, ctx: ArmContext, deadline_ok: bool) -> None:
        self.token._listen(self._on_token)

    def _stop(self) -> None:
        self.token._unlisten(self._on_token)
