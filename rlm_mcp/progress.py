"""Progress of long calls (loads, runs, executions), for MCP clients and for the terminal.

One :class:`Progress` serves both: MCP progress notifications carry ``value``,
``total`` and ``message``; the terminal bar of ``rlm-mcp query`` draws the
counts (step, sub-calls of the current batch, files and bytes) as integers.

``value`` only ever increases within one call, as MCP requires. A run's value
is the step number plus how far the step has got: each batch of sub-calls in a
step moves it through half of what is left of the step, so the value follows
the batch's own progress, never reaches the next step, and never goes back
when a second batch starts. :func:`increasing` drops the odd report that
would not increase (a nested run's report, say), so no client ever sees one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

Phase = Literal["scan", "read", "step", "exec"]
BATCH_SHARE = 0.5
STEP_START = 0.01
"""Where a step's value starts, so its first report is above the end of the step before."""
"""How much of what is left of a step one batch of sub-calls moves through."""


@dataclass(frozen=True)
class Progress:
    """One report. ``value``/``total``/``message`` go to MCP; the rest is for a terminal."""

    value: float
    total: float | None
    message: str
    phase: Phase = "step"
    step: int = 0
    """The root turn being worked on (1-based), in a run."""
    max_steps: int = 0
    done: int = 0
    """Sub-calls finished in the current batch (runs, executions) or files read/looked at (loads)."""
    of: int | None = None
    """The size of the current batch, or the number of files to read (None: not known yet)."""
    sub_calls: int = 0
    """Sub-calls of the whole run so far."""
    size: int = 0
    """Bytes found (scan) or read (read) so far, in a load."""
    total_size: int | None = None


ProgressReporter = Callable[[Progress], Awaitable[None]]


def size_text(size: int) -> str:
    """Bytes as people read them: 512 B, 3.4 KB, 310 MB, 1.2 GB."""
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" or value >= 100 else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


Notify = Callable[[float, float | None, str], Awaitable[None]]


def increasing(notify: Notify) -> ProgressReporter:
    """A reporter that sends only reports whose value is above the last one sent (MCP's rule)."""
    last: float | None = None

    async def report(progress: Progress) -> None:
        nonlocal last
        if last is not None and progress.value <= last:
            return
        last = progress.value
        await notify(progress.value, progress.total, progress.message)

    return report


class StepProgress:
    """Where a run's progress value stands inside one step, as batches of sub-calls come and go."""

    def __init__(self, step: int):
        self.step = step
        """0-based: the value moves from ``step`` towards ``step + 1``."""
        self._base = float(step)
        self._value = float(step)

    def begin(self) -> float:
        """The value as the step starts (the root model writing): just past the end of the step before."""
        self._base = self._value = self.step + STEP_START
        return self._value

    def batch(self, done: int, total: int) -> float:
        """The value when ``done`` of a batch of ``total`` sub-calls have finished."""
        room = (self.step + 1 - self._base) * BATCH_SHARE
        self._value = max(self._value, self._base + room * (done / total if total else 1.0))
        if total and done >= total:
            self._base = self._value  # the next batch of this step moves through half of what is left
        return self._value

    def nested(self, fraction: float) -> float:
        """The value while a nested run (rlm_query in the code) is ``fraction`` done."""
        room = (self.step + 1 - self._base) * BATCH_SHARE
        self._value = max(self._value, self._base + room * min(max(fraction, 0.0), 1.0))
        return self._value
