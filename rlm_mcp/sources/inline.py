"""Inline content: written once per distinct text under ``corpora/``, named by its hash."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from rlm_mcp.errors import InvalidInput
from rlm_mcp.sources.paths import SNIFF_BYTES, is_binary
from rlm_mcp.sources.resolved import ResolvedSource
from sandbox import Document


class InlineStore:
    def __init__(self, directory: Path):
        self.directory = directory

    def put(self, content: str, name: str) -> ResolvedSource:
        data = content.encode("utf-8", "replace")  # lone surrogates cannot be stored as UTF-8
        if is_binary(data[:SNIFF_BYTES]):
            raise InvalidInput("content contains NUL bytes; only text can be loaded")
        digest = hashlib.sha256(data).hexdigest()
        path = self.directory / f"{digest}.txt"
        if not path.exists():
            self.directory.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".incoming-")
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        return ResolvedSource([Document(name=name, path=path)], "str", len(data))
