"""The worker template: forked workers are confined before their first request, never shared, never left behind.

A forked worker is looked at from the outside the moment it is ready (before
any load or code): its descriptors, limits, user, namespaces, filter and
process group must be a worker's, and nothing of the template's (its control
channel) may reach it. Each sandbox gets a process of its own that dies with
it; a template that dies takes its workers with it and the next sandbox gets a
new template; without a running template, workers start from nothing.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
from helpers import call, direct_children, is_template

from rlm_mcp.config import Settings
from rlm_mcp.core.service import RLMService
from sandbox import Document, ExecResult, Sandbox, SandboxLimits
from sandbox.template import WorkerTemplate

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the confinement measured here is Linux's"),
]
LIMITS = SandboxLimits(exec_timeout_s=600, kill_grace_s=1, memory_bytes=256 * 1024 * 1024)


@pytest.fixture
async def template() -> AsyncIterator[WorkerTemplate]:
    async with WorkerTemplate() as running:
        await running.warm()
        assert running.pid is not None, "the template did not start"
        yield running


def _status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {key: value.strip() for key, _, value in (line.partition(":") for line in lines)}


def _limits(pid: int) -> dict[str, tuple[str, str]]:
    rows = {}
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines()[1:]:
        rows[line[:26].strip()] = (line[26:47].strip(), line[47:68].strip())
    return rows


def _gone(pid: int) -> bool:
    """Exited and reaped (not a zombie)."""
    return not Path(f"/proc/{pid}").exists()


async def test_a_forked_worker_is_confined_before_its_first_request(template: WorkerTemplate) -> None:
    async with Sandbox(LIMITS, template=template) as box:
        pid = box.pid
        assert pid is not None and pid in direct_children(template.pid or 0)  # forked, not started from nothing
        # Nothing was asked of it yet: what holds now held before it could read a corpus or code.
        fds = {int(fd): os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
        assert {fd: target for fd, target in fds.items() if fd <= 2} == {0: "/dev/null", 1: "/dev/null", 2: "/dev/null"}
        others = [target for fd, target in fds.items() if fd > 2]
        assert len(others) == 1 and others[0].startswith("socket:"), fds  # its channel; the template's is closed
        template_fds = {os.readlink(f"/proc/{template.pid}/fd/{fd}") for fd in os.listdir(f"/proc/{template.pid}/fd")}
        assert others[0] not in template_fds

        limits = _limits(pid)
        for name in ("Max cpu time", "Max file size", "Max core file size", "Max open files", "Max address space"):
            soft, hard = limits[name]
            assert soft == hard != "unlimited", (name, soft, hard)
        assert int(limits["Max address space"][0]) == LIMITS.memory_for(0)  # sized by the server for this worker
        status = _status(pid)
        assert status["Seccomp"] == "2" and status["NoNewPrivs"] == "1" and status["Threads"] == "1"
        if os.geteuid() == 0:
            assert status["Uid"].split()[0] == "65534"
        for kind in ("net", "ipc"):
            ours = os.readlink(f"/proc/{pid}/ns/{kind}")
            assert ours not in {os.readlink(f"/proc/{template.pid}/ns/{kind}"), os.readlink(f"/proc/self/ns/{kind}")}
        assert os.getpgid(pid) == pid and os.getsid(pid) == pid  # its own session and process group
        assert any("system-call filter (seccomp)" in line for line in box.confinement), box.confinement
        assert (await box.execute("print(sum(range(10)))")).stdout == "45\n"


async def test_every_sandbox_gets_its_own_worker_and_takes_it_away(template: WorkerTemplate) -> None:
    async with Sandbox(LIMITS, template=template) as first, Sandbox(LIMITS, template=template) as second:
        assert first.pid != second.pid
        assert os.readlink(f"/proc/{first.pid}/ns/ipc") != os.readlink(f"/proc/{second.pid}/ns/ipc")
        assert (await first.execute("secret = 'first'")).error is None
        assert (await second.execute("secret")).error.type == "NameError"  # nothing shared
        pids = {first.pid, second.pid}
    for pid in pids:
        assert _gone(pid)  # reaped by the template, not left as a zombie
    assert not direct_children(template.pid or 0)
    async with Sandbox(LIMITS, template=template) as again:
        assert again.pid not in pids  # a closed sandbox's worker is never handed out again


async def test_a_killed_worker_is_reported_and_replaced(template: WorkerTemplate, tmp_path: Path) -> None:
    corpus = tmp_path / "c.txt"
    corpus.write_text("twelve chars")
    async with Sandbox(LIMITS, template=template) as box:
        await box.load([Document(name="c.txt", path=corpus)], shape="str")
        old = box.pid
        assert old is not None
        os.kill(old, signal.SIGKILL)
        with anyio.fail_after(60):
            while not _gone(old):
                await anyio.sleep(0.02)
        result = await box.execute("len(context)")
        assert result.stdout == "12\n" and result.restarted
        assert any("SIGKILL" in note and "corpus was reloaded" in note for note in result.notes), result.notes
        assert box.pid in direct_children(template.pid or 0)


async def test_a_worker_found_dead_by_the_request_itself_runs_the_code_on_a_new_one(
    template: WorkerTemplate, tmp_path: Path
) -> None:
    """The template reports a forked worker's end; until it has, only the request finds the worker gone. The code
    never reached it, so a new worker (with the corpus) runs it, as when the end was known between calls."""
    corpus = tmp_path / "c.txt"
    corpus.write_text("twelve chars")
    async with Sandbox(LIMITS, template=template) as box:
        await box.load([Document(name="c.txt", path=corpus)], shape="str")
        old, template_pid = box.pid, template.pid
        assert old is not None and template_pid is not None
        os.kill(template_pid, signal.SIGSTOP)  # it can neither reap nor report the worker's end
        try:
            os.kill(old, signal.SIGKILL)
            with anyio.fail_after(60):
                while Path(f"/proc/{old}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                    await anyio.sleep(0.02)  # dead, its channel closed, not yet reaped
            async with anyio.create_task_group() as tg:
                outcome: list[ExecResult] = []

                async def run() -> None:
                    outcome.append(await box.execute("len(context)"))

                tg.start_soon(run)
                with anyio.fail_after(60):
                    while box.pid == old:  # the request found it gone and its replacement began
                        await anyio.sleep(0.02)
                os.kill(template_pid, signal.SIGCONT)
        finally:
            os.kill(template_pid, signal.SIGCONT)
        result = outcome[0]
        assert result.stdout == "12\n" and result.restarted and result.error is None, result
        assert any("SIGKILL" in note and "corpus was reloaded" in note for note in result.notes), result.notes


async def test_workers_die_with_the_template_and_the_next_one_starts_a_new_template(tmp_path: Path) -> None:
    async with WorkerTemplate() as template, Sandbox(LIMITS, template=template) as box:
        first_template, worker = template.pid, box.pid
        assert first_template is not None and worker is not None
        os.kill(first_template, signal.SIGKILL)
        with anyio.fail_after(60):
            while not _gone(worker):
                await anyio.sleep(0.02)
        result = await box.execute("1 + 1")
        assert result.stdout == "2\n" and result.restarted
        assert template.pid not in (None, first_template)
        assert box.pid in direct_children(template.pid or 0)


async def test_without_a_running_template_a_worker_starts_from_nothing() -> None:
    template = WorkerTemplate()  # never entered: it cannot run
    async with Sandbox(LIMITS, template=template) as box:
        assert box.pid in direct_children(os.getpid())
        assert _status(box.pid or 0)["Seccomp"] == "2"
        assert (await box.execute("'works'")).stdout == "'works'\n"
    assert template.forks == 0


async def test_a_first_load_over_the_smallest_size_needs_one_worker(template: WorkerTemplate, tmp_path: Path) -> None:
    """The worker is sized for the corpus when it starts: the first load does not start a second one."""
    big = tmp_path / "big.txt"
    big.write_bytes(b"x" * (3 * 1024 * 1024))
    limits = SandboxLimits(exec_timeout_s=60, kill_grace_s=1, min_corpus_room_bytes=1024 * 1024)
    box = Sandbox(limits, template=template)
    try:
        await box.start(big.stat().st_size)
        started = box.pid
        await box.load([Document(name="big.txt", path=big)], shape="str")
        assert box.pid == started and box.restarts == 0
        assert int(_limits(started or 0)["Max address space"][0]) == limits.memory_for(big.stat().st_size)
    finally:
        await box.close()


async def test_a_session_over_64_mib_loads_in_one_worker(tmp_path: Path) -> None:
    """Through the core: ``load_context`` starts the session's worker sized for the corpus it is about to load."""
    corpus = tmp_path / "big.txt"
    with corpus.open("wb") as f:  # over the 64 MiB a worker is sized for at least
        for _ in range(65):
            f.write(b"corpus line\n" * 87_382)
    settings = Settings(data_dir=tmp_path / "data", allowed_roots=[tmp_path], sub_model="x", root_model="y")
    service = RLMService(settings)
    async with service.running():
        loaded = await service.load_context(path=str(corpus))
        assert loaded.chars == corpus.stat().st_size > 64 * 1024 * 1024
        session = service.sessions.live()[0]
        assert session.sandbox.restarts == 0
        assert service.template is not None and session.sandbox.pid in direct_children(service.template.pid or 0)


def _forked_workers_of_our_servers() -> set[int]:
    """Workers forked by the templates of the servers this test process started."""
    return {
        worker
        for server in direct_children(os.getpid())
        for template in direct_children(server)
        if is_template(template)
        for worker in direct_children(template)
    }


async def test_over_mcp_each_session_has_a_forked_worker_of_its_own(client) -> None:  # type: ignore[no-untyped-def]
    before = _forked_workers_of_our_servers()
    first = (await call(client, "load_context", content="one"))["session_id"]
    second = (await call(client, "load_context", content="two"))["session_id"]
    mine = _forked_workers_of_our_servers() - before
    assert len(mine) == 2, mine
    one = await call(client, "repl_exec", session_id=first, code="mine = context")
    two = await call(client, "repl_exec", session_id=second, code="mine")
    assert one["error"] is None and two["error"]["type"] == "NameError"
    await call(client, "close_session", session_id=first)
    await call(client, "close_session", session_id=second)
    assert not mine & _forked_workers_of_our_servers()  # gone with their sessions


async def test_a_template_that_does_not_start_in_time_leaves_nothing_and_workers_start_from_nothing() -> None:
    async with WorkerTemplate(start_timeout_s=0.001) as template:
        await template.warm()  # too little time to say ready: given up, and stopped
        assert template.pid is None
        async with Sandbox(LIMITS, template=template) as box:
            assert box.pid in direct_children(os.getpid())  # started from nothing, as if there were no template
            assert (await box.execute("6 * 7")).stdout == "42\n"
        assert not any(is_template(pid) for pid in direct_children(os.getpid()))


def test_the_template_holds_everything_a_worker_imports_before_it_forks() -> None:
    """A forked worker starts with the REPL, its guards and RestrictedPython already imported (the point of
    the template): nothing the worker's entry imports is left for each child to import after the fork."""
    import subprocess

    probe = (
        "import sys\n"
        "from sandbox.worker.forking import preload\n"
        "preload()\n"
        "before = set(sys.modules)\n"
        "import sandbox.worker.main\n"
        "print(sorted(set(sys.modules) - before))\n"
    )
    done = subprocess.run(
        [sys.executable, "-I", "-c", probe], capture_output=True, text=True, cwd=Path.cwd(), timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
