"""Local paths: the rules that keep ``load_context`` inside the allowed roots, and the walk.

No file access is implied: with no allowed roots (the default), every path is
refused with a message that says how to allow a folder. A path must resolve,
after following symlinks, inside one of the allowed roots and outside the
server's own data directory (which holds every principal's corpora and
trajectories); ``..``, ``/proc``, ``/sys``, ``/dev``, FIFOs, sockets and devices
are refused. Messages name the path as the client gave it (or a document by its
name relative to its root), never a resolved path or the roots themselves.
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
NO_ROOTS = (
    "this server may read no folder: give the text as content, or have its operator allow one with "
    "RLM_ALLOWED_ROOTS (or --allowed-roots), e.g. RLM_ALLOWED_ROOTS=~/Documents"
)
OUTSIDE = "is outside the allowed roots (RLM_ALLOWED_ROOTS); give a path inside them, or ask for the folder to be added"


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


def relative_note(raw: str) -> str:
    """For a relative path: what it was read against (the first allowed root, not the server's directory).

    The root itself is not named (messages never show the server's directories); the client can list its roots.
    """
    if Path(os.path.expanduser(raw)).is_absolute():
        return ""
    return " (a relative path is read from the first allowed root, not a working directory; give an absolute path)"


def check_path(raw: str, roots: list[Path], private: Sequence[Path] = (), shown: str | None = None) -> Path:
    """The real path of ``raw`` if it is a regular file or directory inside a root (and outside the ``private``
    directories); else a clear error that names it as ``shown`` (default: ``raw`` as given)."""
    if not raw or "\x00" in raw:
        raise InvalidInput("path is empty or contains a NUL byte")
    if not roots:
        raise PathRefused(NO_ROOTS)
    name = repr(raw) if shown is None else shown
    candidate = Path(os.path.expanduser(raw))
    if ".." in candidate.parts:
        raise PathRefused(f"{name}: paths may not contain '..'; give a path inside the allowed roots")
    if not candidate.is_absolute():
        candidate = roots[0] / candidate
    real = Path(os.path.realpath(candidate))
    for pseudo in PSEUDO_FILESYSTEMS:
        if real == pseudo or real.is_relative_to(pseudo):
            raise PathRefused(f"{name} is on {pseudo}, which is never loaded")
    if inside(real, roots) is None or inside(real, list(private)) is not None:
        raise PathRefused(f"{name} {OUTSIDE}")
    try:
        mode = os.stat(real).st_mode
    except FileNotFoundError:
        raise NotFound(f"{name} does not exist{relative_note(raw) if shown is None else ''}") from None
    except OSError as exc:
        raise PathRefused(f"{name} cannot be read: {exc.strerror}") from None
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        kind = {
            stat.S_IFIFO: "a FIFO",
            stat.S_IFSOCK: "a socket",
            stat.S_IFCHR: "a character device",
            stat.S_IFBLK: "a block device",
        }.get(stat.S_IFMT(mode), "not a regular file")
        raise PathRefused(f"{name} is {kind}; only regular files and directories can be loaded")
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


def _fixed_part(path: Path) -> Path:
    """The leading folders of a glob pattern, before its first wildcard."""
    return Path(*itertools.takewhile(lambda part: not GLOB_CHARS & set(part), path.parts)) if path.parts else path


def glob(pattern: str, roots: list[Path], private: Sequence[Path] = ()) -> Iterator[Path]:
    if not roots:
        raise PathRefused(NO_ROOTS)
    if ".." in Path(pattern).parts:
        raise PathRefused(f"{pattern!r}: paths may not contain '..'")
    given = Path(os.path.expanduser(pattern))
    base = given if given.is_absolute() else roots[0] / given
    anchor = Path(base.anchor)
    # The walk starts at the pattern's fixed part, which must be inside a root: '/**/*.txt'
    # would otherwise walk the whole file system before every match is refused.
    fixed = anchor.joinpath(*itertools.takewhile(lambda part: not GLOB_CHARS & set(part), base.parts[1:]))
    real = Path(os.path.realpath(fixed))
    if inside(real, roots) is None or inside(real, list(private)) is not None:
        at = f" (at {_fixed_part(Path(pattern))})" if str(_fixed_part(Path(pattern))) not in ("", ".") else ""
        raise PathRefused(f"{pattern!r} starts outside the allowed roots{at}; start it inside them")
    yield from sorted(anchor.glob(str(base.relative_to(anchor))))
