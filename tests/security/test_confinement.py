"""The worker process as the boundary: what holds even if code got past RestrictedPython.

These tests run *unrestricted* Python in a process confined exactly as a worker
confines itself (``sandbox.worker.confine.apply``), as if an escape from the policy
had already happened, and check that the operating system still says no: no
new processes (root included), no sockets, no file changes, no reads outside
the interpreter's library, no signals or ptrace to other processes, no IPC
object of anyone else's and none left behind, no limit raised. Then they look
at a real worker from the outside: its descriptors, limits, user, namespaces,
filter and process group. The last section makes a real worker's channel carry
what an escaped worker could write on it, and checks that the server kills and
replaces the worker, says so, and keeps every later answer matched to its call.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
from escape import (
    channel_of,
    header_numbers,
    host_ipc_objects,
    hostile_frames,
    hostile_load_frames,
    posix_queue_exists,
    result_frame,
    run_filter,
    sysvipc_objects,
)
from helpers import call, children

from sandbox import Sandbox, SandboxLimits
from sandbox.process import _BOOTSTRAP, _PACKAGE_ROOT
from sandbox.worker.seccomp import build_program
from sandbox.worker.syscalls import ARCHES

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the confinement measured here is Linux's")

PRELUDE = """
import ctypes, json, os, socket, sys, time
sys.path[0:0] = [p for p in sys.argv.pop(1).split(os.pathsep) if p]
from sandbox.worker import confine
sibling = os.fork()  # before confinement: a process of the same user to try signals and ptrace on
if sibling == 0:
    os.close(1)
    os.close(2)
    time.sleep(60)
    os._exit(0)
report = confine.apply(
    confine.Confinement(memory_bytes=1 << 30, cpu_seconds=600, readable=confine.interpreter_directories())
)
results = {"sibling": sibling}
def attempt(name, action):
    try:
        results[name] = "ALLOWED " + repr(action())[:200]
    except BaseException as exc:
        results[name] = f"refused {type(exc).__name__}: {exc}"[:300]
libc = ctypes.CDLL(None, use_errno=True)
def checked(value):
    if value != 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    return value
"""

PAYLOAD = """
base = sys.argv[1]
def fork():
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    return pid
attempt("fork", fork)
attempt("spawn", lambda: os.posix_spawn("/bin/true", ["true"], {}))
attempt("socket_inet", lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM))
attempt("socket_unix", lambda: socket.socket(socket.AF_UNIX, socket.SOCK_STREAM))
attempt("read_secret", lambda: open(base + "/secret.txt").read())
attempt("read_sibling_environ", lambda: open(f"/proc/{sibling}/environ", "rb").read())
attempt("read_passwd", lambda: open("/etc/passwd").read())
attempt("list_tmp", lambda: os.listdir("/tmp"))
attempt("create_file", lambda: open(base + "/new.txt", "w"))
attempt("truncate_file", lambda: open(base + "/victim.txt", "r+"))
attempt("unlink", lambda: os.unlink(base + "/victim.txt"))
attempt("rename", lambda: os.rename(base + "/victim.txt", base + "/moved.txt"))
attempt("mkdir", lambda: os.mkdir(base + "/dir"))
attempt("chmod", lambda: os.chmod(base + "/mine.txt", 0o777))
attempt("signal_sibling", lambda: os.kill(sibling, 0))
attempt("signal_self", lambda: os.kill(os.getpid(), 0))
attempt("ptrace_sibling", lambda: checked(libc.ptrace(16, sibling, 0, 0)))
attempt("unshare", lambda: checked(libc.unshare(0x00020000)))
attempt("disarm_death_signal", lambda: checked(libc.prctl(1, 0, 0, 0, 0)))
attempt("codec_import", lambda: "x".encode("cp037"))

# IPC: the host's objects (open to every user) and new ones, System V and POSIX.
host = json.loads(sys.argv[2])
libc.shmat.restype = ctypes.c_void_p
libc.shmat.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_int)
def ipc(value):
    if value in (-1, ctypes.c_void_p(-1).value):
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    return value
buf = ctypes.create_string_buffer(b"\\x01" + b"\\x00" * 255)  # a message of type 1, a stat buffer
sembuf = ctypes.create_string_buffer(b"\\x00\\x00\\x01\\x00\\x00\\x08")  # semaphore 0, +1, IPC_NOWAIT
attempt("shm_create", lambda: ipc(libc.shmget(0, 4096, 0o1000 | 0o600)))
attempt("shm_find_host", lambda: ipc(libc.shmget(host["shm_key"], 0, 0)))
attempt("shm_attach_host", lambda: ipc(libc.shmat(host["shm_id"], None, 0o10000)))
attempt("shm_stat_host", lambda: ipc(libc.shmctl(host["shm_id"], 2, buf)))
attempt("msg_create", lambda: ipc(libc.msgget(0, 0o1000 | 0o600)))
attempt("msg_find_host", lambda: ipc(libc.msgget(host["msg_key"], 0)))
attempt("msg_receive_host", lambda: ipc(libc.msgrcv(host["msg_id"], buf, 64, 0, 0o4000)))
attempt("msg_send_host", lambda: ipc(libc.msgsnd(host["msg_id"], buf, 8, 0o4000)))
attempt("sem_create", lambda: ipc(libc.semget(0, 1, 0o1000 | 0o600)))
attempt("sem_find_host", lambda: ipc(libc.semget(host["sem_key"], 0, 0)))
attempt("sem_op_host", lambda: ipc(libc.semop(host["sem_id"], sembuf, 1)))
attempt("sem_timedop_host", lambda: ipc(libc.semtimedop(host["sem_id"], sembuf, 1, None)))
attempt("sem_ctl_host", lambda: ipc(libc.semctl(host["sem_id"], 0, 12)))
attempt("mq_create", lambda: ipc(libc.mq_open(host["new_mq"].encode(), os.O_CREAT | os.O_RDWR, 0o600, None)))
attempt("mq_open_host", lambda: ipc(libc.mq_open(host["mq_name"].encode(), os.O_RDONLY)))
attempt("posix_shm_create", lambda: os.open(host["new_posix_shm"], os.O_CREAT | os.O_RDWR, 0o600))
attempt("posix_shm_read_host", lambda: open(host["posix_shm"], "rb").read())

# Limits: each one claimed, raised by setrlimit and by prlimit (on itself, by pid 0 and by its pid).
import resource
limits = {}
for name in ("RLIMIT_AS", "RLIMIT_CPU", "RLIMIT_CORE", "RLIMIT_FSIZE", "RLIMIT_NOFILE", "RLIMIT_NPROC"):
    kind = getattr(resource, name)
    limits[name] = resource.getrlimit(kind)
    if limits[name][1] == resource.RLIM_INFINITY:
        continue  # nothing to raise (and the test fails on the limit itself)
    up = limits[name][1] + 1
    attempt("setrlimit_up_" + name, lambda kind=kind, up=up: resource.setrlimit(kind, (up, up)))
    attempt("prlimit_up_" + name, lambda kind=kind, up=up: resource.prlimit(0, kind, (up, up)))
    attempt("prlimit_self_up_" + name, lambda kind=kind, up=up: resource.prlimit(os.getpid(), kind, (up, up)))
attempt("prlimit_sibling", lambda: resource.prlimit(sibling, resource.RLIMIT_NOFILE, (1, 1)))
results["limits"] = limits
print(json.dumps({"report": report, "results": results}), flush=True)
attempt("exec", lambda: os.execv("/bin/true", ["true"]))  # last: if it worked, nothing after it runs
print(json.dumps({"report": report, "results": results}), flush=True)
"""

NOBODY = 65534


def unprivileged_interpreter() -> tuple[str, str] | None:
    """An interpreter of our version, with our site-packages, that a user owning nothing can run."""
    from sandbox.worker.confine import reachable_by_others

    site = sysconfig.get_paths()["purelib"]
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    for candidate in (sys.executable, f"/usr/bin/python{version}"):
        real = os.path.realpath(candidate)
        if not os.path.exists(real):
            continue
        probe = subprocess.run(
            [real, "-I", "-c", "import sys, sysconfig; print(sysconfig.get_paths()['stdlib'])"],
            capture_output=True,
            text=True,
        )
        stdlib = probe.stdout.strip()
        # Only the standard library and the sandbox package are needed: confinement imports nothing else.
        if probe.returncode == 0 and all(reachable_by_others(p) for p in (real, stdlib, _PACKAGE_ROOT)):
            return real, site if reachable_by_others(site) else ""
    return None


def interpreter_for(mode: str) -> tuple[str, str, int | None]:
    """The interpreter, import path and user (None: ours) to start a confined process with."""
    if mode != "unprivileged":
        return sys.executable, _PACKAGE_ROOT, None
    found = unprivileged_interpreter()
    if os.geteuid() != 0 or found is None:
        pytest.skip("needs root to start a process as an unprivileged user, and an interpreter it can read")
    python, site = found
    return python, os.pathsep.join([_PACKAGE_ROOT, site]), NOBODY


def run_confined(base: Path, mode: str, host: dict[str, object]) -> tuple[list[str], dict[str, Any]]:
    """Run the escape attempts after confining the process like a worker; return its report and results."""
    python, path, user = interpreter_for(mode)
    done = subprocess.run(
        [python, "-I", "-B", "-c", PRELUDE + PAYLOAD, path, str(base), json.dumps(host)],
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": os.defpath, "LANG": "C.UTF-8"},
        start_new_session=True,
        user=user,
        group=user,
        extra_groups=[] if user is not None else None,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    with contextlib.suppress(ProcessLookupError):
        os.kill(out["results"]["sibling"], signal.SIGKILL)
    return out["report"], out["results"]


@dataclass
class Escape:
    """What one confined process reported, tried and left behind."""

    report: list[str]
    results: dict[str, Any]
    base: Path
    host: dict[str, Any]
    """The host's IPC objects it aimed at."""
    ipc_before: set[tuple[str, str, str]]
    ipc_after: set[tuple[str, str, str]]
    shm_files_before: set[str]
    shm_files_after: set[str]
    queue_left: bool
    """Whether the POSIX message queue it tried to create exists afterwards."""


@pytest.fixture(scope="module", params=["as-started", "unprivileged"])
def escaped(request: pytest.FixtureRequest) -> Iterator[Escape]:
    """One confined process tries everything an escaped worker would want to do.

    Its targets are open to any user (a world-writable directory, world-readable files,
    a process of its own user, IPC objects of mode 0666), so that what refuses is the
    confinement, not permissions. "as-started" runs as the test runs (root here: the
    worker then switches to nobody); "unprivileged" starts as nobody, the way a worker
    of a non-root server starts.
    """
    base = Path(tempfile.mkdtemp(prefix="rlm-escape-", dir="/tmp"))
    base.chmod(0o777)
    for name, mode in (("secret.txt", 0o644), ("victim.txt", 0o666), ("mine.txt", 0o644)):
        (base / name).write_text("CANARY-SECRET-FILE" if name == "secret.txt" else "keep me")
        (base / name).chmod(mode)
    if os.geteuid() == 0:
        os.chown(base / "mine.txt", NOBODY, NOBODY)  # its owner may chmod it: only the filter refuses
    try:
        with host_ipc_objects(b"CANARY-HOST-IPC") as host:
            ipc_before, shm_before = sysvipc_objects(), set(os.listdir("/dev/shm"))
            report, results = run_confined(base, request.param, host)
            ipc_after, shm_after = sysvipc_objects(), set(os.listdir("/dev/shm"))
            queue_left = posix_queue_exists(host["new_mq"])
        yield Escape(report, results, base, host, ipc_before, ipc_after, shm_before, shm_after, queue_left)
    finally:
        shutil.rmtree(base, ignore_errors=True)


REFUSED_EVERYWHERE = [
    "fork",
    "spawn",
    "exec",
    "socket_inet",
    "socket_unix",
    "create_file",
    "truncate_file",
    "unlink",
    "rename",
    "mkdir",
    "chmod",
    "signal_sibling",
    "ptrace_sibling",
    "unshare",
    "disarm_death_signal",
]


@pytest.mark.parametrize("action", REFUSED_EVERYWHERE)
def test_escaped_code_still_cannot(escaped: Escape, action: str) -> None:
    assert "system-call filter (seccomp)" in " ".join(escaped.report), escaped.report
    outcome = escaped.results.get(action, "ALLOWED (the process was replaced)")
    assert outcome.startswith("refused"), f"{action}: {outcome}"


def test_escaped_code_changed_no_file(escaped: Escape) -> None:
    base = escaped.base
    assert sorted(p.name for p in base.iterdir()) == ["mine.txt", "secret.txt", "victim.txt"]
    assert (base / "victim.txt").read_text() == "keep me"
    assert oct((base / "mine.txt").stat().st_mode & 0o777) == "0o644"


@pytest.mark.parametrize(
    "action", ["read_secret", "read_sibling_environ", "read_passwd", "list_tmp", "posix_shm_read_host"]
)
def test_escaped_code_reads_nothing_outside_the_interpreter(escaped: Escape, action: str) -> None:
    if not any("Landlock ABI" in line for line in escaped.report):
        pytest.skip(f"Landlock is not available on this kernel: {escaped.report}")
    assert escaped.results[action].startswith("refused"), f"{action}: {escaped.results[action]}"


def test_what_the_worker_needs_still_works(escaped: Escape) -> None:
    assert escaped.results["signal_self"] == "ALLOWED None"
    assert escaped.results["codec_import"] == "ALLOWED b'\\xa7'"  # a codec imported after confinement


def test_user_and_process_limit(escaped: Escape, request: pytest.FixtureRequest) -> None:
    report = escaped.report
    started_as_root = os.geteuid() == 0 and request.node.callspec.params["escaped"] == "as-started"
    switched = [line for line in report if line.startswith("user:")]
    assert switched == (
        ["user: uid 65534, gid 65534, no supplementary groups (started as root)"] if started_as_root else []
    )
    assert "RLIMIT_NPROC=0" in report, report


def test_filter_refuses_foreign_system_call_conventions() -> None:
    """The filter checks the architecture first and kills on a mismatch (32-bit calls on x86-64)."""
    for machine, arch in (("x86_64", 0xC000003E), ("aarch64", 0xC00000B7)):
        program = build_program(machine, pid=1234)
        assert program[0] == (0x20, 0, 0, 4)  # load seccomp_data.arch
        assert program[1] == (0x15, 1, 0, arch)
        assert program[2] == (0x06, 0, 0, 0x80000000)  # kill the process
        assert program[-1] == (0x06, 0, 0, 0x7FFF0000)  # everything not listed is allowed
        jumps = [(i, jt, jf) for i, (code, jt, jf, _) in enumerate(program) if code & 0x07 == 0x05]
        assert all(i + 1 + max(jt, jf) < len(program) for i, jt, jf in jumps)  # every jump lands in the program
        assert run_filter(program, 0x40000003, 117) == _KILL  # i386's ipc() multiplexer: a foreign ABI


# -- the escaped worker: IPC and limits -----------------------------------------------------------

IPC_ATTEMPTS = [
    "shm_create",
    "shm_find_host",
    "shm_attach_host",
    "shm_stat_host",
    "msg_create",
    "msg_find_host",
    "msg_receive_host",
    "msg_send_host",
    "sem_create",
    "sem_find_host",
    "sem_op_host",
    "sem_timedop_host",
    "sem_ctl_host",
    "mq_create",
    "mq_open_host",
    "posix_shm_create",
]
CLAIMED_LIMITS = ["RLIMIT_AS", "RLIMIT_CPU", "RLIMIT_CORE", "RLIMIT_FSIZE", "RLIMIT_NOFILE", "RLIMIT_NPROC"]
IPC_CALLS = [
    "shmget",
    "shmat",
    "shmctl",
    "shmdt",
    "semget",
    "semop",
    "semctl",
    "semtimedop",
    "msgget",
    "msgsnd",
    "msgrcv",
    "msgctl",
    "mq_open",
    "mq_unlink",
    "mq_timedsend",
    "mq_timedreceive",
    "mq_notify",
    "mq_getsetattr",
]
_KILL, _ALLOW, _EPERM = 0x80000000, 0x7FFF0000, 0x00050000 | errno.EPERM


@pytest.mark.parametrize("action", IPC_ATTEMPTS)
def test_escaped_code_reaches_no_ipc_object(escaped: Escape, action: str) -> None:
    """System V shared memory, queues and semaphores, POSIX queues and shared memory: the host's
    (mode 0666, holding a canary) are out of reach, and no new one can be made."""
    outcome = escaped.results[action]
    assert outcome.startswith("refused"), f"{action}: {outcome}"


def test_escaped_code_leaves_no_ipc_object_behind(escaped: Escape) -> None:
    """What ``ipcs`` would list (``/proc/sysvipc``), ``/dev/shm`` and the POSIX queue, after it exited."""
    assert escaped.ipc_after == escaped.ipc_before
    assert escaped.shm_files_after == escaped.shm_files_before
    assert not escaped.queue_left


def test_escaped_code_has_its_own_ipc_namespace(escaped: Escape) -> None:
    line = next(line for line in escaped.report if line.startswith("IPC:"))
    if "NOT isolated" in line:
        pytest.skip(f"this kernel refuses the namespace here (the filter above holds regardless): {line}")
    assert line == "IPC: isolated (new IPC namespace)"


@pytest.mark.parametrize("name", CLAIMED_LIMITS)
def test_escaped_code_cannot_raise_a_limit(escaped: Escape, name: str) -> None:
    """Hard = soft, so neither setrlimit nor prlimit (by pid 0 or its own pid) can raise it."""
    soft, hard = escaped.results["limits"][name]
    assert soft == hard != resource.RLIM_INFINITY, (name, soft, hard)
    for how in ("setrlimit_up_", "prlimit_up_", "prlimit_self_up_"):
        assert escaped.results[how + name].startswith("refused"), f"{how}{name}: {escaped.results[how + name]}"


def test_escaped_code_cannot_change_a_neighbours_limits(escaped: Escape) -> None:
    """prlimit on another process of its own user (the server of a non-root install, another worker)."""
    assert escaped.results["prlimit_sibling"].startswith("refused"), escaped.results["prlimit_sibling"]


@pytest.mark.parametrize("machine", ["x86_64", "aarch64"])
def test_filter_verdicts_for_ipc_and_limits(machine: str) -> None:
    """The filter itself, evaluated for both architectures (arm64 cannot be run here)."""
    arch, numbers = ARCHES[machine]
    program = build_program(machine, pid=1234)
    for name in IPC_CALLS:
        assert run_filter(program, arch, numbers[name], (0, 4096, 0o1000)) == _EPERM, name
    prlimit = numbers["prlimit64"]
    assert run_filter(program, arch, prlimit, (0, 9, 0, 0)) == _ALLOW  # its own (getrlimit, setrlimit)
    assert run_filter(program, arch, prlimit, (1234, 9, 0, 0)) == _ALLOW
    assert run_filter(program, arch, prlimit, (4321, 9, 0, 0)) == _EPERM
    assert run_filter(program, arch, prlimit, (1, 9, 0, 0)) == _EPERM
    getpid = {"x86_64": 39, "aarch64": 172}[machine]
    assert run_filter(program, arch, getpid) == _ALLOW


@pytest.mark.parametrize(
    "machine, headers",
    [
        ("x86_64", ["/usr/include/x86_64-linux-gnu/asm/unistd_64.h", "/usr/include/asm/unistd_64.h"]),
        ("aarch64", ["/usr/include/asm-generic/unistd.h"]),
    ],
)
def test_system_call_numbers_match_the_kernel_headers(machine: str, headers: list[str]) -> None:
    header = next((h for h in headers if Path(h).exists()), None)
    if header is None:
        pytest.skip(f"no kernel headers for {machine} here")
    known = header_numbers(header)
    _, numbers = ARCHES[machine]
    listed = {name: nr for name, nr in numbers.items() if name in known}
    assert {name: known[name] for name in listed} == listed
    assert set(numbers) - set(listed) <= {"fchmodat2"}  # only calls newer than the headers may be missing


NAMESPACE_PROBE = """
import ctypes, json, os, sys
sys.path[0:0] = [p for p in sys.argv.pop(1).split(os.pathsep) if p]
from sandbox.worker import confine
libc = ctypes.CDLL(None, use_errno=True)
libc.shmat.restype = ctypes.c_void_p
libc.shmat.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_int)
report = confine.unshare_namespaces(libc)  # the worker's own call, and no filter: the namespace alone
if os.geteuid() == 0:
    os.setgroups([]); os.setgid(65534); os.setuid(65534)
key, canary, other = int(sys.argv[1]), sys.argv[2].encode(), json.loads(sys.argv[3])
def outcome(value):
    return "made" if value not in (-1, ctypes.c_void_p(-1).value) else os.strerror(ctypes.get_errno())
out = {"report": report, "ns": os.readlink("/proc/self/ns/ipc")}
if other is None:
    out["shm_id"] = libc.shmget(key, 4096, 0o1000 | 0o666)
    address = libc.shmat(out["shm_id"], None, 0)
    ctypes.memmove(address, canary, len(canary))
    out["msg_id"] = libc.msgget(key + 1, 0o1000 | 0o666)
    print(json.dumps(out), flush=True)
    sys.stdin.readline()  # hold the objects (without removing them) until told to exit
else:
    out["find_shm"] = outcome(libc.shmget(key, 0, 0))
    out["attach_shm"] = outcome(libc.shmat(other["shm_id"], None, 0o10000))
    out["find_msg"] = outcome(libc.msgget(key + 1, 0))
    print(json.dumps(out), flush=True)
"""


@pytest.mark.parametrize("mode", ["as-started", "unprivileged"])
def test_the_ipc_namespace_alone_keeps_sessions_apart_and_leaves_nothing(mode: str) -> None:
    """Under the filter, the namespace: code that could make the calls still reaches no other session's objects.

    One process creates a shared-memory segment and a queue under a fixed key and
    holds them without removing them; a second looks for them by key and by id;
    the host looks in its own namespace during and after.
    """
    python, path, user = interpreter_for(mode)
    key = 0x524D0000 | (os.getpid() & 0xFFFF)
    ours = lambda: {o for o in sysvipc_objects() if int(o[1]) in (key, key + 1)}  # noqa: E731
    command = [python, "-I", "-B", "-c", NAMESPACE_PROBE, path, str(key)]
    as_user = {"user": user, "group": user, "extra_groups": [] if user is not None else None}
    first = subprocess.Popen(
        [*command, "FIRST-SESSION-SECRET", "null"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, **as_user
    )
    try:
        assert first.stdout is not None
        held = json.loads(first.stdout.readline())
        line = next(line for line in held["report"] if line.startswith("IPC:"))
        if "NOT isolated" in line:
            pytest.skip(f"this kernel refuses the namespace here: {line}")
        assert held["shm_id"] >= 0 and held["msg_id"] >= 0  # no filter here: it could make them
        second = subprocess.run(
            [*command, "SECOND", json.dumps(held)], capture_output=True, text=True, timeout=60, **as_user
        )
        looked = json.loads(second.stdout)
        assert looked["ns"] != held["ns"] != os.readlink("/proc/self/ns/ipc")
        assert looked["find_shm"] == looked["find_msg"] == "No such file or directory"
        assert looked["attach_shm"] == "Invalid argument"
        assert ours() == set()  # the host never sees them
    finally:
        if first.stdin is not None:
            first.stdin.close()
        first.wait(timeout=60)
    assert ours() == set()  # and nothing is left once the holder exited without removing them


# -- a real worker, seen from outside -----------------------------------------------------------


@pytest.fixture
async def worker(tmp_path: Path) -> AsyncIterator[Sandbox]:
    # A limit ordinary code never meets; the test of the hard timeout passes its own, with code that never ends.
    async with Sandbox(SandboxLimits(exec_timeout_s=600, kill_grace_s=1, memory_bytes=256 * 1024 * 1024)) as box:
        yield box


def _status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {key: value.strip() for key, _, value in (line.partition(":") for line in lines)}


def _group_members(pgid: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid:
                members.append(int(entry.name))
    return members


@pytest.mark.anyio
async def test_worker_descriptors_limits_and_namespaces(worker: Sandbox) -> None:
    pid = worker.pid
    assert pid is not None
    result = await worker.execute("x = 1")
    assert result.error is None
    fds = {int(fd): os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
    assert {fd: target for fd, target in fds.items() if fd <= 2} == {0: "/dev/null", 1: "/dev/null", 2: "/dev/null"}
    others = [target for fd, target in fds.items() if fd > 2]
    assert len(others) == 1 and others[0].startswith("socket:"), fds  # the channel, nothing inherited

    limits = Path(f"/proc/{pid}/limits").read_text()
    assert "Max core file size        0" in limits
    assert "Max file size             0" in limits
    assert "Max open files            512" in limits
    address_space = next(line for line in limits.splitlines() if line.startswith("Max address space"))
    assert address_space.split()[3] != "unlimited", address_space
    assert _hard_equals_soft(pid) == {name: True for name in LIMIT_ROWS}

    status = _status(pid)
    assert status["Seccomp"] == "2"
    assert status["NoNewPrivs"] == "1"
    assert status["Threads"] == "1"
    if os.geteuid() == 0:
        assert status["Uid"].split()[0] == "65534"
    assert os.readlink(f"/proc/{pid}/ns/net") != os.readlink("/proc/self/ns/net")
    assert os.readlink(f"/proc/{pid}/ns/ipc") != os.readlink("/proc/self/ns/ipc")
    assert os.getpgid(pid) == pid and os.getsid(pid) == pid  # its own session and process group
    assert _group_members(pid) == [pid]
    assert not Path(f"/proc/{pid}/task/{pid}/children").read_text().strip()


LIMIT_ROWS = {
    "Max cpu time": "RLIMIT_CPU",
    "Max file size": "RLIMIT_FSIZE",
    "Max core file size": "RLIMIT_CORE",
    "Max processes": "RLIMIT_NPROC",
    "Max open files": "RLIMIT_NOFILE",
    "Max address space": "RLIMIT_AS",
}


def _hard_equals_soft(pid: int) -> dict[str, bool]:
    """For each limit the README claims, whether /proc/<pid>/limits shows the same soft and hard value."""
    found = {}
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines()[1:]:
        name, soft, hard = line[:26].strip(), line[26:47].strip(), line[47:68].strip()
        if name in LIMIT_ROWS:
            found[name] = soft == hard != "unlimited"
    return found


@pytest.mark.anyio
async def test_each_session_has_its_own_ipc_namespace() -> None:
    async with Sandbox() as first, Sandbox() as second:
        assert first.pid is not None and second.pid is not None
        namespaces = {os.readlink(f"/proc/{pid}/ns/ipc") for pid in (first.pid, second.pid, os.getpid())}
        assert len(namespaces) == 3


@pytest.mark.anyio
async def test_a_bigger_corpus_gets_a_bigger_worker_and_says_what_was_lost(tmp_path: Path) -> None:
    """The memory limit cannot be raised, so a load past it gets a fresh worker sized for the corpus."""
    from sandbox import Document

    small, big = tmp_path / "small.txt", tmp_path / "big.txt"
    small.write_text("twelve chars")
    big.write_bytes(b"x" * (3 * 1024 * 1024))
    limits = SandboxLimits(exec_timeout_s=5, kill_grace_s=1, min_corpus_room_bytes=1024 * 1024)
    async with Sandbox(limits) as box:
        await box.load([Document(name="small.txt", path=small)], shape="str")
        assert box.pid is not None
        first, first_as = box.pid, _address_space(box.pid)
        assert (await box.execute("kept = 41")).error is None
        await box.load([Document(name="big.txt", path=big)], shape="list", append=True)
        assert box.pid != first and _address_space(box.pid) > first_as  # a new process, with more room
        assert _hard_equals_soft(box.pid) == {name: True for name in LIMIT_ROWS}
        result = await box.execute("[len(d) for d in context]")
        assert result.stdout == f"[12, {3 * 1024 * 1024}]\n", result
        assert result.restarted and any("memory" in n and "variables" in n for n in result.notes), result.notes
        assert (await box.execute("kept")).error.type == "NameError"  # as it said
        again = box.pid
        await box.load([Document(name="small.txt", path=small)], shape="list", append=True)
        assert box.pid == again  # still within what this worker was sized for: nothing replaced


@pytest.mark.anyio
async def test_a_worker_that_spent_its_cpu_allowance_is_replaced_before_the_kernel_kills_it(tmp_path: Path) -> None:
    """CPU time is a lifetime allowance the worker cannot raise; the server replaces the worker in time."""
    from sandbox import Document

    corpus = tmp_path / "c.txt"
    corpus.write_text("twelve chars")
    limits = SandboxLimits(
        exec_timeout_s=1, kill_grace_s=2, start_timeout_s=1, cpu_seconds=0, max_corpus_bytes=1024 * 1024
    )
    async with Sandbox(limits) as box:
        await box.load([Document(name="c.txt", path=corpus)], shape="str")
        assert box.pid is not None
        first = box.pid
        cpu_line = next(x for x in Path(f"/proc/{first}/limits").read_text().splitlines() if x.startswith("Max cpu"))
        assert cpu_line.split()[3:5] == [str(limits.cpu_allowance())] * 2
        for _ in range(100):  # each spin uses up to a second of CPU: the allowance runs out in a few
            result = await box.execute("spun = 1\nwhile True:\n    pass")
            if result.restarted:
                break
            assert result.error is not None and result.error.type == "TimeoutError", result
        assert result.restarted and box.pid != first, "the allowance never ran out"
        assert any("CPU time allowance" in note and "variables" in note for note in result.notes), result.notes
        assert result.error is not None and result.error.type == "TimeoutError"  # it ran, in the fresh worker
        assert (await box.execute("len(context)")).stdout == "12\n"  # with the corpus


def _address_space(pid: int) -> int:
    line = next(x for x in Path(f"/proc/{pid}/limits").read_text().splitlines() if x.startswith("Max address space"))
    return int(line.split()[3])


@pytest.mark.anyio
async def test_hard_timeout_kills_the_whole_group_and_leaves_nothing(worker: Sandbox) -> None:
    old = worker.pid
    assert old is not None
    with anyio.fail_after(300):  # one long call in C: the soft timeout cannot stop it
        result = await worker.execute("sum(range(10**14))", timeout=1)
    assert result.restarted and result.timed_out
    assert worker.pid != old
    assert _group_members(old) == []
    assert not Path(f"/proc/{old}").exists()  # reaped, not a zombie
    assert _status(worker.pid)["Threads"] == "1"


@pytest.mark.anyio
async def test_worker_killed_while_idle_restarts_and_says_so(tmp_path: Path) -> None:
    from sandbox import Document

    corpus = tmp_path / "c.txt"
    corpus.write_text("twelve chars")
    async with Sandbox(SandboxLimits(exec_timeout_s=600, kill_grace_s=1)) as box:
        await box.load([Document(name="c.txt", path=corpus)], shape="str")
        await box.execute("kept = 1")
        old = box.pid
        assert old is not None
        os.kill(old, signal.SIGKILL)
        with anyio.fail_after(300):
            while Path(f"/proc/{old}").exists() and "Z" not in Path(f"/proc/{old}/stat").read_text().split()[2]:
                await anyio.sleep(0.05)
        result = await box.execute("len(context)")
        assert result.stdout == "12\n", result
        assert result.restarted
        assert any("SIGKILL" in note and "variables" in note and "corpus was reloaded" in note for note in result.notes)
        assert (await box.execute("kept")).error.type == "NameError"
        assert not (await box.execute("1")).restarted  # said once


def test_bootstrap_is_what_the_tests_confine() -> None:
    """The tests above confine a process the way the worker does: through ``confine.apply`` in main()."""
    source = (Path(_PACKAGE_ROOT) / "sandbox" / "worker" / "main.py").read_text()
    assert "confine.apply(" in source and "readable=confine.interpreter_directories()" in source
    assert "from sandbox.worker.main import main" in _BOOTSTRAP


@pytest.mark.slow
@pytest.mark.anyio
async def test_a_load_that_never_finishes_is_cut_off(tmp_path: Path) -> None:
    """Decoding punycode is about quadratic in the chunk decoded: 8 MB keeps the worker busy for minutes (1 MB,
    which an earlier version used, decodes in a few seconds: whether it met the bound depended on the machine)."""
    from sandbox import Document, LoadError

    slow = tmp_path / "slow.txt"
    slow.write_bytes(b"a" * 4_000_000 + b"-" + b"b" * 4_000_000)
    # The load's bound is the start time allowed plus 1 s per 5 MB: about 12 s here, against minutes of decoding.
    async with Sandbox(SandboxLimits(start_timeout_s=10, exec_timeout_s=600, kill_grace_s=1)) as box:
        with anyio.fail_after(300), pytest.raises(LoadError, match="did not finish loading"):
            await box.load([Document(name="slow.txt", path=slow, encoding="punycode")], shape="str")
        result = await box.execute("1 + 1")
        assert result.stdout == "2\n" and result.error is None


# -- the escaped worker's channel -----------------------------------------------------------------


def inject(pid: int, data: bytes) -> None:
    """Write ``data`` on a worker's channel as code that escaped inside it could (skip where we may not)."""
    try:
        channel = channel_of(pid)
    except PermissionError as exc:
        pytest.skip(f"taking a worker's channel from outside needs CAP_SYS_PTRACE: {exc}")
    with channel:
        channel.sendall(data)


@pytest.mark.anyio
@pytest.mark.parametrize("name", list(hostile_frames(0)))
async def test_a_hostile_frame_gets_the_worker_replaced_and_nothing_shifts(tmp_path: Path, name: str) -> None:
    """A frame that does not decode, is too deep or too big, or does not answer the request in flight."""
    from sandbox import Document

    corpus = tmp_path / "c.txt"
    corpus.write_text("twelve chars")
    async with Sandbox(SandboxLimits(exec_timeout_s=5, kill_grace_s=1)) as box:
        await box.load([Document(name="c.txt", path=corpus)], shape="str")  # request 1
        assert (await box.execute("kept = 41")).error is None  # request 2
        old = box.pid
        assert old is not None
        inject(old, hostile_frames(last_id=2)[name])  # waits in the channel: read as the answer to request 3
        result = await box.execute("kept + 1")
        assert result.restarted and result.error is not None, result
        assert result.error.type == "ProtocolViolation", result.error
        assert "killed" in result.error.message and "corpus was reloaded" in result.error.message.lower()
        assert box.pid != old and not Path(f"/proc/{old}").exists()
        # Every later call gets its own answer: nothing stale, nothing shifted by one.
        assert (await box.execute("len(context)")).stdout == "12\n"
        assert (await box.execute("'third'")).stdout == "'third'\n"
        assert (await box.execute("kept")).error.type == "NameError"  # the variables went with the worker, as said


@pytest.mark.anyio
@pytest.mark.parametrize("name", list(hostile_load_frames(0)))
async def test_a_hostile_answer_to_a_load_gets_the_worker_replaced(tmp_path: Path, name: str) -> None:
    """Load progress (``load_more``) and the documents a load left out (``skipped``) are read like every frame:
    answering the load in flight, field by field, within bounds; anything else replaces the worker."""
    from sandbox import Document, LoadError

    corpus = tmp_path / "c.txt"
    corpus.write_text("twelve chars")
    heard: list[tuple[int, int]] = []

    async def progress(documents: int, read: int) -> None:
        heard.append((documents, read))

    async with Sandbox(SandboxLimits(exec_timeout_s=5, kill_grace_s=1)) as box:
        assert (await box.execute("kept = 1")).error is None  # request 1
        old = box.pid
        assert old is not None
        inject(old, hostile_load_frames(request_id=2)[name])  # read as the answer to the load, request 2
        with pytest.raises(LoadError, match=r"malformed|unexpected"):
            await box.load([Document(name="c.txt", path=corpus)], shape="str", progress=progress)
        assert heard == []  # nothing it said was taken for progress
        assert box.pid != old and not Path(f"/proc/{old}").exists()
        info = await box.load([Document(name="c.txt", path=corpus)], shape="str", progress=progress)
        assert info.skipped == [] and heard == [(1, 12)]
        assert (await box.execute("len(context)")).stdout == "12\n"


@pytest.mark.anyio
async def test_an_answer_sent_ahead_is_caught_when_the_real_one_arrives(tmp_path: Path) -> None:
    """An escaped worker may answer for itself, but never twice: its own reply then arrives late and is refused."""
    async with Sandbox(SandboxLimits(exec_timeout_s=5, kill_grace_s=1)) as box:
        assert (await box.execute("1")).stdout == "1\n"  # request 1
        assert box.pid is not None
        inject(box.pid, result_frame(2, "forged\n"))
        assert (await box.execute("2")).stdout == "forged\n"  # the frame answered request 2 first
        late = await box.execute("3")  # while 3 is in flight, the worker's own answer to 2 arrives
        assert late.restarted and late.error is not None and late.error.type == "ProtocolViolation", late
        assert "request 2" in late.error.message and "request 3" in late.error.message
        assert (await box.execute("4")).stdout == "4\n"
        assert (await box.execute("5")).stdout == "5\n"


@pytest.mark.anyio
async def test_a_hostile_frame_while_listing_variables(tmp_path: Path) -> None:
    from sandbox import SandboxError

    async with Sandbox(SandboxLimits(exec_timeout_s=5, kill_grace_s=1)) as box:
        assert (await box.execute("kept = 1")).error is None
        assert box.pid is not None
        inject(box.pid, hostile_frames(last_id=1)["garbage"])
        with pytest.raises(SandboxError, match="restarted"):
            await box.variables()
        assert "kept" not in [v.name for v in await box.variables()]  # a fresh worker answers
        assert (await box.execute("'after'")).stdout == "'after'\n"


def test_a_deep_frame_is_refused_without_recursion() -> None:
    from sandbox.protocol import MAX_DEPTH, ProtocolError, decode

    nested: list[object] = []
    for _ in range(MAX_DEPTH - 2):
        nested = [nested]  # with the object around it: MAX_DEPTH levels
    assert decode(json.dumps({"x": nested}).encode()) == {"x": nested}  # exactly at the bound
    for body in (json.dumps({"x": [nested]}).encode(), b'{"x":' + b"[" * 200_000 + b"]" * 200_000 + b"}"):
        with pytest.raises(ProtocolError, match="nested deeper"):
            decode(body)


def _is_forked_worker(pid: int) -> bool:
    return Path(f"/proc/{pid}/comm").read_text().strip() == "rlm-worker"


def _workers_of_our_servers() -> set[int]:
    """Sandbox workers of the servers this test process started (its children's children)."""
    found = set()
    for server in children(os.getpid()):
        for pid in children(server):
            with contextlib.suppress(OSError):  # started from nothing, or forked by the worker template
                if b"sandbox.worker.main" in Path(f"/proc/{pid}/cmdline").read_bytes() or _is_forked_worker(pid):
                    found.add(pid)
    return found


@pytest.mark.anyio
async def test_a_hostile_frame_over_mcp_restarts_the_session_and_says_so(client) -> None:
    before = _workers_of_our_servers()
    sid = (await call(client, "load_context", content="twelve chars"))["session_id"]
    assert (await call(client, "repl_exec", session_id=sid, code="kept = 41"))["error"] is None
    (worker,) = _workers_of_our_servers() - before
    inject(worker, hostile_frames(last_id=2)["nested-past-the-recursion-limit"])
    hit = await call(client, "repl_exec", session_id=sid, code="kept + 1")
    assert hit["restarted"] is True and hit["error"]["type"] == "ProtocolViolation", hit
    assert "restarted" in hit["error"]["message"]
    assert worker not in _workers_of_our_servers()
    assert (await call(client, "repl_exec", session_id=sid, code="len(context)"))["stdout"] == "12\n"
    assert (await call(client, "repl_exec", session_id=sid, code="'next'"))["stdout"] == "'next'\n"
    sessions = await call(client, "list_sessions")
    assert sid in json.dumps(sessions)
