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
        with anyio.fail_after(300):  # expiry runs every half second: wait for it, however slow the machine
            while sid in [s["session_id"] for s in (await call(client, "list_sessions"))["sessions"]]:
                await anyio.sleep(0.2)
        assert "expired" in await call_error(client, "repl_exec", session_id=sid, code="1")


async def test_the_oldest_idle_session_is_evicted_and_comes_back_with_its_corpus(tmp_path: Path, fake) -> None:
    env = server_env(tmp_path / "data", tmp_path, fake.url, RLM_MAX_SESSIONS="2", RLM_SESSION_EVICT_IDLE_S="0")
    async with connect("stdio", env) as client:
        first = (await call(client, "load_context", content="first"))["session_id"]
        second = (await call(client, "load_context", content="second"))["session_id"]
        await call(client, "repl_exec", session_id=first, code="x = 1")  # `second` is now the oldest idle
        await call(client, "repl_exec", session_id=second, code="y = 2")
        await call(client, "repl_exec", session_id=first, code="x += 1")
        third = (await call(client, "load_context", content="third"))["session_id"]
        live = {s["session_id"] for s in (await call(client, "list_sessions"))["sessions"]}
        assert live == {first, third}

        # Evicted, not forgotten: its next use brings it back with its corpus (and evicts `first`, now oldest).
        back = await call(client, "repl_exec", session_id=second, code="print(context)\ny")
        assert back["stdout"] == "second\n" and back["error"]["type"] == "NameError"
        assert any("evicted to make room" in n and "RLM_MAX_SESSIONS=2" in n for n in back["notes"]), back["notes"]
        live = {s["session_id"] for s in (await call(client, "list_sessions"))["sessions"]}
        assert live == {second, third}
        assert (await call(client, "repl_exec", session_id=third, code="context"))["stdout"] == "'third'\n"
        assert (await call(client, "repl_exec", session_id=first, code="context"))["stdout"] == "'first'\n"


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
