"""Inline content: written once per distinct text under ``corpora/``, named by its SHA-256."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from pathlib import Path

from rlm_mcp.errors import InvalidInput, NotFound
from rlm_mcp.files import write_atomically
from rlm_mcp.sources.paths import SNIFF_BYTES, is_binary
from rlm_mcp.sources.resolved import ResolvedSource
from rlm_mcp.store import KeyNotFound, Store
from rlm_mcp.store.failures import storing
from sandbox import Document

_CORPUS_ID = re.compile(r"^[0-9a-f]{64}$")


def _touch(path: Path) -> None:
    """Used again: retention goes by the time of last use."""
    with contextlib.suppress(OSError):
        os.utime(path)


class InlineStore:
    """Inline content, written once per distinct text and named by its SHA-256 (the corpus id).

    The sandbox reads a local file, so the text always lands in ``directory``.
    With a shared store (``RLM_STORE=s3://...``) it is also uploaded there, so a
    session on any replica can load it again by its id without the client
    sending it twice; a replica that lacks the file fetches it on first use.
    """

    def __init__(self, directory: Path, store: Store | None = None):
        self.directory = directory
        self.store = store

    def put(self, content: str, name: str) -> ResolvedSource:
        data = content.encode("utf-8", "replace")  # lone surrogates cannot be stored as UTF-8
        if is_binary(data[:SNIFF_BYTES]):
            raise InvalidInput("content contains NUL bytes; only text can be loaded")
        digest = hashlib.sha256(data).hexdigest()
        path = self.directory / f"{digest}.txt"
        if not path.exists():
            with storing(f"storing the inline content ({len(data):,} bytes)", self.directory):
                write_atomically(path, lambda f: f.write(data))
        else:
            _touch(path)
        self._share(digest, path)
        return ResolvedSource([Document(name=name, path=path)], "str", len(data))

    def _share(self, corpus_id: str, path: Path) -> None:
        key = f"{corpus_id}.txt"
        if self.store is None or self.store.local_path(key) is not None or self.store.exists(key):
            return
        self.store.upload(key, path)

    def corpus_id_of(self, path: Path) -> str | None:
        """The id of a document path this store wrote, or None for any other file."""
        if path.parent == self.directory and path.suffix == ".txt" and _CORPUS_ID.match(path.stem):
            return path.stem
        return None

    def local_file(self, corpus_id: str) -> Path:
        """The local file of a stored corpus, fetched from the shared store if this replica lacks it."""
        if not _CORPUS_ID.match(corpus_id):
            raise InvalidInput(f"{corpus_id!r} is not a corpus id: it is the 64 hex digits load_context returned")
        path = self.directory / f"{corpus_id}.txt"
        if path.exists():
            _touch(path)
            return path
        if self.store is not None and self.store.local_path(f"{corpus_id}.txt") is None:
            try:
                self.store.download(f"{corpus_id}.txt", path)
                return path
            except KeyNotFound:
                pass
        raise NotFound(
            f"no corpus {corpus_id!r} is stored here; load the text with content= (the result gives its corpus_id)"
        )

    def attach(self, corpus_id: str, name: str) -> ResolvedSource:
        """A stored corpus as a source, by id: no content travels."""
        path = self.local_file(corpus_id)
        return ResolvedSource([Document(name=name, path=path)], "str", path.stat().st_size)
