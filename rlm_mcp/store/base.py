"""What every store offers: small objects, large files, and append-only logs, under string keys.

The core never touches files or buckets directly: trajectories, session records
and inline corpora go through a :class:`Store`, so one server keeps them in its
data directory and a fleet of replicas shares them in S3. Keys are relative,
``/``-separated and built by rlm-mcp from checked ids, never from client input.

The interface is blocking (the S3 backend is boto3); async callers run it in a
worker thread. Logs exist because S3 has no append: a log is a sequence of
records, each durable once ``append`` returns, so a crash loses at most the
record being written.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from rlm_mcp.errors import KeyNotFound, StoreError

__all__ = ["Entry", "KeyNotFound", "LogRecord", "Store", "StoreError", "check_key"]


@dataclass(frozen=True)
class Entry:
    key: str
    size: int
    modified: float
    """Unix time of the last write."""


@dataclass(frozen=True)
class LogRecord:
    data: bytes
    where: str
    """Where the record lives, for a message about it: ``line 7 of /data/trajectories/t_x.jsonl``, an s3:// URL."""


class Store(Protocol):
    url: str
    """Where this store keeps its data, for messages (a directory or an s3:// URL)."""

    def sub(self, name: str) -> Store:
        """The same store, with every key under ``name/``."""
        ...

    def read(self, key: str) -> bytes: ...

    def write(self, key: str, data: bytes) -> None:
        """Create or replace ``key`` in one step: a reader sees the old object or the new one."""
        ...

    def delete(self, key: str) -> None:
        """Remove ``key``; a missing key is not an error."""
        ...

    def exists(self, key: str) -> bool: ...

    def list(self, prefix: str = "") -> list[Entry]:
        """Objects whose key starts with ``prefix`` (logs are not listed), sorted by key."""
        ...

    def upload(self, key: str, source: Path) -> None:
        """Store a local file under ``key``, streaming it (corpora may be gigabytes)."""
        ...

    def download(self, key: str, target: Path) -> None:
        """Copy ``key`` into the local file ``target``, which appears only once complete."""
        ...

    def local_path(self, key: str) -> Path | None:
        """The file already holding ``key`` on this machine, if the store is local; else None."""
        ...

    def append(self, log: str, record: bytes) -> None:
        """Add one record (a single line of JSON, no newline) to the log ``log``, whole or not at all: a
        write that fails half-way (a full disk) leaves the log as it was."""
        ...

    def read_log(self, log: str) -> list[LogRecord]:
        """Every complete record of ``log`` in the order written, with where it is; KeyNotFound if it has none.

        Records are returned as stored, damaged ones included: the reader says what is damaged and where.
        """
        ...

    def delete_log(self, log: str) -> None:
        """Remove every record of ``log``; a missing log is not an error."""
        ...

    def list_logs(self) -> list[Entry]:
        """Every log, keyed by its name, ``modified`` being the time of its last record."""
        ...

    def check(self) -> None:
        """Fail now, with a StoreError that says what to fix, if the store cannot be used."""
        ...


def check_key(key: str) -> str:
    """Keys are built from checked ids; anything that could climb out of the store is a bug."""
    parts = key.split("/")
    if not key or key.startswith("/") or any(part in ("", ".", "..") for part in parts):
        raise ValueError(f"invalid store key {key!r}")
    return key
