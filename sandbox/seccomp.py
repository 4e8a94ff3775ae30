"""A seccomp-BPF filter: the system calls the worker can never make, even as root.

Resource limits cannot stop a process running as root from forking
(``RLIMIT_NPROC`` does not apply to it), and a network namespace does not stop
a path-named Unix socket (``/var/run/docker.sock``). A seccomp filter does both,
on every Linux since 3.5, inside containers too, and for root and non-root
alike: once installed it cannot be removed, and it is inherited by anything the
process could still create. It is a denylist, so that the interpreter keeps
working unchanged; what it refuses is what code that escaped RestrictedPython
would need to do harm:

* new processes and programs: ``fork``, ``vfork``, ``clone`` without
  ``CLONE_THREAD``, ``clone3`` (its flags are out of reach of the filter),
  ``execve``, ``execveat``;
* other processes: ``ptrace``, ``process_vm_readv/writev``, ``pidfd_*``, and
  signals to any process but the worker itself;
* new sockets of any family, and ``io_uring`` (which could open files and
  sockets without passing through the filter);
* changing the file system: opening for writing, creating, removing, renaming,
  linking, ``chmod``/``chown``, truncating, extended attributes;
* the kernel's administrative calls: mounts, namespaces, ``chroot``, modules,
  ``kexec``, ``reboot``, ``bpf``, ``perf_event_open``, keyrings, port I/O,
  clocks, swap;
* disarming the death signal (``prctl(PR_SET_PDEATHSIG)``), so the worker
  always dies with the server.

Refused calls fail with ``EPERM`` (``clone3`` and ``openat2`` with ``ENOSYS``, so
that the C library falls back to the calls the filter can inspect). A call from
a foreign ABI (32-bit or x32 on x86-64) kills the process: the filter only
knows this architecture's numbers.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import sys

_PR_SET_SECCOMP = 22
_SECCOMP_MODE_FILTER = 2
_PR_SET_PDEATHSIG = 1

_RET_KILL_PROCESS = 0x80000000
_RET_ERRNO = 0x00050000
_RET_ALLOW = 0x7FFF0000

# Classic BPF opcodes.
_LD_W_ABS = 0x20
_JEQ_K = 0x15
_JGE_K = 0x35
_JSET_K = 0x45
_RET_K = 0x06

# struct seccomp_data: int nr; u32 arch; u64 instruction_pointer; u64 args[6] (little endian).
_OFF_NR = 0
_OFF_ARCH = 4


def _arg_low(index: int) -> int:
    return 16 + 8 * index


_CLONE_THREAD = 0x00010000
_OPEN_WRITE_FLAGS = 0o1 | 0o2 | 0o100 | 0o1000  # O_WRONLY | O_RDWR | O_CREAT | O_TRUNC
_X32_SYSCALL_BIT = 0x40000000

_ARCHES: dict[str, tuple[int, dict[str, int]]] = {
    "x86_64": (
        0xC000003E,
        {
            "fork": 57,
            "vfork": 58,
            "clone": 56,
            "clone3": 435,
            "execve": 59,
            "execveat": 322,
            "kill": 62,
            "tkill": 200,
            "tgkill": 234,
            "rt_sigqueueinfo": 129,
            "rt_tgsigqueueinfo": 297,
            "pidfd_open": 434,
            "pidfd_send_signal": 424,
            "pidfd_getfd": 438,
            "ptrace": 101,
            "process_vm_readv": 310,
            "process_vm_writev": 311,
            "process_madvise": 440,
            "socket": 41,
            "socketpair": 53,
            "io_uring_setup": 425,
            "io_uring_enter": 426,
            "io_uring_register": 427,
            "open": 2,
            "openat": 257,
            "openat2": 437,
            "creat": 85,
            "open_by_handle_at": 304,
            "unlink": 87,
            "unlinkat": 263,
            "rename": 82,
            "renameat": 264,
            "renameat2": 316,
            "mkdir": 83,
            "mkdirat": 258,
            "rmdir": 84,
            "link": 86,
            "linkat": 265,
            "symlink": 88,
            "symlinkat": 266,
            "mknod": 133,
            "mknodat": 259,
            "chmod": 90,
            "fchmod": 91,
            "fchmodat": 268,
            "fchmodat2": 452,
            "chown": 92,
            "fchown": 93,
            "lchown": 94,
            "fchownat": 260,
            "truncate": 76,
            "ftruncate": 77,
            "fallocate": 285,
            "utime": 132,
            "utimes": 235,
            "utimensat": 280,
            "futimesat": 261,
            "setxattr": 188,
            "lsetxattr": 189,
            "fsetxattr": 190,
            "removexattr": 197,
            "lremovexattr": 198,
            "fremovexattr": 199,
            "mount": 165,
            "umount2": 166,
            "pivot_root": 155,
            "chroot": 161,
            "unshare": 272,
            "setns": 308,
            "open_tree": 428,
            "move_mount": 429,
            "fsopen": 430,
            "fsconfig": 431,
            "fsmount": 432,
            "fspick": 433,
            "mount_setattr": 442,
            "init_module": 175,
            "finit_module": 313,
            "delete_module": 176,
            "kexec_load": 246,
            "kexec_file_load": 320,
            "reboot": 169,
            "swapon": 167,
            "swapoff": 168,
            "bpf": 321,
            "perf_event_open": 298,
            "userfaultfd": 323,
            "keyctl": 250,
            "add_key": 248,
            "request_key": 249,
            "iopl": 172,
            "ioperm": 173,
            "settimeofday": 164,
            "clock_settime": 227,
            "clock_adjtime": 305,
            "adjtimex": 159,
            "sethostname": 170,
            "setdomainname": 171,
            "acct": 163,
            "quotactl": 179,
            "syslog": 103,
            "fanotify_init": 300,
            "name_to_handle_at": 303,
            "prctl": 157,
        },
    ),
    "aarch64": (
        0xC00000B7,
        {
            "clone": 220,
            "clone3": 435,
            "execve": 221,
            "execveat": 281,
            "kill": 129,
            "tkill": 130,
            "tgkill": 131,
            "rt_sigqueueinfo": 138,
            "rt_tgsigqueueinfo": 240,
            "pidfd_open": 434,
            "pidfd_send_signal": 424,
            "pidfd_getfd": 438,
            "ptrace": 117,
            "process_vm_readv": 270,
            "process_vm_writev": 271,
            "process_madvise": 440,
            "socket": 198,
            "socketpair": 199,
            "io_uring_setup": 425,
            "io_uring_enter": 426,
            "io_uring_register": 427,
            "openat": 56,
            "openat2": 437,
            "open_by_handle_at": 265,
            "unlinkat": 35,
            "renameat": 38,
            "renameat2": 276,
            "mkdirat": 34,
            "linkat": 37,
            "symlinkat": 36,
            "mknodat": 33,
            "fchmod": 52,
            "fchmodat": 53,
            "fchmodat2": 452,
            "fchown": 55,
            "fchownat": 54,
            "truncate": 45,
            "ftruncate": 46,
            "fallocate": 47,
            "utimensat": 88,
            "setxattr": 5,
            "lsetxattr": 6,
            "fsetxattr": 7,
            "removexattr": 14,
            "lremovexattr": 15,
            "fremovexattr": 16,
            "mount": 40,
            "umount2": 39,
            "pivot_root": 41,
            "chroot": 51,
            "unshare": 97,
            "setns": 268,
            "open_tree": 428,
            "move_mount": 429,
            "fsopen": 430,
            "fsconfig": 431,
            "fsmount": 432,
            "fspick": 433,
            "mount_setattr": 442,
            "init_module": 105,
            "finit_module": 273,
            "delete_module": 106,
            "kexec_load": 104,
            "kexec_file_load": 294,
            "reboot": 142,
            "swapon": 224,
            "swapoff": 225,
            "bpf": 280,
            "perf_event_open": 241,
            "userfaultfd": 282,
            "keyctl": 219,
            "add_key": 217,
            "request_key": 218,
            "settimeofday": 170,
            "clock_settime": 112,
            "clock_adjtime": 266,
            "adjtimex": 171,
            "sethostname": 161,
            "setdomainname": 162,
            "acct": 89,
            "quotactl": 60,
            "syslog": 116,
            "fanotify_init": 262,
            "name_to_handle_at": 264,
            "prctl": 167,
        },
    ),
}

# Calls checked on an argument rather than refused outright.
_THREADS_ONLY = ("clone",)
_SELF_ONLY = ("kill", "tkill", "tgkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo")
_READ_ONLY_OPEN = {"open": 1, "openat": 2}  # name -> index of the flags argument
_ENOSYS = ("clone3", "openat2")
_SPECIAL = frozenset(_THREADS_ONLY + _SELF_ONLY + tuple(_READ_ONLY_OPEN) + _ENOSYS + ("prctl",))


class _SockFilter(ctypes.Structure):
    _fields_ = (("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte), ("k", ctypes.c_uint))


class _SockFprog(ctypes.Structure):
    _fields_ = (("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_SockFilter)))


def _stmt(code: int, k: int) -> tuple[int, int, int, int]:
    return (code, 0, 0, k)


def _jump(code: int, k: int, jt: int, jf: int) -> tuple[int, int, int, int]:
    return (code, jt, jf, k)


def build_program(machine: str, pid: int) -> list[tuple[int, int, int, int]]:
    """The filter for ``machine`` (``platform.machine()``) in a process whose pid is ``pid``."""
    audit_arch, numbers = _ARCHES[machine]
    deny = _RET_ERRNO | errno.EPERM
    program = [
        _stmt(_LD_W_ABS, _OFF_ARCH),
        _jump(_JEQ_K, audit_arch, 1, 0),
        _stmt(_RET_K, _RET_KILL_PROCESS),
        _stmt(_LD_W_ABS, _OFF_NR),
    ]
    if machine == "x86_64":
        program += [_jump(_JGE_K, _X32_SYSCALL_BIT, 0, 1), _stmt(_RET_K, _RET_KILL_PROCESS)]
    for name, nr in numbers.items():
        if name in _SPECIAL:
            continue
        program += [_jump(_JEQ_K, nr, 0, 1), _stmt(_RET_K, deny)]
    for name in _ENOSYS:
        program += [_jump(_JEQ_K, numbers[name], 0, 1), _stmt(_RET_K, _RET_ERRNO | errno.ENOSYS)]
    # Each checked call below ends in a return, so the accumulator can be reused freely.
    for name in _THREADS_ONLY:
        program += [
            _jump(_JEQ_K, numbers[name], 0, 4),
            _stmt(_LD_W_ABS, _arg_low(0)),
            _jump(_JSET_K, _CLONE_THREAD, 0, 1),
            _stmt(_RET_K, _RET_ALLOW),
            _stmt(_RET_K, deny),
        ]
    for name in _SELF_ONLY:
        program += [
            _jump(_JEQ_K, numbers[name], 0, 4),
            _stmt(_LD_W_ABS, _arg_low(0)),
            _jump(_JEQ_K, pid, 0, 1),
            _stmt(_RET_K, _RET_ALLOW),
            _stmt(_RET_K, deny),
        ]
    for name, flags_index in _READ_ONLY_OPEN.items():
        if name in numbers:
            program += [
                _jump(_JEQ_K, numbers[name], 0, 4),
                _stmt(_LD_W_ABS, _arg_low(flags_index)),
                _jump(_JSET_K, _OPEN_WRITE_FLAGS, 0, 1),
                _stmt(_RET_K, _RET_ERRNO | errno.EACCES),
                _stmt(_RET_K, _RET_ALLOW),
            ]
    program += [
        _jump(_JEQ_K, numbers["prctl"], 0, 4),
        _stmt(_LD_W_ABS, _arg_low(0)),
        _jump(_JEQ_K, _PR_SET_PDEATHSIG, 0, 1),
        _stmt(_RET_K, deny),
        _stmt(_RET_K, _RET_ALLOW),
        _stmt(_RET_K, _RET_ALLOW),
    ]
    return program


def supported() -> bool:
    return sys.platform.startswith("linux") and platform.machine() in _ARCHES


def install() -> str:
    """Install the filter on this process (needs ``no_new_privs`` or CAP_SYS_ADMIN); one report line."""
    if not supported():
        return f"system-call filter: NOT installed (no seccomp filter for {sys.platform}/{platform.machine()})"
    program = build_program(platform.machine(), os.getpid())
    filters = (_SockFilter * len(program))(*(_SockFilter(code, jt, jf, k) for code, jt, jf, k in program))
    fprog = _SockFprog(len(program), ctypes.cast(filters, ctypes.POINTER(_SockFilter)))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl.argtypes = (ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p, ctypes.c_ulong, ctypes.c_ulong)
    if libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) != 0:
        reason = os.strerror(ctypes.get_errno())
        return f"system-call filter: NOT installed (seccomp failed: {reason})"
    return "system-call filter (seccomp): no new processes, sockets, file changes or signals to others"
