"""What resolving a source yields: the documents a sandbox reads, and what was left out."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from rlm_mcp.errors import InvalidInput
from sandbox import Document


@dataclass(frozen=True)
class LoadOptions:
    """How the files of one ``load_context`` call are read."""

    max_bytes: int
    encoding: str = "utf-8"
    errors: str = "strict"
    format: Literal["auto", "text"] = "auto"
    """``auto`` reads .pdf as pages and .json/.jsonl as records; ``text`` reads every file as plain text."""
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()


@dataclass
class LoadTally:
    """How far resolving has got: files looked at and bytes found so far.

    The resolving thread adds to two integers per file and, at most every
    ``interval`` seconds, tells ``watch`` (which reports progress): a
    48,000-file walk pays a clock read per file for being watched.
    """

    files: int = 0
    bytes: int = 0
    watch: Callable[[LoadTally], None] | None = None
    interval: float = 0.25
    _last: float = field(default=0.0, repr=False)

    def add(self, size: int) -> None:
        self.files += 1
        self.bytes += size
        if self.watch is not None:
            now = time.monotonic()
            if now - self._last >= self.interval:
                self._last = now
                self.watch(self)


@dataclass
class ResolvedSource:
    documents: list[Document]
    shape: Literal["str", "list"]
    total_bytes: int
    skipped: list[str] = field(default_factory=list)


def too_large(what: str, size: int, limit: int, hint: str = "") -> InvalidInput:
    """The refusal of a corpus over ``RLM_MAX_CORPUS_MB``, in exact bytes (rounding hid 1.05 MB over 1 MB)."""
    return InvalidInput(
        f"{what} holds {size:,} bytes, over the corpus limit of {limit:,} bytes "
        f"({limit / 2**20:g} MB, RLM_MAX_CORPUS_MB){hint}"
    )
