"""What one file becomes: plain text read in place, or a derived file of pages or records.

The kind goes by the name (and, for PDFs, the first bytes): ``.gz`` is
decompressed first and then read by its inner name, ``.pdf`` becomes pages,
``.json``/``.jsonl``/``.ndjson`` become records (with ``format="auto"``), and
anything else is text, refused if it looks binary. Plain local text is never
copied: the worker reads the file itself through a descriptor.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

from rlm_mcp.errors import Binary
from rlm_mcp.sources import compressed, pdf, records
from rlm_mcp.sources.derived import DerivedStore, LimitedWriter, PartsWriter, document_header, local_identity
from rlm_mcp.sources.paths import SNIFF_BYTES, is_binary
from rlm_mcp.sources.resolved import LoadOptions
from sandbox import Document


def file_document(
    path: Path,
    name: str,
    options: LoadOptions,
    derived: DerivedStore,
    *,
    identity: list[object] | None = None,
    with_header: bool,
) -> Document:
    """One file as one :class:`Document` (which may hold several parts: pages, records).

    ``identity`` names the source for the derived-file cache (default: the
    local file's path, inode, size and mtime).
    """
    with path.open("rb") as f:
        head = f.read(SNIFF_BYTES)
    identity = identity if identity is not None else local_identity(path)
    if compressed.is_compressed(name) or head[:2] == b"\x1f\x8b":

        def gunzip(out: BinaryIO) -> None:
            compressed.gunzip(path, LimitedWriter(out, options.max_bytes, name), name)

        plain = derived.build("gunzip", identity, gunzip)
        inner = compressed.inner_name(name)
        return _plain_or_converted(plain, inner, name, options, derived, [*identity, "gunzip"], with_header)
    return _plain_or_converted(path, name, name, options, derived, identity, with_header, head=head)


def _plain_or_converted(
    path: Path,
    kind_name: str,
    name: str,
    options: LoadOptions,
    derived: DerivedStore,
    identity: list[object],
    with_header: bool,
    head: bytes | None = None,
) -> Document:
    if head is None:
        with path.open("rb") as f:
            head = f.read(SNIFF_BYTES)
    if pdf.is_pdf(kind_name, head):

        def pages(out: BinaryIO) -> None:
            pdf.extract_pages(path, name, PartsWriter(LimitedWriter(out, options.max_bytes, name)))

        return Document(name=name, path=derived.build("pdf", identity, pages), parts=True)
    record_kind = records.kind_of(kind_name) if options.format == "auto" else None
    if record_kind is not None:
        write = records.write_jsonl if record_kind == "jsonl" else records.write_json
        key = [*identity, options.encoding, options.errors]

        def convert(out: BinaryIO) -> None:
            writer = PartsWriter(LimitedWriter(out, options.max_bytes, name))
            write(path, name, writer, encoding=options.encoding, errors=options.errors)

        return Document(name=name, path=derived.build(record_kind, key, convert), parts=True)
    if is_binary(head):
        raise Binary(f"{name} looks like a binary file (it contains NUL bytes); only text can be loaded")
    return Document(
        name=name,
        path=path,
        header=document_header(name) if with_header else "",
        encoding=options.encoding,
        errors=options.errors,
        # One file of many: one that does not decode is left out and listed, as binary ones are; a file
        # loaded on its own still fails with the reason.
        skip_undecodable=with_header,
    )
