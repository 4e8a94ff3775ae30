"""Local paths: the rules that keep ``load_context`` inside the allowed roots, and the walk.

A path must resolve, after following symlinks, inside one of the allowed roots;
``..``, ``/proc``, ``/sys``, ``/dev``, FIFOs, sockets and devices are refused.
Directories are walked in a stable order, skipping version-control and cache
folders; ``include``/``exclude`` globs pick files by their path relative to the
directory (``*`` also matches ``/``, so ``*.py`` means every Python file at any
depth and ``tests/*`` everything under ``tests``).
"""

from __future__ import annotations

import fnmatch
import itertools
import os
import stat
from collections.abc import Iterator, Sequence
from pathlib import Path

from rlm_mcp.errors import InvalidInput, NotFound, PathRefused

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


def inside(path: Path, roots: list[Path]) -> Path | None:
    for root in roots:
        if path == root or path.is_relative_to(root):
            return root
    return None


def display_name(path: Path, roots: list[Path]) -> str:
    """The name a document is cited by: its path relative to its allowed root."""
    root = inside(path, roots)
    if root is None:
        return str(path)
    relative = path.relative_to(root)
    return str(relative) if str(relative) != "." else path.name


def relative_note(raw: str, roots: list[Path]) -> str:
    """For a relative path: what it was read against (the first allowed root, not the server's directory)."""
    if Path(os.path.expanduser(raw)).is_absolute():
        return ""
    return f" (a relative path is read from the first allowed root, {roots[0]}; give an absolute path to be sure)"


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
    if inside(real, roots) is None:
        via = f" (it resolves to {real})" if real != candidate else ""
        allowed = ", ".join(str(r) for r in roots)
        raise PathRefused(
            f"{raw!r} is outside the allowed roots{via}. Allowed: {allowed}. Set RLM_ALLOWED_ROOTS to change them"
        )
    try:
        mode = os.stat(real).st_mode
    except FileNotFoundError:
        raise NotFound(f"{raw!r} does not exist{relative_note(raw, roots)}") from None
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


def is_binary(head: bytes) -> bool:
    return b"\x00" in head


def looks_binary(path: Path) -> bool:
    with path.open("rb") as f:
        return is_binary(f.read(SNIFF_BYTES))


def selected(relative: str, include: Sequence[str], exclude: Sequence[str]) -> bool:
    """Whether a file (path relative to what was loaded, with '/') passes the include/exclude globs."""
    name = relative.rsplit("/", 1)[-1]

    def matches(pattern: str) -> bool:
        return fnmatch.fnmatchcase(relative, pattern) or ("/" not in pattern and fnmatch.fnmatchcase(name, pattern))

    if include and not any(matches(p) for p in include):
        return False
    return not any(matches(p) for p in exclude)


def walk(directory: Path, include: Sequence[str] = (), exclude: Sequence[str] = ()) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(directory, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIPPED_DIRS)
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if selected(path.relative_to(directory).as_posix(), include, exclude):
                yield path


def glob(pattern: str, roots: list[Path]) -> Iterator[Path]:
    if ".." in Path(pattern).parts:
        raise PathRefused(f"{pattern!r}: paths may not contain '..'")
    base = Path(os.path.expanduser(pattern))
    if not base.is_absolute():
        base = roots[0] / base
    anchor = Path(base.anchor)
    # The walk starts at the pattern's fixed part, which must be inside a root: '/**/*.txt'
    # would otherwise walk the whole file system before every match is refused.
    fixed = anchor.joinpath(*itertools.takewhile(lambda part: not GLOB_CHARS & set(part), base.parts[1:]))
    if inside(Path(os.path.realpath(fixed)), roots) is None:
        allowed = ", ".join(str(r) for r in roots)
        raise PathRefused(f"{pattern!r} starts outside the allowed roots (at {fixed}); start it inside: {allowed}")
    yield from sorted(anchor.glob(str(base.relative_to(anchor))))
