"""A failed read or write as an error a person can act on: what failed, why, and which setting moves it.

A full disk (or quota, a read-only mount, a permission) is not a bug: the client
is told so in words, with the setting that controls where the data lives, and
the server goes on serving; the next write that finds room succeeds.
"""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Iterator
from pathlib import Path

from rlm_mcp.store.base import KeyNotFound, StoreError

RECOVERS = "the server carries on, and recovers by itself once there is room"


def describe_os_error(exc: OSError, where: Path | str, setting: str) -> str:
    """Why ``exc`` happened at ``where``, and what to do about it (naming ``setting``)."""
    name = errno.errorcode.get(exc.errno or 0, "")
    code = f"{name}: {exc.strerror}" if name and exc.strerror else (exc.strerror or str(exc))
    if exc.errno == errno.ENOSPC:
        return (
            f"the disk holding {where} is full ({code}); free space there, or set {setting} to a directory on a "
            f"disk with room ({RECOVERS})"
        )
    if exc.errno == errno.EDQUOT:
        return (
            f"the disk quota of the server's user is used up at {where} ({code}); free space within the quota, "
            f"or set {setting} to a directory with room ({RECOVERS})"
        )
    if exc.errno == errno.EROFS:
        return f"{where} is on a read-only file system ({code}); set {setting} to a writable directory"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return (
            f"the server's user may not write to {where} ({code}); give it write access, or set {setting} to a "
            "directory it owns"
        )
    if exc.errno == errno.EIO:
        return f"an input/output error at {where} ({code}): the disk may be failing; check it, or set {setting}"
    if exc.errno in (errno.EMFILE, errno.ENFILE):
        return f"too many open files ({code}); raise the server's open-file limit (ulimit -n)"
    return f"{code} at {where} (set by {setting})"


def os_failure(action: str, where: Path | str, exc: OSError, setting: str = "RLM_DATA_DIR") -> StoreError:
    return StoreError(f"{action} failed: {describe_os_error(exc, where, setting)}")


WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})
"""Errors only a write can meet: whatever else was read in the same step, the fault is where it was written."""


@contextlib.contextmanager
def storing(
    action: str, where: Path | str, setting: str = "RLM_DATA_DIR", *, writing_only: bool = False
) -> Iterator[None]:
    """OS errors inside as a :class:`StoreError` saying what failed; a missing file stays FileNotFoundError.

    ``writing_only`` is for a step that also reads a source (converting a file into the store): then only
    errors of the writing side (a full disk, a read-only mount, or any error about a path under ``where``)
    are the store's; the others are the source's and pass through unchanged.
    """
    try:
        yield
    except (FileNotFoundError, KeyNotFound):
        raise
    except OSError as exc:
        if writing_only and exc.errno not in WRITE_ERRNOS and not _under(exc.filename, where):
            raise
        raise os_failure(action, where, exc, setting) from exc


def _under(filename: object, directory: Path | str) -> bool:
    if not isinstance(filename, str):
        return False
    return Path(filename).is_relative_to(directory)
