"""Local sources: a file, a directory (walked, with include/exclude globs) or a glob pattern."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from pathlib import Path

from rlm_mcp.errors import Binary, InvalidInput, NotFound, PathRefused
from rlm_mcp.sources.derived import DerivedStore
from rlm_mcp.sources.files import file_document
from rlm_mcp.sources.paths import GLOB_CHARS, check_path, display_name, glob, relative_note, walk
from rlm_mcp.sources.resolved import LoadOptions, LoadTally, ResolvedSource
from sandbox import Document

MAX_FILES = 100_000


def document_bytes(documents: list[Document]) -> int:
    return sum(d.path.stat().st_size for d in documents)


def resolve_local(
    raw: str,
    roots: list[Path],
    options: LoadOptions,
    derived: DerivedStore,
    private: Sequence[Path] = (),
    tally: LoadTally | None = None,
) -> ResolvedSource:
    """Turn a file, directory or glob into documents, checking every file it names; ``tally`` counts as it goes.

    A file found by walking or globbing is named, in what is skipped, by its path relative to its root.
    """
    tally = tally if tally is not None else LoadTally()
    candidates: Iterator[Path]
    if any(ch in GLOB_CHARS for ch in raw):
        matches = glob(raw, roots, private)
        first = next(matches, None)
        if first is None:
            raise NotFound(f"no files match {raw!r}{relative_note(raw)}")
        candidates = itertools.chain([first], matches)
    else:
        real = check_path(raw, roots, private)
        if real.is_file():
            doc = file_document(real, display_name(real, roots), options, derived, with_header=False)
            return ResolvedSource([doc], "list" if doc.parts else "str", document_bytes([doc]))
        candidates = walk(real, options.include, options.exclude)
    documents: list[Document] = []
    skipped: list[str] = []
    total = 0
    for path in candidates:
        if len(documents) >= MAX_FILES:
            skipped.append(f"... more files after the first {MAX_FILES:,} were left out")
            break
        try:
            real = check_path(str(path), roots, private, shown=display_name(path, roots))
        except (PathRefused, NotFound) as exc:
            skipped.append(str(exc))
            continue
        if not real.is_file():
            continue
        name = display_name(real, roots)
        try:
            size = real.stat().st_size
            tally.add(size)
            if size == 0:
                skipped.append(f"{name}: empty")
                continue
            doc = file_document(real, name, options, derived, with_header=True)
            size = doc.path.stat().st_size
        except Binary:
            skipped.append(f"{name}: binary")
            continue
        except InvalidInput as exc:  # an unreadable PDF, bad JSON, a gzip bomb: that file only
            skipped.append(str(exc))
            continue
        except OSError as exc:
            skipped.append(f"{name}: {exc.strerror}")
            continue
        total += size
        if total > options.max_bytes:
            raise InvalidInput(
                f"{raw!r} holds more than the corpus limit of {options.max_bytes / 1e6:,.0f} MB (RLM_MAX_CORPUS_MB); "
                "narrow it with include/exclude globs"
            )
        documents.append(doc)
    if not documents:
        raise NotFound(f"no text files to load under {raw!r}" + (f" (skipped: {len(skipped)})" if skipped else ""))
    return ResolvedSource(documents, "list", total, skipped)
