"""What the sandbox hands back to its caller: plain dataclasses, built from worker messages.

Everything here comes from an untrusted process, so it is parsed field by field
(:class:`~sandbox.fields.Fields`): a field that is missing or of the wrong type
makes the whole frame a protocol violation, and strings are cut to size and
cleaned of lone surrogates before anyone else sees them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from sandbox.fields import Fields, clean_text
from sandbox.protocol import ProtocolError

__all__ = ["clean_text"]  # re-exported: the parent's modules import it from here

MAX_VARIABLES = 500
MAX_NOTES = 20


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
    def parse(cls, raw: Any) -> Variable:
        fields = Fields(raw, "a variable")
        return cls(name=fields.text("name", 200), type=fields.text("type", 200), size=fields.optional_count("size"))


def parse_variables(raw: Any) -> list[Variable]:
    if type(raw) is not list:
        raise ProtocolError("the variables are not a list")
    return [Variable.parse(v) for v in raw[:MAX_VARIABLES]]


@dataclass(frozen=True)
class ExecError:
    type: str
    message: str
    traceback: str | None = None
    line: int | None = None

    @classmethod
    def parse(cls, raw: Any) -> ExecError:
        fields = Fields(raw, "an error")
        return cls(
            type=fields.text("type", 200),
            message=fields.text("message", 20_000),
            traceback=fields.optional_text("traceback", 50_000),
            line=fields.optional_count("line"),
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
        fields = Fields(raw, "the result")
        error = fields.optional_mapping("error")
        return cls(
            # The worker truncates already; the margin covers its marker line.
            stdout=fields.text("stdout", max_output_chars + 200),
            error=None if error is None else ExecError.parse(error),
            final=fields.optional_text("final", max_final_chars + 200),
            variables=parse_variables(fields.items("variables")),
            elapsed_ms=fields.number("elapsed_ms"),
            output_chars=fields.count("output_chars"),
            timed_out=fields.flag("timed_out"),
            cancelled=fields.flag("cancelled"),
            notes=fields.texts("notes", 1000)[:MAX_NOTES],
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
    def parse(cls, raw: dict[str, Any], sent: int) -> LoadInfo:
        """The worker's report on a load of ``sent`` documents."""
        fields = Fields(raw, "the load report")
        kind = fields.text("type", 20)
        lengths = fields.items("document_chars")
        if kind not in ("str", "list[str]") or not all(type(n) is int and n >= 0 for n in lengths):
            raise ProtocolError("the load report does not describe a corpus")
        return cls(
            type="str" if kind == "str" else "list[str]",
            documents=fields.count("documents"),
            chars=fields.count("chars"),
            lines=fields.count("lines"),
            document_chars=lengths,
            preview=fields.text("preview", 2000),
            skipped=_parse_skipped(fields.items("skipped"), sent),
        )


def _parse_skipped(raw: list[Any], sent: int) -> list[tuple[int, str]]:
    """Documents left out, as ``[position, reason]`` pairs: positions among the ``sent`` documents, ascending
    and each once (so there are never more of them than documents), reasons short texts."""
    skipped: list[tuple[int, str]] = []
    for item in raw:
        if type(item) is not list or len(item) != 2 or type(item[0]) is not int or type(item[1]) is not str:
            raise ProtocolError("the load report's skipped documents are not [position, reason] pairs")
        position = item[0]
        if not (skipped[-1][0] if skipped else -1) < position < sent:
            raise ProtocolError("the load report skips a document that was not in the load, or one twice")
        skipped.append((position, clean_text(item[1], 500)))
    return skipped


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
SubcallHandler = Callable[..., Awaitable[list[SubcallReply]]]
"""Serves ``llm_query``/``llm_query_batched``: ``(prompts, model, spans)`` in (an optional model id, and the
prompts' corpus spans or None when the worker could not tell), one reply per prompt out. When the code passed
``cache=False`` it is called with that keyword too (``(prompts, model, spans, cache=False)``): a handler that
caches answers must then ask the model."""


CallHandler = Callable[[str, dict[str, Any]], Awaitable[Any]]
"""Serves the code's other requests of its parent (``rlm_query``): a name and JSON arguments in,
a JSON result out; raise :class:`SubcallRefused` to make the code see an error."""
