"""A progress bar for long runs on a terminal, and silence everywhere else.

The bar goes to stderr, and only when stderr is a terminal: a script that pipes
or captures the output gets the answer on stdout and nothing else. It is drawn
by tqdm when the optional ``progress`` extra is installed (``pip install
"rlm-mcp[progress]"``), and as one rewritten status line otherwise.
"""

from __future__ import annotations

import sys
from types import TracebackType
from typing import IO, Any


class RunProgress:
    """Receives the run's progress reports (step, total steps, message) and shows them."""

    def __init__(self, enabled: bool | None = None, stream: IO[str] | None = None):
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self._bar: Any = None
        self._width = 0

    def __enter__(self) -> RunProgress:
        if self.enabled:
            try:
                from tqdm import tqdm
            except ImportError:
                tqdm = None
            if tqdm is not None:
                self._bar = tqdm(total=None, unit="step", file=self.stream, leave=False, dynamic_ncols=True)
        return self

    async def __call__(self, done: float, total: float | None, message: str) -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.total = total
            self._bar.n = done
            self._bar.set_description_str(message, refresh=False)
            self._bar.refresh()
            return
        line = f"{message} ({done:g}/{total:g})" if total else message
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
