"""TokenSource: cancel when a CancelationToken is cancelled."""

from __future__ import annotations

from .._checks import check_instance
from .._models import CancelationReason, CancelEvent
from .._token import CancelationToken
from .base import CancelationSource, Disarm, SourceHost, as_source

__all__ = ("TokenSource",)


class TokenSource(CancelationSource):
    """Fires when ``token`` is cancelled, with the token's reason and message; a stop
    requested on the token (``token.request_stop``) is a soft stop of the operation.

    Thread-safety: the token may be cancelled from any thread.
    """

    reason = CancelationReason.MANUAL

    def __init__(self, token: CancelationToken, name: str | None = None) -> None:
        check_instance(token, CancelationToken, "token", "a CancelationToken")
        super().__init__(name=name)
        self.token = token

    def _fresh(self) -> TokenSource:
        return TokenSource(self.token, self.name)

    def _on_token(self, token: CancelationToken) -> None:
        reason = token.reason or CancelationReason.MANUAL
        self._fire_value(CancelEvent(reason, token.message or f"Token {token.id[:8]} was cancelled", self))

    def on_arm(self, host: SourceHost) -> Disarm | None:
        token, key = self.token, object()  # a key per arming: sharing the source is safe

        def listener(tok: CancelationToken) -> None:
            if tok.is_cancelled:
                self._on_token(tok)
            else:  # the token's stop request: a soft stop of the operation
                stop = tok.stop_request
                if stop is not None:
                    host.request_stop(stop.remaining(), stop.reason, stop.message, self)

        token._listen(listener, key)
        stop = token.stop_request
        if stop is not None and not token.is_cancelled:
            listener(token)
        return lambda: token._unlisten(key)


@as_source.register
def _(obj: CancelationToken, what: str = "source") -> CancelationSource:
    return TokenSource(obj)
