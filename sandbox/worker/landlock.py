"""Landlock: the worker may read the Python installation and nothing else on the file system.

Landlock (Linux 5.13+) lets an unprivileged process give up file-system access
for itself and everything it could start, and it holds for root too. The worker
keeps read access to the directories its interpreter imports from (lazily
imported codecs, for example), and loses everything else: the server's data
directory, the allowed roots, home directories and credential files,
``/proc`` (so not even ``/proc/<server>/environ``), devices. Documents still
arrive as descriptors the server opened, which Landlock does not affect.

Where the kernel's Landlock ABI is recent enough it also refuses TCP bind and
connect (ABI 4) and signals or abstract Unix sockets outside the worker (ABI 6).
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Iterable

_SYS_CREATE_RULESET = 444
_SYS_ADD_RULE = 445
_SYS_RESTRICT_SELF = 446
_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH = 1

_FS_READ_FILE = 1 << 2
_FS_READ_DIR = 1 << 3
_FS_BY_ABI = {1: (1 << 13) - 1, 2: (1 << 14) - 1, 3: (1 << 15) - 1, 4: (1 << 15) - 1, 5: (1 << 16) - 1}
_NET_BIND_TCP = 1 << 0
_NET_CONNECT_TCP = 1 << 1
_SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0
_SCOPE_SIGNAL = 1 << 1


class _RulesetAttr(ctypes.Structure):
    _fields_ = (
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    )


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = (("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32))


def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    return libc


def abi_version() -> int:
    """The kernel's Landlock ABI version, or 0 where Landlock is missing or disabled."""
    if not sys.platform.startswith("linux"):
        return 0
    libc = _libc()
    version = libc.syscall(_SYS_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(_CREATE_RULESET_VERSION))
    return max(int(version), 0)


def restrict(readable: Iterable[str]) -> str:
    """Allow reading (and listing) beneath ``readable`` only; one report line."""
    abi = abi_version()
    if abi <= 0:
        where = "this kernel" if sys.platform.startswith("linux") else sys.platform
        return f"file system: NOT restricted (no Landlock on {where})"
    libc = _libc()
    attr = _RulesetAttr(handled_access_fs=_FS_BY_ABI.get(abi, _FS_BY_ABI[5]))
    size = 8
    if abi >= 4:
        attr.handled_access_net = _NET_BIND_TCP | _NET_CONNECT_TCP
        size = 16
    if abi >= 6:
        attr.scoped = _SCOPE_ABSTRACT_UNIX_SOCKET | _SCOPE_SIGNAL
        size = 24
    ruleset = libc.syscall(_SYS_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    if ruleset < 0:
        return f"file system: NOT restricted (Landlock ruleset failed: {os.strerror(ctypes.get_errno())})"
    try:
        allowed: list[str] = []
        for path in dict.fromkeys(readable):
            try:
                fd = os.open(path, os.O_PATH | os.O_CLOEXEC | os.O_DIRECTORY)
            except OSError:
                continue
            try:
                rule = _PathBeneathAttr(allowed_access=_FS_READ_FILE | _FS_READ_DIR, parent_fd=fd)
                if libc.syscall(_SYS_ADD_RULE, ctypes.c_int(ruleset), _RULE_PATH_BENEATH, ctypes.byref(rule), 0) == 0:
                    allowed.append(path)
            finally:
                os.close(fd)
        if libc.syscall(_SYS_RESTRICT_SELF, ctypes.c_int(ruleset), ctypes.c_uint32(0)) != 0:
            return f"file system: NOT restricted (Landlock failed: {os.strerror(ctypes.get_errno())})"
    finally:
        os.close(ruleset)
    extra = ", TCP" if abi >= 4 else ""
    extra += ", signals and abstract sockets outside the worker" if abi >= 6 else ""
    return f"file system (Landlock ABI {abi}): read-only under {len(allowed)} Python director(ies), nothing else{extra}"
