"""The worker process as the boundary: what holds even if code got past RestrictedPython.

These tests run *unrestricted* Python in a process confined exactly as a worker
confines itself (``sandbox.confine.apply``), as if an escape from the policy
had already happened, and check that the operating system still says no: no
new processes (root included), no sockets, no file changes, no reads outside
the interpreter's library, no signals or ptrace to other processes. Then they
look at a real worker from the outside: its descriptors, limits, user,
namespaces, filter and process group.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import pytest

from sandbox import Sandbox, SandboxLimits
from sandbox.process import _BOOTSTRAP, _PACKAGE_ROOT
from sandbox.seccomp import build_program

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the confinement measured here is Linux's")

PRELUDE = """
import ctypes, json, os, socket, sys, time
sys.path[0:0] = [p for p in sys.argv.pop(1).split(os.pathsep) if p]
from sandbox import confine
sibling = os.fork()  # before confinement: a process of the same user to try signals and ptrace on
if sibling == 0:
    os.close(1)
    os.close(2)
    time.sleep(60)
    os._exit(0)
report = confine.apply(confine.Confinement(memory_bytes=1 << 30, readable=confine.interpreter_directories()))
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
print(json.dumps({"report": report, "results": results}), flush=True)
attempt("exec", lambda: os.execv("/bin/true", ["true"]))  # last: if it worked, nothing after it runs
print(json.dumps({"report": report, "results": results}), flush=True)
"""

NOBODY = 65534


def unprivileged_interpreter() -> tuple[str, str] | None:
    """An interpreter of our version, with our site-packages, that a user owning nothing can run."""
    from sandbox.confine import reachable_by_others

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


def run_confined(base: Path, mode: str) -> tuple[list[str], dict[str, str]]:
    """Run the escape attempts after confining the process like a worker; return its report and results."""
    python, path, user = sys.executable, _PACKAGE_ROOT, None
    if mode == "unprivileged":
        found = unprivileged_interpreter()
        if os.geteuid() != 0 or found is None:
            pytest.skip("needs root to start a process as an unprivileged user, and an interpreter it can read")
        python, site = found
        path, user = os.pathsep.join([_PACKAGE_ROOT, site]), NOBODY
    done = subprocess.run(
        [python, "-I", "-B", "-c", PRELUDE + PAYLOAD, path, str(base)],
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


@pytest.fixture(scope="module", params=["as-started", "unprivileged"])
def escaped(request: pytest.FixtureRequest) -> Iterator[tuple[list[str], dict[str, str], Path]]:
    """One confined process tries everything an escaped worker would want to do.

    Its targets are open to any user (a world-writable directory, world-readable files,
    a process of its own user), so that what refuses is the confinement, not permissions.
    "as-started" runs as the test runs (root here: the worker then switches to nobody);
    "unprivileged" starts as nobody, the way a worker of a non-root server starts.
    """
    base = Path(tempfile.mkdtemp(prefix="rlm-escape-", dir="/tmp"))
    base.chmod(0o777)
    for name, mode in (("secret.txt", 0o644), ("victim.txt", 0o666), ("mine.txt", 0o644)):
        (base / name).write_text("CANARY-SECRET-FILE" if name == "secret.txt" else "keep me")
        (base / name).chmod(mode)
    if os.geteuid() == 0:
        os.chown(base / "mine.txt", NOBODY, NOBODY)  # its owner may chmod it: only the filter refuses
    try:
        report, results = run_confined(base, request.param)
        yield report, results, base
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
def test_escaped_code_still_cannot(escaped, action: str) -> None:
    report, results, _ = escaped
    assert "system-call filter (seccomp)" in " ".join(report), report
    outcome = results.get(action, "ALLOWED (the process was replaced)")
    assert outcome.startswith("refused"), f"{action}: {outcome}"


def test_escaped_code_changed_no_file(escaped) -> None:
    _, _, base = escaped
    assert sorted(p.name for p in base.iterdir()) == ["mine.txt", "secret.txt", "victim.txt"]
    assert (base / "victim.txt").read_text() == "keep me"
    assert oct((base / "mine.txt").stat().st_mode & 0o777) == "0o644"


@pytest.mark.parametrize("action", ["read_secret", "read_sibling_environ", "read_passwd", "list_tmp"])
def test_escaped_code_reads_nothing_outside_the_interpreter(escaped, action: str) -> None:
    report, results, _ = escaped
    if not any("Landlock ABI" in line for line in report):
        pytest.skip(f"Landlock is not available on this kernel: {report}")
    assert results[action].startswith("refused"), f"{action}: {results[action]}"


def test_what_the_worker_needs_still_works(escaped) -> None:
    _, results, _ = escaped
    assert results["signal_self"] == "ALLOWED None"
    assert results["codec_import"] == "ALLOWED b'\\xa7'"  # a codec imported after confinement


def test_user_and_process_limit(escaped, request: pytest.FixtureRequest) -> None:
    report, _, _ = escaped
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
        assert all(jt <= 4 and jf <= 4 for _, jt, jf, _ in program)


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

    status = _status(pid)
    assert status["Seccomp"] == "2"
    assert status["NoNewPrivs"] == "1"
    assert status["Threads"] == "1"
    if os.geteuid() == 0:
        assert status["Uid"].split()[0] == "65534"
    assert os.readlink(f"/proc/{pid}/ns/net") != os.readlink("/proc/self/ns/net")
    assert os.getpgid(pid) == pid and os.getsid(pid) == pid  # its own session and process group
    assert _group_members(pid) == [pid]
    assert not Path(f"/proc/{pid}/task/{pid}/children").read_text().strip()


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
    source = (Path(_PACKAGE_ROOT) / "sandbox" / "worker.py").read_text()
    assert "confine.apply(" in source and "readable=confine.interpreter_directories()" in source
    assert "from sandbox.worker import main" in _BOOTSTRAP


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
