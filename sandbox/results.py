"""What the sandbox hands back to its caller: plain dataclasses, built from worker messages.

Everything here comes from an untrusted process, so it is parsed field by field
with types forced and strings cleaned of lone surrogates before anyone else
sees it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal


def clean_text(value: Any, limit: int | None = None) -> str:
    """A str that is safe to encode as UTF-8 (user code can build lone surrogates)."""
    text = value if isinstance(value, str) else str(value)
    if limit is not None and len(text) > limit:
        text = text[:limit]
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


def _int(value: Any, default: int = 0) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


@dataclass(frozen=True)
class Document:
    """One document to load: a text file read by the worker through a descriptor the parent opens."""

    name: str
    path: Path
    header: str = ""
    encoding: str = "utf-8"
    errors: str = "strict"
    parts: bool = False
    """The file holds several documents (PDF pages, JSON records) separated by U+001E, each with its header."""
    skip_undecodable: bool = False
    """One file of many (a folder): if it does not decode, it is left out and reported instead of failing the load."""


@dataclass(frozen=True)
class Variable:
    name: str
    type: str
    size: int | None

    @classmethod
    def parse(cls, raw: Any) -> Variable | None:
        if not isinstance(raw, dict):
            return None
        size = raw.get("size")
        return cls(
            name=clean_text(raw.get("name", "?"), 200),
            type=clean_text(raw.get("type", "?"), 200),
            size=_int(size) if size is not None else None,
        )


def parse_variables(raw: Any) -> list[Variable]:
    items = raw if isinstance(raw, list) else []
    return [v for v in map(Variable.parse, items[:500]) if v is not None]


@dataclass(frozen=True)
class ExecError:
    type: str
    message: str
    traceback: str | None = None
    line: int | None = None

    @classmethod
    def parse(cls, raw: Any) -> ExecError | None:
        if not isinstance(raw, dict):
            return None
        tb = raw.get("traceback")
        line = raw.get("line")
        return cls(
            type=clean_text(raw.get("type", "Error"), 200),
            message=clean_text(raw.get("message", ""), 20_000),
            traceback=clean_text(tb, 50_000) if tb is not None else None,
            line=_int(line) if line is not None else None,
        )


@dataclass(frozen=True)
class ExecResult:
    stdout: str
    error: ExecError | None
    final: str | None
    variables: list[Variable]
    elapsed_ms: float
    output_chars: int = 0
    timed_out: bool = False
    cancelled: bool = False
    restarted: bool = False
    notes: list[str] = field(default_factory=list)

    @classmethod
    def parse(cls, raw: dict[str, Any], max_output_chars: int, max_final_chars: int) -> ExecResult:
        final = raw.get("final")
        elapsed = raw.get("elapsed_ms")
        notes = raw.get("notes") if isinstance(raw.get("notes"), list) else []
        return cls(
            # The worker truncates already; the margin covers its marker line.
            stdout=clean_text(raw.get("stdout", ""), max_output_chars + 200),
            error=ExecError.parse(raw.get("error")),
            final=clean_text(final, max_final_chars + 200) if final is not None else None,
            variables=parse_variables(raw.get("variables")),
            elapsed_ms=float(elapsed) if isinstance(elapsed, int | float) else 0.0,
            output_chars=_int(raw.get("output_chars")),
            timed_out=raw.get("timed_out") is True,
            cancelled=raw.get("cancelled") is True,
            notes=[clean_text(n, 1000) for n in notes[:20]],
        )


@dataclass(frozen=True)
class LoadInfo:
    type: Literal["str", "list[str]"]
    documents: int
    chars: int
    lines: int
    document_chars: list[int]
    preview: str
    skipped: list[tuple[int, str]] = field(default_factory=list)
    """Documents of this load left out, as (position in the load, why): skip_undecodable ones that did not decode."""

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> LoadInfo:
        lengths = raw.get("document_chars")
        skipped = raw.get("skipped") if isinstance(raw.get("skipped"), list) else []
        return cls(
            skipped=[
                (_int(item[0]), clean_text(item[1], 500))
                for item in skipped[:100_000]
                if isinstance(item, list) and len(item) == 2
            ],
            type="str" if raw.get("type") == "str" else "list[str]",
            documents=_int(raw.get("documents")),
            chars=_int(raw.get("chars")),
            lines=_int(raw.get("lines")),
            document_chars=[_int(n) for n in lengths] if isinstance(lengths, list) else [],
            preview=clean_text(raw.get("preview", ""), 2000),
        )


@dataclass(frozen=True)
class SubcallReply:
    """The answer to one prompt of a sub-call request: a text, or an error message."""

    text: str | None = None
    error: str | None = None

    def to_message(self) -> dict[str, str]:
        return {"error": self.error} if self.error is not None else {"text": self.text or ""}


class SubcallRefused(Exception):
    """The whole sub-call request is refused (e.g. the budget is used up); raised to the code as ``error_type``."""

    def __init__(self, message: str, error_type: str = "LLMError"):
        super().__init__(message)
        self.error_type = error_type


Spans = dict[int, list[tuple[int, int]]]
"""Corpus ranges found in the prompts of a batch, by prompt index (a prompt not in it has none)."""
SubcallHandler = Callable[[list[str], str | None, Spans | None], Awaitable[list[SubcallReply]]]
"""Serves a batch: (prompts, model, corpus spans, None when not known) -> one reply per prompt."""
"""Serves ``llm_query``/``llm_query_batched``: prompts and an optional model id in, one reply per prompt out."""


CallHandler = Callable[[str, dict[str, Any]], Awaitable[Any]]
"""Serves the code's other requests of its parent (``rlm_query``): a name and JSON arguments in,
a JSON result out; raise :class:`SubcallRefused` to make the code see an error."""
