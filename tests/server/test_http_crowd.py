"""Load on the real transport: 32 clients at once against one stateless streamable-HTTP server.

Each client loads its own corpus, keeps variables, runs code and sub-calls against
the Converse fake, and checks that it sees only its own corpus, variables and
answers. While all 32 sessions are busy the server is at RLM_MAX_SESSIONS: one
worker per session, a 33rd session is refused with a clear error, and the memory
of the server and its workers is measured. Then the sessions go idle and are
evicted, and their workers exit.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator

import anyio
import pytest
from conftest import HttpServer, server_env
from helpers import call, call_error, children, holding
from mcp import Client

pytestmark = pytest.mark.anyio
SESSIONS = 32
IDLE_TIMEOUT_S = 30
MARKER = re.compile(r"M\d\dX", re.IGNORECASE)
MB = 1024 * 1024


def marker(i: int) -> str:
    return f"M{i:02d}X"


def corpus(i: int) -> str:
    """About 60 KB per session, its marker on every line and nowhere else."""
    return "".join(f"line {n} of session {i}: {marker(i)} {'lorem ipsum ' * 3}\n" for n in range(1500))


def children_of(pid: int) -> list[int]:
    """A server's sandbox workers (see ``helpers.children``: the worker template is not one)."""
    return sorted(children(pid))


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, fake) -> Iterator[HttpServer]:
    data = tmp_path_factory.mktemp("load")
    env = server_env(
        data,
        data,
        fake.url,
        RLM_MAX_SESSIONS=str(SESSIONS),
        RLM_SESSION_IDLE_TIMEOUT_S=str(IDLE_TIMEOUT_S),
        RLM_EXEC_TIMEOUT_S="30",
    )
    running = HttpServer(env, "--stateless")
    yield running
    running.stop()


@pytest.mark.slow
async def test_32_concurrent_sessions_are_isolated_bounded_and_evicted(server: HttpServer, fake) -> None:
    release = threading.Event()
    fake.respond = holding("HOLD", release)
    results: dict[int, dict[str, str]] = {}
    sessions: dict[int, str] = {}

    async def one_client(i: int) -> None:
        mine = marker(i)
        others = [marker(j) for j in range(SESSIONS) if j != i]
        async with Client(server.url, read_timeout_seconds=180) as client:
            loaded = await call(client, "load_context", content=corpus(i))
            sid = sessions[i] = loaded["session_id"]
            assert loaded["chars"] == len(corpus(i))
            counted = await call(client, "repl_exec", session_id=sid, code=f"secret = 'S{i}'\ncontext.count('{mine}')")
            assert counted["stdout"] == "1500\n"
            seen = await call(client, "repl_exec", session_id=sid, code=f"[m for m in {others!r} if m in context]")
            assert seen["stdout"] == "[]\n"
            held = await call(client, "repl_exec", session_id=sid, code=f"held = llm_query('HOLD {mine}')\nheld")
            batched = await call(
                client,
                "repl_exec",
                session_id=sid,
                code="parts = [context[k:k + 4000] for k in range(0, 16000, 4000)]\n"
                "answers = llm_query_batched(['repeat: ' + p for p in parts])\n"
                f"print(secret, len(answers), all({mine!r} in a for a in answers))\n"
                f"print(sorted({{m for a in answers for m in {others!r} if m in a}}))",
            )
            results[i] = {"held": held["stdout"], "batched": batched["stdout"]}

    async def at_capacity() -> dict[str, float]:
        """Once every session is inside a sub-call: the limit, the workers, and their memory."""
        deadline = time.monotonic() + 600  # a hang guard: the held requests reaching the fake are the sign
        while sum("HOLD" in r.last_user_text for r in list(fake.requests)) < SESSIONS:
            assert time.monotonic() < deadline, "the sessions never all got to their held sub-call"
            await anyio.sleep(0.2)
        workers = children_of(server.process.pid)
        async with Client(server.url, read_timeout_seconds=60) as extra:
            refused = await call_error(extra, "load_context", content="one too many")
        figures = {
            "workers": len(workers),
            "server_mb": rss_bytes(server.process.pid) / MB,
            "max_worker_mb": max(rss_bytes(pid) for pid in workers) / MB,
            "total_mb": (rss_bytes(server.process.pid) + sum(rss_bytes(pid) for pid in workers)) / MB,
        }
        release.set()
        assert f"maximum of {SESSIONS} live sessions (RLM_MAX_SESSIONS)" in refused, refused
        return figures

    figures: dict[str, float] = {}
    try:
        async with anyio.create_task_group() as tg:
            for i in range(SESSIONS):
                tg.start_soon(one_client, i)
            figures.update(await at_capacity())
    finally:
        release.set()
    print(f"\nat {SESSIONS} busy sessions: {figures}")

    # One worker per session, never more; memory within a sane bound (measured: see the report).
    assert figures["workers"] == SESSIONS
    assert figures["server_mb"] < 300 and figures["max_worker_mb"] < 80 and figures["total_mb"] < 2000

    # Each session saw its own corpus, variables and sub-call answers, and nothing of any other.
    assert len(results) == SESSIONS
    for i, seen in results.items():
        assert seen["held"] == f"'HOLD {marker(i)}'\n"
        assert seen["batched"] == f"S{i} 4 True\n[]\n"
    for request in fake.requests:
        assert len({m.upper() for m in MARKER.findall(request.last_user_text)}) <= 1  # no prompt mixed sessions

    # Idle sessions are evicted and their workers exit.
    deadline = time.monotonic() + IDLE_TIMEOUT_S + 300
    async with Client(server.url, read_timeout_seconds=60) as client:
        while (await call(client, "list_sessions"))["sessions"] or children_of(server.process.pid):
            assert time.monotonic() < deadline, "idle sessions were not evicted"
            await anyio.sleep(0.5)
        gone = await call_error(client, "repl_exec", session_id=sessions[0], code="secret")
    assert "expired" in gone
