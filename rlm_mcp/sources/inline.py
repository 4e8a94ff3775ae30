"""Inline content: written once per distinct text and owner under ``corpora/``, named by its SHA-256.

A corpus id is the SHA-256 of the text, so anyone who knows (or guesses) a text
knows its id: ids alone must not open anything. Each principal's corpora live in
a folder of its own (``corpora/owners/<hash of the principal>/``; the one local
principal of stdio keeps the original ``corpora/`` layout), and an id is looked up
only in the asking principal's folder. Another principal's corpus is exactly as
missing as one never loaded."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from pathlib import Path

from rlm_mcp.errors import InvalidInput, NotFound
from rlm_mcp.files import write_atomically
from rlm_mcp.principals import LOCAL, directory_name
from rlm_mcp.sources.paths import SNIFF_BYTES, is_binary
from rlm_mcp.sources.resolved import ResolvedSource
from rlm_mcp.store import KeyNotFound, Store
from rlm_mcp.store.failures import storing
from sandbox import Document

_CORPUS_ID = re.compile(r"^[0-9a-f]{64}$")
OWNERS = "owners"


def corpus_key(corpus_id: str, owner: str) -> str:
    """Where an owner's corpus lives, relative to the corpora folder (and in the shared store)."""
    if owner == LOCAL:
        return f"{corpus_id}.txt"
    return f"{OWNERS}/{directory_name(owner)}/{corpus_id}.txt"


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

    @staticmethod
    def _key(corpus_id: str, owner: str) -> str:
        return corpus_key(corpus_id, owner)

    def put(self, content: str, name: str, owner: str = LOCAL) -> ResolvedSource:
        data = content.encode("utf-8", "replace")  # lone surrogates cannot be stored as UTF-8
        if is_binary(data[:SNIFF_BYTES]):
            raise InvalidInput("content contains NUL bytes; only text can be loaded")
        digest = hashlib.sha256(data).hexdigest()
        key = self._key(digest, owner)
        path = self.directory / key
        if not path.exists():
            with storing(f"storing the inline content ({len(data):,} bytes)", self.directory):
                write_atomically(path, lambda f: f.write(data))
        else:
            _touch(path)
        self._share(key, path)
        return ResolvedSource([Document(name=name, path=path)], "str", len(data))

    def _share(self, key: str, path: Path) -> None:
        if self.store is None or self.store.local_path(key) is not None or self.store.exists(key):
            return
        self.store.upload(key, path)

    def corpus_id_of(self, path: Path) -> str | None:
        """The id of a document path this store wrote, or None for any other file."""
        if path.suffix != ".txt" or not _CORPUS_ID.match(path.stem):
            return None
        if path.parent == self.directory or path.parent.parent == self.directory / OWNERS:
            return path.stem
        return None

    def local_file(self, corpus_id: str, owner: str = LOCAL) -> Path:
        """The local file of ``owner``'s corpus, fetched from the shared store if this replica lacks it."""
        if not _CORPUS_ID.match(corpus_id):
            raise InvalidInput(f"{corpus_id!r} is not a corpus id: it is the 64 hex digits load_context returned")
        key = self._key(corpus_id, owner)
        path = self.directory / key
        if path.exists():
            _touch(path)
            return path
        if self.store is not None and self.store.local_path(key) is None:
            try:
                self.store.download(key, path)
                return path
            except KeyNotFound:
                pass
        raise NotFound(
            f"no corpus {corpus_id!r} is stored here; load the text with content= (the result gives its corpus_id)"
        )

    def attach(self, corpus_id: str, name: str, owner: str = LOCAL) -> ResolvedSource:
        """A stored corpus of ``owner``'s as a source, by id: no content travels."""
        path = self.local_file(corpus_id, owner)
        return ResolvedSource([Document(name=name, path=path)], "str", path.stat().st_size)
