"""gzip-compressed files: decompressed as a stream into a derived file, with the corpus limit enforced."""

from __future__ import annotations

import gzip
import shutil
import zlib
from pathlib import Path

from rlm_mcp.errors import InvalidInput
from rlm_mcp.sources.derived import LimitedWriter

COPY_CHUNK = 1024 * 1024
SUFFIXES = (".gz", ".gzip")


def is_compressed(name: str) -> bool:
    return name.lower().endswith(SUFFIXES)


def inner_name(name: str) -> str:
    """``logs/app.log.gz`` -> ``logs/app.log``: what the content is, for choosing how to read it."""
    lower = name.lower()
    for suffix in SUFFIXES:
        if lower.endswith(suffix):
            return name[: -len(suffix)]
    return name


def gunzip(source: Path, out: LimitedWriter, name: str) -> None:
    try:
        with gzip.open(source, "rb") as f:
            shutil.copyfileobj(f, out, COPY_CHUNK)  # type: ignore[misc]
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise InvalidInput(f"{name} is not a valid gzip file ({exc}); rename it if it is not compressed") from None
