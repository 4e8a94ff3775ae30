"""Writing a file so that readers see the old version or the whole new one, never half of it."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def write_atomically(target: Path, fill: Callable[[BinaryIO], object], *, keep_mode: bool = False) -> None:
    """Write ``target`` through a temporary file in its directory, then rename it into place.

    ``keep_mode`` carries the permissions of the file being replaced over to the new one.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
    try:
        with os.fdopen(fd, "wb") as f:
            fill(f)
        if keep_mode and target.exists():
            shutil.copymode(target, tmp)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
