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
* other processes: ``ptrace``, ``process_vm_readv/writev``, ``pidfd_*``,
  signals to any process but the worker itself, and ``prlimit64`` on any
  process but itself (lowering the limits of the server or of another worker
  of the same user);
* inter-process communication that outlives the process or reaches past it:
  System V shared memory, message queues and semaphores (``shmget``, ``shmat``,
  ``shmctl``, ``shmdt``, ``msgget``, ``msgsnd``, ``msgrcv``, ``msgctl``,
  ``semget``, ``semop``, ``semtimedop``, ``semctl``) and POSIX message queues
  (``mq_open`` and the rest). The ``ipc`` multiplexer exists only on 32-bit
  ABIs, whose calls kill the process. POSIX shared memory and semaphores are
  files under ``/dev/shm``: creating one is a write-open, refused below, and
  Landlock refuses reading an existing one;
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

from sandbox.worker.syscalls import ARCHES

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

# Calls checked on an argument rather than refused outright.
_THREADS_ONLY = ("clone",)
_SELF_ONLY = ("kill", "tkill", "tgkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo")
_SELF_OR_ZERO = ("prlimit64",)  # pid 0 means the caller: glibc's getrlimit/setrlimit use it
_READ_ONLY_OPEN = {"open": 1, "openat": 2}  # name -> index of the flags argument
_ENOSYS = ("clone3", "openat2")
_SPECIAL = frozenset(_THREADS_ONLY + _SELF_ONLY + _SELF_OR_ZERO + tuple(_READ_ONLY_OPEN) + _ENOSYS + ("prctl",))


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
    audit_arch, numbers = ARCHES[machine]
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
    for name in _SELF_OR_ZERO:
        program += [
            _jump(_JEQ_K, numbers[name], 0, 5),
            _stmt(_LD_W_ABS, _arg_low(0)),
            _jump(_JEQ_K, 0, 2, 0),
            _jump(_JEQ_K, pid, 1, 0),
            _stmt(_RET_K, deny),
            _stmt(_RET_K, _RET_ALLOW),
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
    return sys.platform.startswith("linux") and platform.machine() in ARCHES


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
    return "system-call filter (seccomp): no new processes, sockets, file changes, IPC objects or signals to others"
