"""Tools for the "escaped worker" tests: host IPC objects to aim at, a BPF evaluator, and the worker's channel.

Kept out of the test module so that it reads as the list of properties it checks.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import re
import socket
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

IPC_CREAT = 0o1000
IPC_EXCL = 0o2000
IPC_RMID = 0
SYSVIPC = Path("/proc/sysvipc")

_libc = ctypes.CDLL(None, use_errno=True)
_libc.shmat.restype = ctypes.c_void_p
_libc.shmat.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_int)


def _ok(value: int, what: str) -> int:
    if value == -1:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return value


def sysvipc_objects() -> set[tuple[str, str, str]]:
    """Every System V object of this IPC namespace: (kind, key, id), as ``ipcs`` lists them."""
    found = set()
    for kind in ("shm", "msg", "sem"):
        for line in (SYSVIPC / kind).read_text().splitlines()[1:]:
            key, ident = line.split()[:2]
            found.add((kind, key, ident))
    return found


@contextlib.contextmanager
def host_ipc_objects(canary: bytes) -> Iterator[dict[str, Any]]:
    """One of each kind of IPC object, open to every user (so that only confinement can refuse them).

    A System V shared-memory segment holding ``canary``, a message queue holding
    it as a message, a semaphore set, a POSIX message queue and a POSIX shared
    memory file. Yields their keys, ids and names; removes them all afterwards.
    """
    base = 0x524C0000 | (os.getpid() & 0xFFFF)  # "RL" + pid: unlikely to collide with anyone's keys
    shm_id = _ok(_libc.shmget(base, 4096, IPC_CREAT | IPC_EXCL | 0o666), "shmget")
    msg_id = sem_id = mq = -1
    mq_name = f"/rlm-escape-{os.getpid()}"
    posix_shm = Path(f"/dev/shm/rlm-escape-{os.getpid()}")
    try:
        address = _libc.shmat(shm_id, None, 0)
        ctypes.memmove(address, canary, len(canary))
        _libc.shmdt(ctypes.c_void_p(address))
        msg_id = _ok(_libc.msgget(base + 1, IPC_CREAT | IPC_EXCL | 0o666), "msgget")
        message = struct.pack("l", 1) + canary
        _ok(_libc.msgsnd(msg_id, message, len(canary), 0), "msgsnd")
        sem_id = _ok(_libc.semget(base + 2, 1, IPC_CREAT | IPC_EXCL | 0o666), "semget")
        mq = _ok(_libc.mq_open(mq_name.encode(), os.O_CREAT | os.O_RDWR, 0o666, None), "mq_open")
        _ok(_libc.mq_send(mq, canary, len(canary), 0), "mq_send")
        posix_shm.write_bytes(canary)
        posix_shm.chmod(0o644)
        yield {
            "shm_key": base,
            "shm_id": shm_id,
            "msg_key": base + 1,
            "msg_id": msg_id,
            "sem_key": base + 2,
            "sem_id": sem_id,
            "mq_name": mq_name,
            "posix_shm": str(posix_shm),
            "new_mq": f"/rlm-escape-new-{os.getpid()}",
            "new_posix_shm": f"/dev/shm/rlm-escape-new-{os.getpid()}",
        }
    finally:
        _libc.shmctl(shm_id, IPC_RMID, None)
        if msg_id >= 0:
            _libc.msgctl(msg_id, IPC_RMID, None)
        if sem_id >= 0:
            _libc.semctl(sem_id, 0, IPC_RMID)
        if mq >= 0:
            _libc.mq_close(mq)
        _libc.mq_unlink(mq_name.encode())
        posix_shm.unlink(missing_ok=True)


def posix_queue_exists(name: str) -> bool:
    mq = _libc.mq_open(name.encode(), os.O_RDONLY)
    if mq >= 0:
        _libc.mq_close(mq)
        return True
    return False


# -- the seccomp filter, evaluated ----------------------------------------------------------------


def run_filter(program: list[tuple[int, int, int, int]], arch: int, nr: int, args: tuple[int, ...] = ()) -> int:
    """What a classic-BPF seccomp program returns for one call: enough of the BPF machine for our filters."""
    words = {0: nr, 4: arch}
    for index, value in enumerate((*args, 0, 0, 0, 0, 0, 0)[:6]):
        words[16 + 8 * index] = value & 0xFFFFFFFF
        words[20 + 8 * index] = (value >> 32) & 0xFFFFFFFF
    accumulator, pc = 0, 0
    while True:
        code, jt, jf, k = program[pc]
        if code == 0x20:  # BPF_LD | BPF_W | BPF_ABS
            accumulator = words[k]
            pc += 1
        elif code == 0x06:  # BPF_RET | BPF_K
            return k
        elif code in (0x15, 0x35, 0x45):  # BPF_JMP | JEQ, JGE, JSET (with K)
            taken = {0x15: accumulator == k, 0x35: accumulator >= k, 0x45: bool(accumulator & k)}[code]
            pc += 1 + (jt if taken else jf)
        else:
            raise AssertionError(f"instruction {code:#x} is not one this evaluator knows")


def header_numbers(path: str) -> dict[str, int]:
    """System-call numbers from a kernel header (``#define __NR_name N``, or ``__NR3264_`` in asm-generic)."""
    numbers: dict[str, int] = {}
    for match in re.finditer(r"#define __NR(?:3264)?_(\w+)\s+(\d+)\b", Path(path).read_text()):
        numbers.setdefault(match.group(1), int(match.group(2)))
    return numbers


# -- the worker's channel, from outside ---------------------------------------------------------

_SYS_PIDFD_GETFD = 438  # the same on x86-64 and arm64


def channel_of(pid: int) -> socket.socket:
    """A duplicate of a worker's end of its channel, taken the way a debugger would (``pidfd_getfd``).

    What is written here reaches the server exactly as if the worker had written
    it: this is what code that escaped inside the worker could send. Needs the
    right to ptrace the worker (root with CAP_SYS_PTRACE: the worker is not
    dumpable); raises PermissionError otherwise.
    """
    fds = [int(fd) for fd in os.listdir(f"/proc/{pid}/fd") if int(fd) > 2]
    sockets = [fd for fd in fds if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")]
    assert len(sockets) == 1, sockets
    pidfd = os.pidfd_open(pid)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.syscall.restype = ctypes.c_long
        fd = libc.syscall(_SYS_PIDFD_GETFD, pidfd, sockets[0], 0)
        if fd < 0:
            err = ctypes.get_errno()
            raise PermissionError(err, f"pidfd_getfd on the worker: {os.strerror(err)}")
    finally:
        os.close(pidfd)
    return socket.socket(fileno=fd)


def frame(body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + body


def result_frame(request_id: object, stdout: str) -> bytes:
    """A well-formed answer to an ``exec`` request, as the worker sends it."""
    message = {
        "op": "result",
        "id": request_id,
        "stdout": stdout,
        "output_chars": len(stdout),
        "error": None,
        "final": None,
        "variables": [],
        "elapsed_ms": 1.0,
        "timed_out": False,
        "cancelled": False,
        "notes": [],
    }
    return frame(json.dumps(message).encode())


def llm_frame(corpus: object, prompts: list[str] | None = None) -> bytes:
    """A sub-call request as the worker sends it while code runs, with ``corpus`` as its corpus spans."""
    message = {"op": "llm", "id": 1, "prompts": prompts or ["a prompt"], "model": None, "corpus": corpus}
    return frame(json.dumps(message).encode())


def loaded_frame(request_id: int, skipped: object, documents: int = 1) -> bytes:
    """A load report for ``documents`` one-character documents, with ``skipped`` as what it says was left out."""
    message = {
        "op": "loaded",
        "id": request_id,
        "skipped": skipped,
        "type": "list[str]",
        "documents": documents,
        "chars": documents,
        "lines": documents,
        "document_chars": [1] * documents,
        "preview": "x",
    }
    return frame(json.dumps(message).encode())


def hostile_load_frames(request_id: int) -> dict[str, bytes]:
    """What an escaped worker might answer to a load of one document (request ``request_id``), by name."""
    without_skipped = json.loads(loaded_frame(request_id, [])[4:])
    del without_skipped["skipped"]
    return {
        "asks-for-more-than-was-sent": frame(json.dumps({"op": "load_more", "id": request_id, "done": 200}).encode()),
        "skips-a-document-not-in-the-load": loaded_frame(request_id, [[1, "not valid utf-8"]]),
        "skips-a-document-twice": loaded_frame(request_id, [[0, "a"], [0, "b"]]),
        "skips-with-a-mistyped-reason": loaded_frame(request_id, [[0, 5]]),
        "skips-with-a-bool-position": loaded_frame(request_id, [[True, "a"]]),
        "skipped-is-not-a-list": loaded_frame(request_id, {"0": "a"}),
        "no-skipped-field": frame(json.dumps(without_skipped).encode()),
    }


def hostile_frames(last_id: int) -> dict[str, bytes]:
    """What an escaped worker might write on its channel, by name; ``last_id`` is the last request it answered."""
    nested = b'{"op":"result","id":%d,"stdout":' % (last_id + 1) + b"[" * 20_000 + b"]" * 20_000 + b"}"
    deep: list[Any] = []
    for _ in range(16):
        deep = [deep]  # 17 lists in an object: 18 levels, two past the bound
    just_too_deep = json.dumps({"op": "result", "id": last_id + 1, "stdout": deep})
    return {
        "nested-past-the-recursion-limit": frame(nested),
        "nested-past-the-bound": frame(just_too_deep.encode()),
        "garbage": frame(b"\x00\xffnot json at all"),
        "oversize": struct.pack(">I", 2**31) + b"{}",
        "earlier-reply-again": result_frame(last_id, "an old answer\n"),
        "wrong-id": result_frame(987_654, "a made-up answer\n"),
        "no-id": frame(b'{"op":"result","stdout":"x"}'),
        "wrong-kind": frame(json.dumps({"op": "loaded", "id": last_id + 1}).encode()),
        "mistyped-field": frame(json.dumps({"op": "result", "id": last_id + 1, "stdout": 5}).encode()),
        # Sub-call requests whose corpus spans (sandbox.worker.locate, checked by sandbox.serving) are not what the
        # worker's own code sends: one prompt, so index 0 only, and [index, start, end, ...] with start <= end.
        "spans-for-a-prompt-not-sent": llm_frame([[1, 0, 60]]),
        "spans-out-of-order": llm_frame([[1, 0, 60], [0, 0, 60]], ["a prompt", "another"]),
        "spans-backwards": llm_frame([[0, 60, 10]]),
        "spans-half-a-pair": llm_frame([[0, 10]]),
        "spans-not-offsets": llm_frame([[0, "10", 60]]),
        "spans-negative": llm_frame([[0, -1, 60]]),
        "spans-too-many-pairs": llm_frame([[0, *range(40)]]),
        "spans-not-a-list": llm_frame({"0": [0, 60]}),
        "spans-field-missing": frame(json.dumps({"op": "llm", "id": 1, "prompts": ["p"], "model": None}).encode()),
    }
