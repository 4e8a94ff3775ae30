"""Turning document file descriptors into the ``context`` value, inside the worker.

Memory is the point here: the worker holds the one in-memory copy of the
corpus, and a naive ``read()`` then ``decode()`` costs the bytes plus the string
(2x the file at peak). Instead each file is read in chunks through an
incremental decoder and appended to one growing ``str``. CPython resizes a
string in place when nothing else refers to it (``s += t`` in a function, with
the left side the only reference), and glibc grows large blocks with
``mremap`` without copying, so the peak stays at the final string plus one
chunk.

The exception is width: CPython stores a string at 1, 2 or 4 bytes per
character, the widest its characters need. ASCII and Latin-1 text stays at 1
byte per character. The first character beyond Latin-1 (Cyrillic, CJK, most
symbols) makes the string 2 bytes wide (an emoji: 4) from then on, so at that
moment CPython copies what was read so far into the wider string; the peak is
then the old narrow string plus the new wide one. Text whose first chunk is
already wide pays nothing extra.

The in-place ``+=`` is an optimisation of CPython's specialising interpreter,
which applies it only once a loop has run a few times ("warm" code). The first
reads are therefore small (64 KB), so the copies made before the loop is warm
cost kilobytes rather than the first 64 MB of a large file.

A file may hold several documents (PDF pages, JSON records), each beginning
with its own header, separated by U+001E (the ASCII record separator, as in
RFC 7464 JSON text sequences). The server never writes U+001E inside a
document (JSON escapes control characters; extracted text has it removed), so
the split is exact.
"""

from __future__ import annotations

import codecs
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

READ_CHUNK = 8 * 1024 * 1024
WARM_CHUNK = 64 * 1024
WARM_READS = 16
PREVIEW_CHARS = 500
PART_SEPARATOR = "\x1e"


class DocumentDecodeError(Exception):
    """A document is not text in the declared encoding; ``reason`` says where and why, without the name."""

    def __init__(self, message: str, reason: str = ""):
        super().__init__(message)
        self.reason = reason or message


@dataclass(frozen=True)
class DocumentSpec:
    name: str
    header: str
    encoding: str
    errors: str
    parts: bool = False
    """The file holds several documents separated by U+001E, each with its own header."""
    skip_undecodable: bool = False
    """Leave the document out (and report it) if it does not decode, instead of failing the whole load."""

    @classmethod
    def from_message(cls, raw: dict[str, Any]) -> DocumentSpec:
        return cls(
            name=str(raw["name"]),
            header=str(raw.get("header", "")),
            encoding=str(raw.get("encoding", "utf-8")),
            errors=str(raw.get("errors", "strict")),
            parts=raw.get("parts") is True,
            skip_undecodable=raw.get("skip_undecodable") is True,
        )


def _decoder(spec: DocumentSpec) -> codecs.IncrementalDecoder:
    try:
        return codecs.getincrementaldecoder(spec.encoding)(spec.errors)
    except LookupError:
        raise DocumentDecodeError(f"unknown encoding {spec.encoding!r} for {spec.name}") from None


def _decoded_chunks(fd: int, spec: DocumentSpec) -> Iterator[str]:
    """Decoded text of ``fd`` in chunks of about ``READ_CHUNK`` bytes; closes ``fd``."""
    decoder = _decoder(spec)
    buf = bytearray(READ_CHUNK)
    view = memoryview(buf)
    offset = 0
    reads = 0
    try:
        while True:
            size = min(WARM_CHUNK, READ_CHUNK) if reads < WARM_READS else READ_CHUNK
            reads += 1
            n = os.readv(fd, [view[:size]])
            final = n == 0
            pending = len(decoder.getstate()[0])
            try:
                text = decoder.decode(view[:n], final)
            except UnicodeDecodeError as exc:
                position = offset - pending + exc.start
                reason = f"not valid {spec.encoding} (byte {position}: {exc.reason})"
                raise DocumentDecodeError(
                    f"{spec.name} is {reason}; load it again with errors='replace' or the right encoding", reason
                ) from None
            offset += n
            if text:
                yield text
            if final:
                return
    finally:
        view.release()
        os.close(fd)


def read_document(fd: int, spec: DocumentSpec) -> str:
    """Read and decode one document, then close its descriptor (see the module doc for memory)."""
    text = spec.header
    for chunk in _decoded_chunks(fd, spec):
        text += chunk  # in place: `text` is the only reference
        del chunk
    return text


def read_parts(fd: int, spec: DocumentSpec) -> list[str]:
    """Read a file of several documents separated by U+001E; empty parts are dropped."""
    documents: list[str] = []
    current = ""
    for chunk in _decoded_chunks(fd, spec):
        pieces = chunk.split(PART_SEPARATOR)
        del chunk
        current += pieces[0]
        for piece in pieces[1:]:
            if current:
                documents.append(current)
            current = piece
    if current:
        documents.append(current)
    return documents


def line_count(text: str) -> int:
    if not text:
        return 0
    return text.count("\n") + (0 if text.endswith("\n") else 1)


def describe(context: str | list[str], skipped: list[list[Any]] | None = None) -> dict[str, Any]:
    """Sizes and a preview of the loaded corpus, computed where the corpus lives, and what was left out."""
    docs = [context] if isinstance(context, str) else context
    lengths = [len(d) for d in docs]
    first = docs[0] if docs else ""
    return {
        "skipped": skipped or [],
        "type": "str" if isinstance(context, str) else "list[str]",
        "documents": len(docs),
        "chars": sum(lengths),
        "lines": sum(line_count(d) for d in docs),
        "document_chars": lengths,
        "preview": first[:PREVIEW_CHARS],
    }
