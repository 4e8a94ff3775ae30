"""Soft timeout and cancellation inside the worker, delivered into user code only."""

from __future__ import annotations

import signal


class ExecInterrupted(BaseException):
    """Raised into running user code on timeout or cancellation."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class Interrupts:
    """Soft timeout and cancellation, delivered as an exception into user code only.

    While the worker runs its own code (talking to the parent), a signal is
    recorded and delivered when user code resumes, so the protocol is never cut
    mid-message. The exception derives from ``BaseException``, so the usual
    ``except Exception`` does not swallow it; after the first interrupt the
    timer keeps firing every 50 ms for code that catches it anyway. Code that
    still does not stop (a bare ``except`` in a tight loop, or one long call in
    C) is ended by the parent's hard kill.
    """

    REPEAT_S = 0.05
    EXPIRED_S = 1e-6

    def __init__(self) -> None:
        self.active = False
        self.fired: str | None = None
        self._pending = False
        self._saved = 0.0

    def install(self) -> None:
        signal.signal(signal.SIGALRM, lambda *_: self._interrupt("timeout"))
        signal.signal(signal.SIGUSR1, lambda *_: self._interrupt("cancelled"))

    def _interrupt(self, reason: str) -> None:
        if self.fired is None:
            self.fired = reason
            if reason == "cancelled":
                signal.setitimer(signal.ITIMER_REAL, self.REPEAT_S, self.REPEAT_S)
        if self.active:
            raise ExecInterrupted(self.fired)
        self._pending = True

    def enter(self, timeout: float) -> None:
        self.fired = None
        self._pending = False
        signal.setitimer(signal.ITIMER_REAL, max(timeout, 0.001), self.REPEAT_S)
        self.active = True

    def leave(self) -> None:
        self.active = False
        signal.setitimer(signal.ITIMER_REAL, 0)

    def pause(self) -> None:
        """Stop the clock while the parent serves a sub-call: waiting is not computing."""
        self.active = False
        remaining, _ = signal.setitimer(signal.ITIMER_REAL, 0)
        self._saved = remaining

    def resume(self, charge: float = 0.0) -> None:
        """Restart the clock where it stopped; ``charge`` is wall time to count as compute after all.

        The timer is re-armed with exactly what is left (a floor would hand a loop of quick
        sub-calls a little fresh time on every call, so that it never ran out).
        """
        if self._saved > 0 or self.fired:
            remaining = self._saved - charge
            if remaining <= self.EXPIRED_S and self.fired is None:
                self.fired = "timeout"
                self._pending = True
            signal.setitimer(signal.ITIMER_REAL, max(remaining, self.EXPIRED_S), self.REPEAT_S)
        self.active = True
        if self._pending:
            self._pending = False
            raise ExecInterrupted(self.fired or "timeout")
