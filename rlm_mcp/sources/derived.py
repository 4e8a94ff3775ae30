"""Files rlm-mcp makes from a source: decompressed, extracted from a PDF, records, S3 downloads.

The worker reads every document from a file, so a source that is not plain
text on the local disk is first streamed into one, in chunks: the server never
holds the whole corpus. Each such file is named by a hash of its source's
identity (path, inode, size and mtime for a local file; bucket, key and ETag for
S3) and of the options that shaped it, so a second session loading the same
source reuses the file instead of converting or downloading it again, and a
changed source gets a new one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO

from rlm_mcp.errors import TooLarge
from rlm_mcp.files import write_atomically
from rlm_mcp.store.failures import storing

PART_SEPARATOR = "\x1e"
"""Between documents in one file (see sandbox.worker.loader); never written inside a document."""
FORMAT_VERSION = 1


def document_header(name: str) -> str:
    return f"==> {name} <==\n"


class LimitedWriter:
    """A binary writer that refuses to grow past ``limit`` bytes (a gzip bomb stops here)."""

    def __init__(self, out: BinaryIO, limit: int, name: str):
        self.out = out
        self.limit = limit
        self.name = name
        self.written = 0

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self.written += len(data)
        if self.written > self.limit:
            raise TooLarge(
                f"{self.name} expands to more than the corpus limit of {self.limit / 1e6:,.0f} MB (RLM_MAX_CORPUS_MB)"
            )
        return self.out.write(data)


class PartsWriter:
    """Writes several documents into one UTF-8 file, each with its header, separated by U+001E."""

    def __init__(self, out: LimitedWriter):
        self.out = out
        self.count = 0

    def add(self, name: str, text: str) -> None:
        body = document_header(name) + text.replace(PART_SEPARATOR, " ") + PART_SEPARATOR
        self.out.write(body.encode("utf-8", "replace"))
        self.count += 1


class DerivedStore:
    def __init__(self, directory: Path):
        self.directory = directory
        self.hits = 0
        self.builds = 0

    def path_for(self, kind: str, identity: Sequence[object]) -> Path:
        key = json.dumps([FORMAT_VERSION, kind, *identity], default=str, separators=(",", ":"))
        return self.directory / f"{kind}-{hashlib.sha256(key.encode()).hexdigest()[:40]}.txt"

    def build(self, kind: str, identity: Sequence[object], make: Callable[[BinaryIO], None]) -> Path:
        """The file for this source, made by ``make(out)`` unless an earlier load made it already."""
        path = self.path_for(kind, identity)
        if path.exists():
            self.hits += 1
            with contextlib.suppress(OSError):
                os.utime(path)  # recently used: a future clean-up can go by mtime
            return path
        with storing(f"writing the converted copy of the source ({path.name})", self.directory, writing_only=True):
            write_atomically(path, make)
        self.builds += 1
        return path


def local_identity(path: Path) -> list[object]:
    st = path.stat()
    return [str(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns]
