"""From what a client asks to load to the documents a sandbox reads.

Sources are inline ``content`` (streamed to a content-addressed file under the
data directory) or a ``path`` inside the allowed roots: a file, a directory, or
a glob. Files are not copied: the worker reads them through a descriptor the
server opens without following symlinks, after checking that the real path is
inside a root and is a regular file.

Shape of ``context``: a single file or inline text is a ``str``; a directory,
a glob, or several loads into one session make a ``list[str]`` whose items each
start with a ``==> path <==`` line naming their source.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import re
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from rlm_mcp.errors import InvalidInput, NotFound, PathRefused
from rlm_mcp.store import KeyNotFound, Store
from sandbox import Document

GLOB_CHARS = frozenset("*?[")
SKIPPED_DIRS = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        "__pycache__",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".tox",
        ".venv",
        "node_modules",
    }
)
PSEUDO_FILESYSTEMS = (Path("/proc"), Path("/sys"), Path("/dev"))
SNIFF_BYTES = 8192
MAX_FILES = 100_000
_CORPUS_ID = re.compile(r"^[0-9a-f]{64}$")


def document_header(name: str) -> str:
    return f"==> {name} <==\n"


@dataclass
class ResolvedSource:
    documents: list[Document]
    shape: Literal["str", "list"]
    total_bytes: int
    skipped: list[str] = field(default_factory=list)


def _inside(path: Path, roots: list[Path]) -> Path | None:
    for root in roots:
        if path == root or path.is_relative_to(root):
            return root
    return None


def _display_name(path: Path, roots: list[Path]) -> str:
    root = _inside(path, roots)
    if root is None:
        return str(path)
    relative = path.relative_to(root)
    return str(relative) if str(relative) != "." else path.name


def check_path(raw: str, roots: list[Path]) -> Path:
    """The real path of ``raw`` if it is a regular file or directory inside a root; else a clear error."""
    if not raw or "\x00" in raw:
        raise InvalidInput("path is empty or contains a NUL byte")
    candidate = Path(os.path.expanduser(raw))
    if ".." in candidate.parts:
        raise PathRefused(f"{raw!r}: paths may not contain '..'; give a path inside the allowed roots")
    if not candidate.is_absolute():
        candidate = roots[0] / candidate
    real = Path(os.path.realpath(candidate))
    for pseudo in PSEUDO_FILESYSTEMS:
        if real == pseudo or real.is_relative_to(pseudo):
            raise PathRefused(f"{raw!r} is on {pseudo}, which is never loaded")
    if _inside(real, roots) is None:
        via = f" (it resolves to {real})" if real != candidate else ""
        allowed = ", ".join(str(r) for r in roots)
        raise PathRefused(
            f"{raw!r} is outside the allowed roots{via}. Allowed: {allowed}. Set RLM_ALLOWED_ROOTS to change them"
        )
    try:
        mode = os.stat(real).st_mode
    except FileNotFoundError:
        raise NotFound(f"{raw!r} does not exist") from None
    except OSError as exc:
        raise PathRefused(f"{raw!r} cannot be read: {exc.strerror}") from None
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        kind = {
            stat.S_IFIFO: "a FIFO",
            stat.S_IFSOCK: "a socket",
            stat.S_IFCHR: "a character device",
            stat.S_IFBLK: "a block device",
        }.get(stat.S_IFMT(mode), "not a regular file")
        raise PathRefused(f"{raw!r} is {kind}; only regular files and directories can be loaded")
    return real


def looks_binary(path: Path) -> bool:
    with path.open("rb") as f:
        return b"\x00" in f.read(SNIFF_BYTES)


def _walk(directory: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(directory, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIPPED_DIRS)
        for name in sorted(filenames):
            yield Path(dirpath) / name


def _glob(pattern: str, roots: list[Path]) -> Iterator[Path]:
    if ".." in Path(pattern).parts:
        raise PathRefused(f"{pattern!r}: paths may not contain '..'")
    base = Path(os.path.expanduser(pattern))
    if not base.is_absolute():
        base = roots[0] / base
    anchor = Path(base.anchor)
    # The walk starts at the pattern's fixed part, which must be inside a root: '/**/*.txt'
    # would otherwise walk the whole file system before every match is refused.
    fixed = anchor.joinpath(*itertools.takewhile(lambda part: not GLOB_CHARS & set(part), base.parts[1:]))
    if _inside(Path(os.path.realpath(fixed)), roots) is None:
        allowed = ", ".join(str(r) for r in roots)
        raise PathRefused(f"{pattern!r} starts outside the allowed roots (at {fixed}); start it inside: {allowed}")
    yield from sorted(anchor.glob(str(base.relative_to(anchor))))


def resolve_path(raw: str, roots: list[Path], *, encoding: str, errors: str) -> ResolvedSource:
    """Turn a file, directory or glob into documents, checking every file it names."""
    if any(ch in GLOB_CHARS for ch in raw):
        candidates, listing = list(_glob(raw, roots)), True
        if not candidates:
            raise NotFound(f"no files match {raw!r}")
    else:
        real = check_path(raw, roots)
        if real.is_file():
            if looks_binary(real):
                raise InvalidInput(f"{raw!r} looks like a binary file (it contains NUL bytes); only text can be loaded")
            doc = Document(name=_display_name(real, roots), path=real, encoding=encoding, errors=errors)
            return ResolvedSource([doc], "str", real.stat().st_size)
        candidates, listing = list(_walk(real)), True
    documents: list[Document] = []
    skipped: list[str] = []
    total = 0
    for path in candidates:
        if len(documents) >= MAX_FILES:
            skipped.append(f"... more files after the first {MAX_FILES:,} were left out")
            break
        try:
            real = check_path(str(path), roots)
        except (PathRefused, NotFound) as exc:
            skipped.append(str(exc))
            continue
        if not real.is_file():
            continue
        name = _display_name(real, roots)
        try:
            if looks_binary(real):
                skipped.append(f"{name}: binary")
                continue
            size = real.stat().st_size
        except OSError as exc:
            skipped.append(f"{name}: {exc.strerror}")
            continue
        if size == 0:
            skipped.append(f"{name}: empty")
            continue
        total += size
        documents.append(Document(name=name, path=real, header=document_header(name), encoding=encoding, errors=errors))
    if not documents and listing:
        raise NotFound(f"no text files to load under {raw!r}" + (f" (skipped: {len(skipped)})" if skipped else ""))
    return ResolvedSource(documents, "list", total, skipped)


class InlineStore:
    """Inline content, written once per distinct text under ``corpora/`` and named by its SHA-256.

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
        if b"\x00" in data[:SNIFF_BYTES]:
            raise InvalidInput("content contains NUL bytes; only text can be loaded")
        digest = hashlib.sha256(data).hexdigest()
        path = self.directory / f"{digest}.txt"
        if not path.exists():
            self.directory.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".incoming-")
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
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
