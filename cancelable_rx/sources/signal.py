"""SignalSource: cancel when the process receives an OS signal."""

from __future__ import annotations

import signal as _signal
from collections.abc import Callable
from datetime import timedelta

from .._checks import check_signal, check_timeout
from .._models import CancelationReason, CancelEvent
from . import _signal_hub
from .base import CancelationSource, Disarm, SourceHost

__all__ = ("SignalSource",)


class SignalSource(CancelationSource):
    """Fires when any of ``signals`` arrives while an operation using it runs.

    While armed, the process-wide handler of each signal is ours (shared, reference-
    counted, by every operation listening to that signal, so all of them fire); the
    previous handler is restored when the last one exits.
    Thread-safety: Python installs signal handlers only in the main thread, so the
    source must be created and its operation entered there; anything else raises
    RuntimeError saying so.

    With ``graceful=`` (a grace period in seconds, or a timedelta) the source is *soft*: the
    first signal requests a stop (the operation may finish within the grace period, see
    ``Cancelable.request_stop``) and a second signal cancels at once, as Kubernetes and
    most servers treat SIGTERM and a second Ctrl-C.
    """

    reason = CancelationReason.SIGNAL

    def __init__(self, *signals: int, name: str | None = None, graceful: float | timedelta | None = None) -> None:
        """``signals``: the signal numbers to watch; none means ``SIGINT`` and ``SIGTERM``
        (the reference's default)."""
        if not signals:
            signals = (_signal.SIGINT, _signal.SIGTERM)
        checked = tuple(check_signal(s) for s in signals)
        grace = check_timeout(graceful, "graceful") if graceful is not None else None
        _signal_hub.require_main_thread("with_signal()/SignalSource")
        super().__init__(name=name)
        self.signals = checked
        self.graceful = grace
        self.signal_number: int | None = None

    def _fresh(self) -> SignalSource:
        return SignalSource(*self.signals, name=self.name, graceful=self.graceful)

    def default_message(self) -> str:
        if self.signal_number is None:
            return "Signal received"
        return f"Received signal {_signal.Signals(self.signal_number).name} ({self.signal_number})"

    def _fire_signal(self, signum: int) -> None:
        if self._fired:
            return
        self.signal_number = signum
        self._fire_value(CancelEvent(CancelationReason.SIGNAL, self.default_message(), self))

    def on_arm(self, host: SourceHost) -> Disarm | None:
        subs: list[tuple[int, Callable[[], object]]] = []
        received = [0]  # signals seen by this arming (a soft source: the first asks, the second cancels)

        def on_signal(signum: int) -> None:
            received[0] += 1
            if self.graceful is None or received[0] > 1:
                self._fire_signal(signum)
                return
            self.signal_number = signum
            name = _signal.Signals(signum).name
            host.request_stop(
                self.graceful, CancelationReason.SIGNAL,
                f"Received signal {name} ({signum}): stopping within {self.graceful:g}s; send it again to stop at once",
                self,
            )

        for signum in self.signals:
            fn = _bind(on_signal, signum)
            _signal_hub.subscribe(signum, host.run_soon, fn)
            subs.append((signum, fn))

        def disarm() -> None:
            for signum, fn in subs:
                _signal_hub.unsubscribe(signum, fn)

        return disarm


def _bind(fire: Callable[[int], None], signum: int) -> Callable[[], None]:
    return lambda: fire(signum)
