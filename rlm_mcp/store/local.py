"""The embedded store: plain files under the data directory, nothing to install.

Objects are files written through a temporary file and ``os.replace``; a log is a
JSON Lines file opened for append, one record per line, so a torn last line (a
crash mid-write) is simply skipped on read, and a record that cannot be written
whole (a full disk) is cut back off, leaving the file as it was. Every OS error
becomes a :class:`StoreError` that says what failed and why (see
:mod:`rlm_mcp.store.failures`). The layout is what a person would expect to
find: ``trajectories/t_....jsonl``, ``sessions/s_....json``, ``corpora/<sha256>.txt``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import BinaryIO

from rlm_mcp.files import write_atomically
from rlm_mcp.store.base import Entry, KeyNotFound, LogRecord, StoreError, check_key
from rlm_mcp.store.failures import storing

LOG_SUFFIX = ".jsonl"


def _write_whole(fd: int, data: bytes, size: int) -> None:
    """Write all of ``data`` at the end of the file, or cut the file back to ``size`` and raise."""
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view) :]
    except BaseException:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, size)
        raise


def _copy_into(source: Path, target: BinaryIO) -> None:
    with source.open("rb") as f:
        shutil.copyfileobj(f, target, 1024 * 1024)


class LocalStore:
    def __init__(self, root: Path):
        self.root = root
        self.url = str(root)

    def sub(self, name: str) -> LocalStore:
        return LocalStore(self.root / check_key(name))

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def read(self, key: str) -> bytes:
        try:
            with storing(f"reading {key!r}", self.root):
                return self._path(key).read_bytes()
        except FileNotFoundError:
            raise KeyNotFound(key) from None

    def write(self, key: str, data: bytes) -> None:
        with storing(f"writing {key!r}", self.root):
            write_atomically(self._path(key), lambda f: f.write(data))

    def delete(self, key: str) -> None:
        with storing(f"deleting {key!r}", self.root), contextlib.suppress(FileNotFoundError):
            self._path(key).unlink()

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str = "") -> list[Entry]:
        if not self.root.is_dir():
            return []
        entries = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames.sort()
            for name in filenames:
                if name.startswith(".incoming-") or name.endswith(LOG_SUFFIX):
                    continue
                path = Path(dirpath) / name
                key = path.relative_to(self.root).as_posix()
                if not key.startswith(prefix):
                    continue
                with contextlib.suppress(FileNotFoundError):
                    info = path.stat()
                    entries.append(Entry(key=key, size=info.st_size, modified=info.st_mtime))
        return sorted(entries, key=lambda e: e.key)

    def upload(self, key: str, source: Path) -> None:
        target = self._path(key)
        if source.resolve() != target.resolve():
            with storing(f"storing {key!r}", self.root):
                write_atomically(target, lambda f: _copy_into(source, f))

    def download(self, key: str, target: Path) -> None:
        source = self._path(key)
        if not source.is_file():
            raise KeyNotFound(key)
        if source.resolve() != target.resolve():
            with storing(f"copying {key!r}", target.parent):
                write_atomically(target, lambda f: _copy_into(source, f))

    def local_path(self, key: str) -> Path:
        return self._path(key)

    def append(self, log: str, record: bytes) -> None:
        path = self._path(log + LOG_SUFFIX)
        with storing(f"appending to {log + LOG_SUFFIX!r}", self.root):
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                size = os.fstat(fd).st_size
                # After a crash mid-write the file ends in a torn record: start on a fresh line.
                torn = size > 0 and os.pread(fd, 1, size - 1) != b"\n"
                _write_whole(fd, (b"\n" if torn else b"") + record + b"\n", size)
            finally:
                os.close(fd)

    def read_log(self, log: str) -> list[LogRecord]:
        path = self._path(log + LOG_SUFFIX)
        try:
            with storing(f"reading {log + LOG_SUFFIX!r}", self.root):
                data = path.read_bytes()
        except FileNotFoundError:
            raise KeyNotFound(log) from None
        lines = data.split(b"\n")
        # The last piece is either empty (a complete final line) or a record torn by a crash.
        return [LogRecord(line, f"line {n} of {path}") for n, line in enumerate(lines[:-1], 1) if line]

    def delete_log(self, log: str) -> None:
        with storing(f"deleting {log + LOG_SUFFIX!r}", self.root), contextlib.suppress(FileNotFoundError):
            self._path(log + LOG_SUFFIX).unlink()

    def list_logs(self) -> list[Entry]:
        if not self.root.is_dir():
            return []
        entries = []
        for path in self.root.glob(f"*{LOG_SUFFIX}"):
            with contextlib.suppress(FileNotFoundError):
                info = path.stat()
                entries.append(Entry(key=path.name[: -len(LOG_SUFFIX)], size=info.st_size, modified=info.st_mtime))
        return sorted(entries, key=lambda e: e.key)

    def check(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the data directory {self.root}: {exc.strerror}") from None
        if not os.access(self.root, os.W_OK):
            raise StoreError(f"the data directory {self.root} is not writable; set RLM_DATA_DIR to one that is")
