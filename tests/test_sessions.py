"""Session lifecycle: idle expiry, the live-session limit, and surviving a server restart."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from conftest import connect, server_env
from helpers import call, call_error

pytestmark = pytest.mark.anyio


async def test_idle_sessions_expire(tmp_path: Path, fake) -> None:
    env = server_env(tmp_path / "data", tmp_path, fake.url, RLM_SESSION_IDLE_TIMEOUT_S="1")
    async with connect("stdio", env) as client:
        sid = (await call(client, "load_context", content="short-lived"))["session_id"]
        await anyio.sleep(2.5)
        assert sid not in [s["session_id"] for s in (await call(client, "list_sessions"))["sessions"]]
        assert "expired" in await call_error(client, "repl_exec", session_id=sid, code="1")


async def test_oldest_idle_session_makes_room_and_busy_ones_are_kept(tmp_path: Path, fake) -> None:
    env = server_env(tmp_path / "data", tmp_path, fake.url, RLM_MAX_SESSIONS="2", RLM_EXEC_TIMEOUT_S="3")
    async with connect("stdio", env) as client:
        first = (await call(client, "load_context", content="first"))["session_id"]
        second = (await call(client, "load_context", content="second"))["session_id"]
        await call(client, "repl_exec", session_id=first, code="x = 1")  # `second` is now the oldest idle
        third = (await call(client, "load_context", content="third"))["session_id"]
        live = {s["session_id"] for s in (await call(client, "list_sessions"))["sessions"]}
        assert live == {first, third} and second not in live

        async def busy(session_id: str) -> None:
            await client.call_tool("repl_exec", {"session_id": session_id, "code": "while True:\n    pass"})

        async with anyio.create_task_group() as tg:
            tg.start_soon(busy, first)
            tg.start_soon(busy, third)
            await anyio.sleep(1.0)
            refused = await call_error(client, "load_context", content="fourth")
        assert "all 2 sessions are busy" in refused
        assert (await call(client, "repl_exec", session_id=first, code="x"))["stdout"] == "1\n"


async def test_restart_keeps_trajectories_and_corpora(tmp_path: Path, fake) -> None:
    corpus = tmp_path / "notes.txt"
    corpus.write_text("persistent corpus\n")
    env = server_env(tmp_path / "data", tmp_path, fake.url)
    async with connect("stdio", env) as client:
        loaded = await call(client, "load_context", path=str(corpus))
        sid, tid = loaded["session_id"], loaded["trajectory_id"]
        await call(client, "repl_exec", session_id=sid, code="x = 42\nprint(x)")

    async with connect("stdio", env) as client:  # a new server process, same data directory
        trajectory = await call(client, "get_trajectory", trajectory_id=tid, detail="full")
        assert [s["stdout"] for s in trajectory["steps"]] == ["42\n"]
        revived = await call(client, "repl_exec", session_id=sid, code="print(len(context))\nx")
        assert revived["stdout"] == "18\n"
        assert revived["error"]["type"] == "NameError"
        assert any("restored after a server restart" in note for note in revived["notes"])
