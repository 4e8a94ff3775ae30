"""``llm_map`` and the other map-reduce helpers, as REPL builtins.

``llm_map(prompt_template, chunks, parse=...)`` is the fan-out step every run
writes by hand: one prompt per chunk, sent through ``llm_query_batched``, the
failed ones sent again (a bounded number of times), each answer parsed, and
every result kept with its chunk's id so the aggregate can say where it came
from. Results are plain dicts::

    {"id": 3, "value": <parsed answer>, "answer": "<raw text>", "error": None}

with ``error`` a message (and ``value`` None) for a chunk that still failed
after the retries; a line printed to the output says how many did.

The template is filled by plain substitution of ``{chunk}`` and ``{id}`` in one
pass, not by ``str.format``: a prompt that shows JSON (``{"label": ...}``) is
sent as written, and no field can walk attributes (``{chunk.__class__}`` is
just text). A template without ``{chunk}`` gets the chunk after a blank line.
The template may also be a function of the chunk that returns the prompt.

The helpers are builtins of the namespace, not variables: code that defines
its own ``llm_map`` or ``split_chunks`` simply shadows them, and nothing is
lost or restored behind its back.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from sandbox.worker import chunking
from sandbox.worker.guards import exact_int, exact_str
from sandbox.worker.interrupts import ExecInterrupted

NAMES = ("split_chunks", "chunk_spans", "llm_map")
MAX_RETRIES = 5
BATCH = 1000
"""Prompts per request to the parent: a request's frame stays bounded however many chunks there are."""
FIELD = re.compile(r"\{(chunk|id)\}")
INTEGER = re.compile(r"-?\d[\d,_]*")
FENCE = re.compile(r"^```[A-Za-z]*\s*\n(.*?)\n?```\s*$", re.S)

Batched = Callable[..., list[str]]


def split_chunks(
    source: Any, size: Any = None, *, lines: Any = None, boundary: Any = None, overlap: Any = 0
) -> list[str]:
    """``source`` (``context``: a str or a list of documents) cut into chunks, as plain strs."""
    docs, single = chunking.documents(source)
    opts = chunking.options(size, lines, boundary, overlap, single)
    return chunking.texts_of(docs, chunking.spans_of(docs, opts))


def chunk_spans(source: Any, size: Any = None, *, lines: Any = None, boundary: Any = None, overlap: Any = 0) -> list:
    """Where each chunk of ``split_chunks`` (same arguments) comes from: id, doc, last_doc, start, end, line."""
    docs, single = chunking.documents(source, "chunk_spans")
    opts = chunking.options(size, lines, boundary, overlap, single)
    return chunking.describe(docs, chunking.spans_of(docs, opts))


# -- parsing answers ---------------------------------------------------------------------------------


def _unfenced(text: str) -> str:
    stripped = text.strip()
    match = FENCE.match(stripped)
    return match.group(1).strip() if match else stripped


def parse_json(text: str) -> Any:
    """The JSON in an answer: the whole of it, inside a ``` fence, or the first {...} or [...] in it."""
    body = _unfenced(text)
    try:
        return json.loads(body)
    except ValueError:
        pass
    starts = [i for i in (body.find("{"), body.find("[")) if i >= 0]
    if starts:
        value, _ = json.JSONDecoder().raw_decode(body, min(starts))
        return value
    raise ValueError(f"no JSON in the answer: {text[:80]!r}")


def parse_int(text: str) -> int:
    """The first integer in an answer (``1,234`` and ``1_234`` read as 1234)."""
    match = INTEGER.search(text)
    if match is None:
        raise ValueError(f"no integer in the answer: {text[:80]!r}")
    return int(match.group().replace(",", "").replace("_", ""))


def parse_lines(text: str) -> list[str]:
    """The answer's non-empty lines, stripped, without list bullets; an answer of only NONE is no lines."""
    out = []
    for line in _unfenced(text).splitlines():
        item = line.strip().removeprefix("- ").removeprefix("* ").strip()
        if item and item.upper() not in ("NONE", "N/A"):
            out.append(item)
    return out


PARSERS: dict[str, Callable[[str], Any]] = {
    "text": str.strip,
    "json": parse_json,
    "int": parse_int,
    "lines": parse_lines,
}


def _parser(parse: Any) -> Callable[[str], Any] | None:
    if parse is None:
        return None
    if issubclass(type(parse), str):
        name = exact_str(parse, "parse")
        if name not in PARSERS:
            raise ValueError(f"parse={name!r} is not known; use one of {', '.join(PARSERS)}, or a function")
        return PARSERS[name]
    if not callable(parse):
        raise TypeError("parse must be None, 'text', 'json', 'int', 'lines', or a function of the answer")
    return parse


def _describe_failure(exc: Exception) -> str:
    try:
        message = str.__str__(str(exc))
    except ExecInterrupted:
        raise
    except Exception:
        message = "(its message could not be read)"
    name = type(exc).__name__
    return f"{name}: {message}" if message else name


# -- llm_map -----------------------------------------------------------------------------------------


class Mapper:
    """``llm_map`` bound to the REPL's ``llm_query_batched`` and its output."""

    def __init__(
        self,
        batched: Batched,
        write: Callable[[str], Any],
        batch_error: type[Exception],
        budget_error: type[Exception],
    ):
        self.batched = batched
        self.write = write
        self.batch_error = batch_error
        self.budget_error = budget_error

    def __call__(
        self, prompt_template: Any, chunks: Any, parse: Any = None, *, retries: Any = 2, model: Any = None
    ) -> list[dict[str, Any]]:
        if issubclass(type(chunks), str):
            raise TypeError("llm_map takes a list of chunks, e.g. llm_map(template, split_chunks(context, 50_000))")
        texts, _ = chunking.documents(chunks, "llm_map")
        if len(texts) > chunking.MAX_CHUNKS:
            raise ValueError(f"llm_map takes at most {chunking.MAX_CHUNKS:,} chunks; split into larger chunks")
        tries = exact_int(retries, "retries")
        if not 0 <= tries <= MAX_RETRIES:
            raise ValueError(f"retries must be between 0 and {MAX_RETRIES}")
        parser = _parser(parse)
        prompts = [self._prompt(prompt_template, text, number) for number, text in enumerate(texts)]
        results: list[dict[str, Any]] = [
            {"id": n, "value": None, "answer": None, "error": "not sent"} for n in range(len(prompts))
        ]
        pending = list(range(len(prompts)))
        stopped = None
        for _ in range(tries + 1):
            if not pending or stopped:
                break
            stopped = self._round(prompts, pending, results, parser, model)
            pending = [n for n in pending if results[n]["error"] is not None]
        self._report(results, tries, stopped)
        return results

    def _prompt(self, template: Any, text: str, number: int) -> str:
        if issubclass(type(template), str):
            body = exact_str(template, "prompt_template")
            if "{chunk}" not in body:
                body += "\n\n{chunk}"
            values = {"chunk": text, "id": str(number)}
            return FIELD.sub(lambda m: values[m.group(1)], body)
        if callable(template):
            return exact_str(template(text), "the prompt the template function returned")
        raise TypeError("prompt_template must be a str with {chunk} (and optionally {id}) or a function of the chunk")

    def _round(
        self,
        prompts: list[str],
        pending: list[int],
        results: list[dict[str, Any]],
        parser: Callable[[str], Any] | None,
        model: Any,
    ) -> str | None:
        """Send the pending prompts once; returns why the map must stop (the budget is spent), if it must."""
        for first in range(0, len(pending), BATCH):
            batch = pending[first : first + BATCH]
            try:
                answers: list[Any] = self.batched([prompts[n] for n in batch], model=model)
                errors: dict[int, str] = {}
            except self.budget_error as exc:
                for n in pending[first:]:
                    results[n]["error"] = _describe_failure(exc)
                return _describe_failure(exc)
            except self.batch_error as exc:  # some prompts failed: keep the others' answers
                answers = exc.results  # type: ignore[attr-defined]
                errors = exc.errors  # type: ignore[attr-defined]
            for position, n in enumerate(batch):
                answer = answers[position]
                if answer is None:
                    results[n].update(value=None, answer=None, error=errors.get(position, "the sub-call failed"))
                    continue
                results[n]["answer"] = answer
                try:
                    value = answer if parser is None else parser(answer)
                except Exception as exc:
                    results[n].update(value=None, error=f"parse failed: {_describe_failure(exc)}")
                else:
                    results[n].update(value=value, error=None)
        return None

    def _report(self, results: list[dict[str, Any]], tries: int, stopped: str | None) -> None:
        failed = [r["id"] for r in results if r["error"] is not None]
        if not failed:
            return
        shown = ", ".join(map(str, failed[:10])) + (", ..." if len(failed) > 10 else "")
        first = next(r["error"] for r in results if r["error"] is not None)
        why = f"stopped: {stopped}" if stopped else f"after {tries} retr{'y' if tries == 1 else 'ies'}: {first}"
        self.write(
            f"llm_map: {len(failed)} of {len(results)} chunks have no result (ids {shown}), {why}. "
            "Their results carry an 'error'; the others are complete.\n"
        )


def helpers(mapper: Mapper) -> dict[str, Callable[..., Any]]:
    """The functions behind the REPL names, by name (the REPL wraps each in its opaque ``Helper``)."""
    return {"split_chunks": split_chunks, "chunk_spans": chunk_spans, "llm_map": mapper}
