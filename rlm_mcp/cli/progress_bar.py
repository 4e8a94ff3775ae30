"""A progress bar for loads and runs on a terminal, and silence everywhere else.

The bar goes to stderr, and only when stderr is a terminal: a script that pipes
or captures the output gets the answer on stdout and nothing else. It is drawn
by tqdm when the optional ``progress`` extra is installed (``pip install
"rlm-mcp[progress]"``), and as one rewritten status line otherwise.

What it shows is counted, never estimated: files looked at and read (with
bytes) while loading; in a run, the step out of the iteration limit and, while
a batch of sub-calls runs, that batch as a bar (``37/50 sub-calls``) with the
run's total beside it. A run has no honest overall percentage (it may answer at
step 3 of 20), so only a batch, whose size is known, gets a bar and a
remaining time; the bar starts over with each batch.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from types import TracebackType
from typing import IO, Any

from rlm_mcp.progress import Progress, size_text

WITH_TOTAL = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} {unit} [{elapsed}<{remaining}{postfix}]"
WITHOUT_TOTAL = "{desc} [{elapsed}{postfix}]"


@dataclass(frozen=True)
class Shown:
    """One report as the terminal shows it."""

    label: str
    done: int | None = None
    of: int | None = None
    unit: str = ""
    extra: str = ""

    @property
    def key(self) -> tuple[str, str, int | None]:
        """A new piece of work (another batch, another phase): the bar and its clock start over."""
        return self.label, self.unit, self.of


def _count(n: int, unit: str) -> str:
    """``1 file``, ``40 files``: the unit is given in the plural."""
    return f"{n:,} {unit.removesuffix('s') if n == 1 else unit}"


def shown(report: Progress) -> Shown:
    if report.phase == "scan":
        return Shown("looking at files", report.done, None, "files", size_text(report.size))
    if report.phase == "read":
        return Shown("reading files", report.done, report.of, "files", size_text(report.size))
    if report.phase == "exec":
        return Shown("sub-calls", report.done, report.of, "sub-calls")
    step = f"step {report.step}/{report.max_steps}"
    in_all = f"{_count(report.sub_calls, 'sub-calls')} in all"
    if report.of:
        return Shown(step, report.done, report.of, "sub-calls", in_all)
    label = report.message.replace(f"step {report.step}", step, 1) if report.step else report.message
    return Shown(label, extra=in_all)


class RunProgress:
    """Receives progress reports of a load or a run and shows them."""

    def __init__(self, enabled: bool | None = None, stream: IO[str] | None = None):
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self._bar: Any = None
        self._width = 0
        self._key: tuple[str, str, int | None] | None = None
        self._started = time.monotonic()

    def __enter__(self) -> RunProgress:
        if self.enabled:
            try:
                from tqdm import tqdm
            except ImportError:
                tqdm = None
            if tqdm is not None:
                self._bar = tqdm(
                    total=None, file=self.stream, leave=False, dynamic_ncols=True, bar_format=WITHOUT_TOTAL, delay=3600
                )  # drawn by the first report, not before (an empty bar would flash)
        return self

    async def __call__(self, report: Progress) -> None:
        if not self.enabled:
            return
        view = shown(report)
        if view.key != self._key:
            self._key = view.key
            self._started = time.monotonic()
            if self._bar is not None:  # as tqdm's reset() does, without drawing an empty bar in between
                self._bar.total = view.of
                self._bar.n = self._bar.last_print_n = 0
                self._bar.start_t = self._bar.last_print_t = time.time()
        if self._bar is not None:
            self._draw_bar(view)
        else:
            self._draw_line(view)

    def _draw_bar(self, view: Shown) -> None:
        bar = self._bar
        bar.bar_format = WITH_TOTAL if view.of else WITHOUT_TOTAL
        bar.unit = view.unit
        bar.n = view.done or 0
        label = view.label if view.of or view.done is None else f"{view.label}: {_count(view.done, view.unit)}"
        bar.set_description_str(label, refresh=False)
        bar.set_postfix_str(view.extra, refresh=False)
        bar.refresh()

    def _draw_line(self, view: Shown) -> None:
        parts = [view.label]
        if view.done is not None:
            parts.append(f"{view.done:,}/{view.of:,} {view.unit}" if view.of else _count(view.done, view.unit))
        if view.extra:
            parts.append(view.extra)
        parts.append(f"{time.monotonic() - self._started:.0f} s")
        line = " · ".join(parts)
        self.stream.write("\r" + line.ljust(self._width))
        self.stream.flush()
        self._width = len(line)

    def note(self, text: str) -> None:
        """A line of information (what was loaded), shown only where the bar would be."""
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.write(text, file=self.stream)
        else:
            self.stream.write("\r" + text.ljust(self._width) + "\n")
            self._width = 0

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._bar is not None:
            self._bar.close()
        elif self.enabled and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
