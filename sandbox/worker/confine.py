"""Operating-system limits the worker puts on itself before it runs any user code.

The worker process is the security boundary: even code that got past every
check in :mod:`sandbox.worker.policy` must find itself in a process that cannot open
the network, start processes, read or change files, grow without bound, dump
core, signal or inspect its neighbours, or outlive the server. Each measure is
applied where the platform allows it and reported back, so the parent can log
and the README can state exactly what holds where.

Order matters: the network and IPC namespaces need the privileges the worker
is about to drop; changing user clears the death signal and the not-dumpable
flag, so those come after it; Landlock and the seccomp filter come last,
because installing them needs system calls the filter refuses.

Resource limits are set once, here, with the hard limit equal to the soft one,
and never raised afterwards. Raising a hard limit (``setrlimit`` on itself, or
``prlimit`` on it from the parent) needs ``CAP_SYS_RESOURCE`` in the initial
user namespace: a server that is not root never has it, and root in a container
usually lacks it too. So a limit the worker may not exceed has to be final from
the start, and the parent, not the worker, decides what it is:

* the address space (``RLIMIT_AS``) is sized by the parent for the corpus the
  worker is started for, with room to grow (:meth:`SandboxLimits.memory_for`);
  a load that needs more gets a fresh worker sized for it, and the corpus is
  read again (:class:`sandbox.host.Sandbox`);
* CPU time (``RLIMIT_CPU``) is an allowance for the worker's whole life
  (:meth:`SandboxLimits.cpu_allowance`): the kernel kills the process when it is
  spent, whatever the code does between requests. Before each request the
  parent reads what the worker has used and, when what is left would not cover
  the request, replaces the worker first. The per-call budget is the parent's
  compute clock, which the worker cannot touch;
* no core dumps, no file growth, 512 open files and (not root) no new
  processes: fixed for good.
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

from sandbox.worker import landlock, seccomp

try:
    import resource
except ImportError:  # pragma: no cover - not on Windows, which the sandbox does not support
    resource = None  # type: ignore[assignment]

_PR_SET_PDEATHSIG = 1
_PR_SET_DUMPABLE = 4
_PR_SET_NO_NEW_PRIVS = 38
_CLONE_NEWNET = 0x40000000
_CLONE_NEWIPC = 0x08000000
_CLONE_NEWUSER = 0x10000000
_NAMESPACES = ((_CLONE_NEWNET, "network", "network namespace"), (_CLONE_NEWIPC, "IPC", "IPC namespace"))


@dataclass(frozen=True)
class Confinement:
    memory_bytes: int | None
    """Address-space limit, hard and soft alike, for the worker's whole life."""
    cpu_seconds: int | None = None
    """CPU-time limit, hard and soft alike, for the worker's whole life."""
    max_open_files: int = 512
    readable: tuple[str, ...] = field(default_factory=tuple)
    """Directories the worker may still read (its interpreter's); everything else is closed by Landlock."""
    unprivileged_user: tuple[int, int] = (65534, 65534)
    """uid and gid a worker started by root switches to (``nobody``/``nogroup`` on most systems)."""


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    return ctypes.CDLL(None, use_errno=True)


def _set_limit(name: str, value: int) -> str:
    """Hard and soft limit alike: a limit the process could raise again is no limit."""
    kind = getattr(resource, name)
    _current_soft, current_hard = resource.getrlimit(kind)
    if current_hard != resource.RLIM_INFINITY:
        value = min(value, current_hard)
    try:
        resource.setrlimit(kind, (value, value))
    except (ValueError, OSError) as exc:
        return f"{name}: not set ({exc})"
    return f"{name}={value}"


def unshare_namespaces(libc: ctypes.CDLL) -> list[str]:
    """New network and IPC namespaces; one report line each.

    A fresh network namespace holds only a downed loopback: no address is
    reachable. A fresh IPC namespace holds no System V object and its own POSIX
    message queues: the worker sees no other session's shared memory, queues or
    semaphores, and whatever it could create dies with it (the kernel destroys
    a namespace's objects when its last process exits).

    Root unshares them directly (the namespaces then belong to the initial user
    namespace, and the worker switches to ``nobody`` afterwards). Anyone else
    needs a user namespace of its own to hold the privilege, which some
    systems refuse (``user.max_user_namespaces=0``, Debian's
    ``kernel.unprivileged_userns_clone=0``, Ubuntu's AppArmor restriction,
    container seccomp profiles); the seccomp filter refuses sockets and IPC
    calls either way. Both are asked for in one call, and one at a time if
    that fails, so that a kernel without one kind still gets the other.
    """
    need_user = os.geteuid() != 0
    if libc.unshare(_CLONE_NEWNET | _CLONE_NEWIPC | (_CLONE_NEWUSER if need_user else 0)) == 0:
        return [f"{label}: isolated (new {what})" for _, label, what in _NAMESPACES]
    report = []
    for flag, label, what in _NAMESPACES:
        if libc.unshare(flag | (_CLONE_NEWUSER if need_user else 0)) == 0:
            need_user = False  # the new user namespace now holds the privilege for the next one
            report.append(f"{label}: isolated (new {what})")
        else:
            report.append(f"{label}: NOT isolated (unshare failed: {os.strerror(ctypes.get_errno())})")
    return report


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


_codecs_preloaded = False


def preload_codecs() -> None:
    """Import every codec now, while the interpreter can still read its library.

    Done only when the worker is about to become a user who cannot read the
    standard library (an interpreter under ``/root``, say): a text encoding asked
    for later would otherwise be "unknown". Once is enough: a worker forked from
    the template (:mod:`sandbox.template`) has them from it.
    """
    global _codecs_preloaded
    if _codecs_preloaded:
        return
    import encodings
    import importlib
    import pkgutil

    for module in pkgutil.iter_modules(encodings.__path__):
        with contextlib.suppress(Exception):
            importlib.import_module(f"encodings.{module.name}")
    _codecs_preloaded = True


def apply(confinement: Confinement) -> list[str]:
    """Apply every limit this platform supports; return one line per measure."""
    report: list[str] = []
    if resource is not None:
        if confinement.memory_bytes:
            report.append(_set_limit("RLIMIT_AS", confinement.memory_bytes))
        if confinement.cpu_seconds:
            report.append(_set_limit("RLIMIT_CPU", confinement.cpu_seconds))
        report.append(_set_limit("RLIMIT_CORE", 0))
        report.append(_set_limit("RLIMIT_FSIZE", 0))
        report.append(_set_limit("RLIMIT_NOFILE", confinement.max_open_files))
    libc = _libc()
    if libc is not None:
        report.extend(unshare_namespaces(libc))
    else:
        report.append(f"network: NOT isolated (no network namespaces on {sys.platform})")
        report.append(f"IPC: NOT isolated (no IPC namespaces on {sys.platform})")
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


def apply_template() -> list[str]:
    """What the worker template (:mod:`sandbox.template`) puts on itself: what does not stop it forking workers.

    The template runs no user code and reads nothing but the server's requests, so it keeps what its
    children need to confine themselves (the right to fork, to create namespaces and, as root, to
    switch user); each child then applies :func:`apply` with its own limits. The template never dumps
    core, cannot be ptraced by a process of its user, gains no privilege, and dies with the server.
    """
    report = []
    if resource is not None:
        report.append(_set_limit("RLIMIT_CORE", 0))
        report.append(_set_limit("RLIMIT_FSIZE", 0))
    libc = _libc()
    if libc is not None:
        parent = os.getppid()
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0:
            report.append("killed with its parent")
        if os.getppid() != parent:
            os._exit(1)
        if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0:
            report.append("no_new_privs")
        if libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0) == 0:
            report.append("not dumpable")
    return report


def interpreter_directories() -> tuple[str, ...]:
    """What the worker still reads once confined: its interpreter's library and this package.

    ``sys.path[0]`` is where the parent found the ``sandbox`` package (a source
    checkout, say), so only the package itself is kept from it.
    """
    package = os.path.dirname(os.path.abspath(__file__))
    library = [os.path.abspath(p) for p in sys.path[1:] if os.path.isdir(p)]
    return (package, *library)
