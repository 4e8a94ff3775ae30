"""From what a client asks to load to the documents a sandbox reads.

Sources: inline ``content``; a local ``path`` inside the allowed roots (a file,
a directory walked with include/exclude globs, or a glob); or an ``s3://`` URL
(one object, or every object under a prefix ending in ``/``). Each file is
plain text, gzip (decompressed), PDF (one document per page) or JSON/JSONL
(one document per record); see :mod:`rlm_mcp.sources.files`.

Shape of ``context``: a single text file, S3 object or inline text is a
``str``; anything else (a directory, a glob, a prefix, a PDF's pages, a JSON
file's records, or several loads into one session) is a ``list[str]`` whose
items each start with a ``==> name <==`` line naming their source.

Local text files are never copied: the worker reads them through a descriptor
the server opens. Everything else is streamed once into a derived file (see
:mod:`rlm_mcp.sources.derived`) that later loads of the same source reuse.
"""

from __future__ import annotations

from pathlib import Path

from rlm_mcp.sources.derived import DerivedStore, document_header
from rlm_mcp.sources.inline import InlineStore
from rlm_mcp.sources.local import resolve_local
from rlm_mcp.sources.resolved import LoadOptions, LoadTally, ResolvedSource
from rlm_mcp.sources.s3 import S3Reader
from rlm_mcp.store import Store

__all__ = ["InlineStore", "LoadOptions", "LoadTally", "ResolvedSource", "Sources", "document_header"]


class Sources:
    """Every kind of source, with the stores they share."""

    def __init__(
        self,
        *,
        roots: list[Path],
        corpora_dir: Path,
        aws_region: str | None,
        shared: Store | None = None,
        allowed_s3: list[str] | None = None,
        private: list[Path] | None = None,
    ):
        self.roots = roots
        self.private = private or []
        """Never loaded, even inside a root: the data directory holds every principal's corpora and trajectories."""
        self.inline = InlineStore(corpora_dir, shared)
        self.derived = DerivedStore(corpora_dir / "derived")
        self.s3 = S3Reader(self.derived, aws_region, allowed_s3)

    def resolve(self, path: str, options: LoadOptions, tally: LoadTally | None = None) -> ResolvedSource:
        """Blocking (it may read, convert or download): call it in a worker thread; ``tally`` counts as it goes."""
        tally = tally if tally is not None else LoadTally()
        if path.startswith("s3://"):
            return self.s3.resolve(path, options, tally)
        return resolve_local(path, self.roots, options, self.derived, self.private, tally)
