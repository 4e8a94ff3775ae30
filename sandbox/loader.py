"""Turning document file descriptors into the ``context`` value, inside the worker."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

READ_CHUNK = 8 * 1024 * 1024
PREVIEW_CHARS = 500


class DocumentDecodeError(Exception):
    """A document is not text in the declared encoding."""


@dataclass(frozen=True)
class DocumentSpec:
    name: str
    header: str
    encoding: str
    errors: str

    @classmethod
    def from_message(cls, raw: dict[str, Any]) -> DocumentSpec:
        return cls(
            name=str(raw["name"]),
            header=str(raw.get("header", "")),
            encoding=str(raw.get("encoding", "utf-8")),
            errors=str(raw.get("errors", "strict")),
        )


def read_document(fd: int, spec: DocumentSpec) -> str:
    """Read and decode one document, then close its descriptor.

    The bytes are read straight into one buffer sized from ``fstat`` and decoded
    once, so a document costs its bytes plus its string while loading and only
    the string afterwards.
    """
    try:
        size = os.fstat(fd).st_size
        buf = bytearray(size)
        view = memoryview(buf)
        got = 0
        while got < size:
            n = os.readv(fd, [view[got : got + READ_CHUNK]])
            if n == 0:
                break
            got += n
        del view
        if got < size:
            del buf[got:]
        tail = _read_rest(fd)
        if tail:
            buf += tail
    finally:
        os.close(fd)
    try:
        text = buf.decode(spec.encoding, spec.errors)
    except UnicodeDecodeError as exc:
        raise DocumentDecodeError(
            f"{spec.name} is not valid {spec.encoding} (byte {exc.start}: {exc.reason}); "
            f"load it again with errors='replace' or the right encoding"
        ) from None
    except LookupError:
        raise DocumentDecodeError(f"unknown encoding {spec.encoding!r} for {spec.name}") from None
    return spec.header + text if spec.header else text


def _read_rest(fd: int) -> bytes:
    """Whatever a growing file gained after ``fstat``; normally nothing."""
    chunks = []
    while chunk := os.read(fd, READ_CHUNK):
        chunks.append(chunk)
    return b"".join(chunks)


def line_count(text: str) -> int:
    if not text:
        return 0
    return text.count("\n") + (0 if text.endswith("\n") else 1)


def describe(context: str | list[str]) -> dict[str, Any]:
    """Sizes and a preview of the loaded corpus, computed where the corpus lives."""
    docs = [context] if isinstance(context, str) else context
    lengths = [len(d) for d in docs]
    first = docs[0] if docs else ""
    return {
        "type": "str" if isinstance(context, str) else "list[str]",
        "documents": len(docs),
        "chars": sum(lengths),
        "lines": sum(line_count(d) for d in docs),
        "document_chars": lengths,
        "preview": first[:PREVIEW_CHARS],
    }
