"""Operating-system limits the worker puts on itself before it runs any user code.

The worker process is the security boundary: even code that got past every
check in :mod:`sandbox.policy` must find itself in a process that cannot open
the network, start processes, read or change files, grow without bound, dump
core, signal or inspect its neighbours, or outlive the server. Each measure is
applied where the platform allows it and reported back, so the parent can log
and the README can state exactly what holds where.

Order matters: the network namespace needs the privileges the worker is about
to drop; changing user clears the death signal and the not-dumpable flag, so
those come after it; Landlock and the seccomp filter come last, because
installing them needs system calls the filter refuses.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path

from sandbox import landlock, seccomp

try:
    import resource
except ImportError:  # pragma: no cover - not on Windows, which the sandbox does not support
    resource = None  # type: ignore[assignment]

_PR_SET_PDEATHSIG = 1
_PR_SET_DUMPABLE = 4
_PR_SET_NO_NEW_PRIVS = 38
_CLONE_NEWNET = 0x40000000
_CLONE_NEWUSER = 0x10000000


@dataclass(frozen=True)
class Confinement:
    memory_bytes: int | None
    """Soft address-space limit; raised per load (up to the hard one) as the corpus grows."""
    memory_hard_bytes: int | None = None
    max_open_files: int = 512
    readable: tuple[str, ...] = field(default_factory=tuple)
    """Directories the worker may still read (its interpreter's); everything else is closed by Landlock."""
    unprivileged_user: tuple[int, int] = (65534, 65534)
    """uid and gid a worker started by root switches to (``nobody``/``nogroup`` on most systems)."""


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    return ctypes.CDLL(None, use_errno=True)


def _set_limit(name: str, soft: int, hard: int | None = None) -> str:
    kind = getattr(resource, name)
    _current_soft, current_hard = resource.getrlimit(kind)
    if hard is None:
        hard = soft
    if current_hard != resource.RLIM_INFINITY:
        hard = min(hard, current_hard)
        soft = min(soft, hard)
    try:
        resource.setrlimit(kind, (soft, hard))
    except (ValueError, OSError) as exc:
        return f"{name}: not set ({exc})"
    return f"{name}={soft}"


def _unshare_network(libc: ctypes.CDLL) -> str:
    """A fresh network namespace holds only a downed loopback: no address is reachable."""
    flags = _CLONE_NEWNET if os.geteuid() == 0 else _CLONE_NEWUSER | _CLONE_NEWNET
    if libc.unshare(flags) == 0:
        return "network: isolated (new network namespace)"
    err = ctypes.get_errno()
    return f"network: NOT isolated (unshare failed: {os.strerror(err)})"


def _drop_root(uid: int, gid: int) -> str:
    """Root in the worker could read every file; the unprivileged user reads what anyone may."""
    try:
        os.setgroups([])
        os.setgid(gid)  # as root these set the real, effective and saved ids alike
        os.setuid(uid)
    except OSError as exc:
        return f"user: still root (could not switch to uid {uid}: {exc})"
    return f"user: uid {uid}, gid {gid}, no supplementary groups (started as root)"


def reachable_by_others(path: str) -> bool:
    """Whether a user who owns nothing could read ``path`` (every parent directory searchable)."""
    target = Path(path)
    for part in [*reversed(target.parents), target]:
        try:
            mode = part.stat().st_mode
        except OSError:
            return False
        if not mode & stat.S_IXOTH or (part == target and not mode & stat.S_IROTH):
            return False
    return True


def preload_codecs() -> None:
    """Import every codec now, while the interpreter can still read its library.

    Done only when the worker is about to become a user who cannot read the
    standard library (an interpreter under ``/root``, say): a text encoding asked
    for later would otherwise be "unknown".
    """
    import encodings
    import importlib
    import pkgutil

    for module in pkgutil.iter_modules(encodings.__path__):
        with contextlib.suppress(Exception):
            importlib.import_module(f"encodings.{module.name}")


def apply(confinement: Confinement) -> list[str]:
    """Apply every limit this platform supports; return one line per measure."""
    report: list[str] = []
    if resource is not None:
        if confinement.memory_bytes:
            hard = max(confinement.memory_hard_bytes or 0, confinement.memory_bytes)
            report.append(_set_limit("RLIMIT_AS", confinement.memory_bytes, hard))
        report.append(_set_limit("RLIMIT_CORE", 0))
        report.append(_set_limit("RLIMIT_FSIZE", 0))
        report.append(_set_limit("RLIMIT_NOFILE", confinement.max_open_files))
    libc = _libc()
    if libc is not None:
        report.append(_unshare_network(libc))
    else:
        report.append(f"network: NOT isolated (no network namespaces on {sys.platform})")
    if os.geteuid() == 0:
        uid, gid = confinement.unprivileged_user
        if not all(reachable_by_others(path) for path in confinement.readable):
            preload_codecs()
        report.append(_drop_root(uid, gid))
    if resource is not None and os.geteuid() != 0:  # the kernel does not apply RLIMIT_NPROC to root
        report.append(_set_limit("RLIMIT_NPROC", 0))
    if libc is not None:
        parent = os.getppid()
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0:
            report.append("killed with its parent")
        if os.getppid() != parent:  # the parent died before the death signal was armed
            os._exit(1)
        if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0:
            report.append("no_new_privs")
        if libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0) == 0:
            report.append("not dumpable (no ptrace or /proc/<pid>/mem from other processes)")
        report.append(landlock.restrict(confinement.readable))
        report.append(seccomp.install())
    else:
        report.append(f"file system: NOT restricted (no Landlock on {sys.platform})")
        report.append(f"system-call filter: NOT installed (no seccomp on {sys.platform})")
    return report


def set_memory_limit(soft: int) -> None:
    """Raise (or lower) the soft address-space limit, never past the hard one."""
    if resource is None:
        return
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def limit_cpu_seconds(budget: float) -> None:
    """Cap the CPU this process may still use: a backstop under the parent's wall-clock kill."""
    if resource is None:
        return
    usage = resource.getrusage(resource.RUSAGE_SELF)
    used = usage.ru_utime + usage.ru_stime
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft = int(used + budget) + 1
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def interpreter_directories() -> tuple[str, ...]:
    """What the worker still reads once confined: its interpreter's library and this package.

    ``sys.path[0]`` is where the parent found the ``sandbox`` package (a source
    checkout, say), so only the package itself is kept from it.
    """
    package = os.path.dirname(os.path.abspath(__file__))
    library = [os.path.abspath(p) for p in sys.path[1:] if os.path.isdir(p)]
    return (package, *library)
