"""``split_chunks`` and ``chunk_spans``: the corpus cut into pieces a sub-model can read, the way real runs cut it.

Every run that fans out writes the same few lines first: cut ``context`` into
pieces of about N characters without splitting a line, or pack whole documents
into pieces, or cut before every ``Chapter``/``==> path <==`` line, sometimes
with a little overlap so an item on a seam is seen whole. These helpers do
that once, correctly, in the worker.

Chunks are plain ``str`` (a chunk's id is its index in the list), so they go
anywhere a string goes, ``llm_query_batched`` included. ``chunk_spans`` takes
the same arguments and returns, in parallel, where each chunk came from (its
document, character offsets and first line), for answers that cite their
sources. Nothing here calls a method of a value user code handed it: strings
are copied to exact ``str`` first (see :mod:`sandbox.worker.guards`).
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import Any

from sandbox.worker.guards import exact_int, exact_str

MAX_CHUNKS = 100_000
"""More chunks than this is a mistake (a size of 1, say), not a plan: refused with what to do instead."""


@dataclass(frozen=True)
class Span:
    """Where a chunk comes from: documents ``doc``..``last_doc``, from ``start`` in the first to ``end`` in the last."""

    doc: int
    last_doc: int
    start: int
    end: int


@dataclass(frozen=True)
class Options:
    size: int | None
    lines: int | None
    boundary: re.Pattern[str] | None
    overlap: int


def documents(source: Any, what: str = "split_chunks") -> tuple[list[str], bool]:
    """``source`` as a list of exact strs, and whether it was one str (``context`` as a str) or a list of them."""
    kind = type(source)
    if issubclass(kind, str):
        return [exact_str(source, what)], True
    if issubclass(kind, list):
        items = list.copy(source)
    elif issubclass(kind, tuple):
        items = list(tuple.__iter__(source))
    else:
        raise TypeError(f"{what} takes a str or a list of str (such as context), not {kind.__name__}")
    for i, item in enumerate(items):
        if not issubclass(type(item), str):
            raise TypeError(f"{what}: item {i} is a {type(item).__name__}, not a str")
    return [str.__str__(item) for item in items], False


def options(size: Any, lines: Any, boundary: Any, overlap: Any, single: bool) -> Options:
    """The keyword options, checked, with what to write instead when they do not make sense."""
    size = None if size is None else exact_int(size, "size")
    lines = None if lines is None else exact_int(lines, "lines")
    overlap = exact_int(overlap, "overlap")
    if size is not None and lines is not None:
        raise ValueError("give size= (characters per chunk) or lines= (lines per chunk), not both")
    if (size is not None and size < 1) or (lines is not None and lines < 1):
        raise ValueError("size and lines must be at least 1")
    unit = lines if lines is not None else size
    if overlap < 0 or (unit is not None and overlap >= unit):
        raise ValueError("overlap must be at least 0 and smaller than size (or lines)")
    if overlap and unit is None and boundary is None:
        raise ValueError("overlap needs size= or lines=")
    pattern = None
    if boundary is not None:
        try:
            pattern = re.compile(exact_str(boundary, "boundary"), re.MULTILINE)
        except re.error as exc:
            raise ValueError(f"boundary is not a valid regular expression: {exc}") from None
    if single and size is None and lines is None and pattern is None:
        raise ValueError(
            "say how to cut a str: size=50_000 (characters, cut at line ends), lines=500, or boundary=r'^Chapter '"
        )
    return Options(size, lines, pattern, overlap)


def spans_of(docs: list[str], opts: Options) -> list[Span]:
    """Where each chunk starts and ends; the chunk texts are cut from these."""
    out: list[Span] = []
    if opts.lines is None and opts.boundary is None and len(docs) > 1:
        _pack_documents(docs, opts, out)
    else:
        for index, doc in enumerate(docs):
            for start, end in _within(doc, opts):
                _add(out, Span(index, index, start, end))
    return out


def texts_of(docs: list[str], spans: list[Span]) -> list[str]:
    chunks = []
    for span in spans:
        if span.doc == span.last_doc:
            chunks.append(docs[span.doc][span.start : span.end])
        else:
            middle = docs[span.doc + 1 : span.last_doc]
            chunks.append("".join([docs[span.doc][span.start :], *middle, docs[span.last_doc][: span.end]]))
    return chunks


def describe(docs: list[str], spans: list[Span]) -> list[dict[str, int]]:
    """``chunk_spans``' records: id, documents, offsets, and the line (from 1) where each chunk starts."""
    records = []
    counted: dict[int, tuple[int, int]] = {}  # doc -> (offset, lines before it), so counting stays linear
    for number, span in enumerate(spans):
        offset, line = counted.get(span.doc, (0, 1))
        if span.start < offset:
            offset, line = 0, 1
        line += docs[span.doc].count("\n", offset, span.start)
        counted[span.doc] = (span.start, line)
        records.append(
            {
                "id": number,
                "doc": span.doc,
                "last_doc": span.last_doc,
                "start": span.start,
                "end": span.end,
                "line": line,
            }
        )
    return records


def _add(out: list[Span], span: Span) -> None:
    if len(out) >= MAX_CHUNKS:
        raise ValueError(f"this would make more than {MAX_CHUNKS:,} chunks; choose a larger size (or fewer lines)")
    out.append(span)


def _pack_documents(docs: list[str], opts: Options, out: list[Span]) -> None:
    """Whole documents, one per chunk, or packed together up to ``size``; a longer document is cut on its own."""
    first = used = 0
    for index, doc in enumerate(docs):
        if opts.size is not None and len(doc) > opts.size:
            if index > first:
                _add(out, Span(first, index - 1, 0, len(docs[index - 1])))
            for start, end in _within(doc, opts):
                _add(out, Span(index, index, start, end))
            first, used = index + 1, 0
            continue
        if index > first and (opts.size is None or used + len(doc) > opts.size):
            _add(out, Span(first, index - 1, 0, len(docs[index - 1])))
            first, used = index, 0
        used += len(doc)
    if first < len(docs):
        _add(out, Span(first, len(docs) - 1, 0, len(docs[-1])))


def _within(doc: str, opts: Options) -> list[tuple[int, int]]:
    """(start, end) of each chunk of one document, overlap included."""
    if opts.lines is not None:
        return _by_lines(doc, opts.lines, opts.overlap)
    if opts.boundary is not None:
        pieces = _at_boundaries(doc, opts.boundary)
        if opts.size is not None:
            pieces = _packed(pieces, doc, opts.size)
    else:
        pieces = _by_size(doc, 0, len(doc), opts.size or max(1, len(doc)))
    return _overlapped(doc, pieces, opts.overlap)


def _by_size(doc: str, start: int, stop: int, size: int) -> list[tuple[int, int]]:
    """Pieces of at most ``size`` characters from ``start`` to ``stop``, cut after a newline where there is one."""
    out = []
    while start < stop:
        end = min(start + size, stop)
        if end < stop:
            cut = doc.rfind("\n", start, end)
            if cut > start:
                end = cut + 1
        out.append((start, end))
        if len(out) > MAX_CHUNKS:
            raise ValueError(f"this would make more than {MAX_CHUNKS:,} chunks; choose a larger size")
        start = end
    return out


def _by_lines(doc: str, count: int, overlap: int) -> list[tuple[int, int]]:
    starts = [0] + [m.end() for m in re.finditer("\n", doc) if m.end() < len(doc)]
    step = count - overlap
    if len(starts) // step > MAX_CHUNKS:
        raise ValueError(f"this would make more than {MAX_CHUNKS:,} chunks; choose more lines per chunk")
    out = []
    for first in range(0, len(starts), step):
        last = first + count
        out.append((starts[first], starts[last] if last < len(starts) else len(doc)))
        if last >= len(starts):
            break
    return [(s, e) for s, e in out if e > s]


def _at_boundaries(doc: str, pattern: re.Pattern[str]) -> list[tuple[int, int]]:
    cuts = [0]
    for match in pattern.finditer(doc):
        if match.start() > cuts[-1]:
            cuts.append(match.start())
            if len(cuts) > MAX_CHUNKS:
                raise ValueError(f"the boundary matches more than {MAX_CHUNKS:,} times; pass size= to pack pieces")
    cuts.append(len(doc))
    return [(a, b) for a, b in itertools.pairwise(cuts) if b > a]


def _packed(pieces: list[tuple[int, int]], doc: str, size: int) -> list[tuple[int, int]]:
    """Consecutive pieces joined up to ``size``; a piece longer than ``size`` is cut by size on its own."""
    out: list[tuple[int, int]] = []
    for start, end in pieces:
        if end - start > size:
            out.extend(_by_size(doc, start, end, size))
        elif out and out[-1][1] == start and end - out[-1][0] <= size and not _is_long(out[-1], size):
            out[-1] = (out[-1][0], end)
        else:
            out.append((start, end))
    return out


def _is_long(piece: tuple[int, int], size: int) -> bool:
    return piece[1] - piece[0] >= size


def _overlapped(doc: str, pieces: list[tuple[int, int]], overlap: int) -> list[tuple[int, int]]:
    """Each chunk after the first starts up to ``overlap`` characters earlier, at a line start when there is one."""
    if not overlap:
        return pieces
    out = pieces[:1]
    for start, end in pieces[1:]:
        earlier = max(0, start - overlap)
        line = doc.find("\n", earlier, start)
        out.append((line + 1 if line >= 0 and line + 1 < start else earlier, end))
    return out
