"""Retention: a closed session's private data goes, limits per kind hold, and nothing in use is ever removed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT_MODEL, HttpServer, connect, server_env
from helpers import call

from rlm_mcp.testing.bedrock import Reply, code, scripted

pytestmark = pytest.mark.anyio
DAY = 86400


def gc(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rlm_mcp", "gc", *args], env=env, capture_output=True, text=True)


def age(path: Path, days: float) -> None:
    then = time.time() - days * DAY
    os.utime(path, (then, then))


async def test_closing_a_session_removes_the_inline_corpus_only_it_used(tmp_path: Path, fake) -> None:
    data = tmp_path / "data"
    env = server_env(data, tmp_path, fake.url)
    async with connect("stdio", env) as client:
        first = await call(client, "load_context", content="shared text")
        second = await call(client, "load_context", content="shared text")
        alone = await call(client, "load_context", content="private text")
        corpora = data / "corpora"
        assert first["corpus_id"] == second["corpus_id"] != alone["corpus_id"]
        storage = (await call(client, "list_sessions"))["storage"]
        assert storage["kinds"]["corpora"]["count"] == 2 and storage["location"] == str(data)
        assert storage["kinds"]["corpora"]["bytes"] == len("shared text") + len("private text")

        await call(client, "close_session", session_id=alone["session_id"])
        assert not (corpora / f"{alone['corpus_id']}.txt").exists()
        await call(client, "close_session", session_id=first["session_id"])  # `second` still uses it
        assert (corpora / f"{first['corpus_id']}.txt").exists()
        kept = await call(client, "repl_exec", session_id=second["session_id"], code="context")
        assert kept["stdout"] == "'shared text'\n"
        view = await call(client, "get_trajectory", trajectory_id=alone["trajectory_id"])
        assert view["status"] == "closed"  # the trajectory is not private data: it stays readable
        await call(client, "close_session", session_id=second["session_id"])
        assert not (corpora / f"{first['corpus_id']}.txt").exists()


async def test_gc_applies_each_limit_and_never_removes_what_is_in_use(tmp_path: Path, fake) -> None:
    data = tmp_path / "data"
    env = server_env(data, tmp_path, fake.url, RLM_CORPORA_MAX_MB="1", RLM_LOG_LEVEL="INFO")
    corpora, trajectories, sessions = data / "corpora", data / "trajectories", data / "sessions"
    server = HttpServer(env)
    try:
        async with connect("http", env, server) as client:
            live = await call(client, "load_context", content="in use " * 100_000)  # 700 KB
            done = await call(client, "load_context", content="a finished session")
            await call(client, "repl_exec", session_id=done["session_id"], code="print(1)")
            await call(client, "close_session", session_id=done["session_id"])

            # Make everything old: last used 100 days ago.
            for path in [*corpora.glob("*.txt"), *trajectories.glob("*"), *sessions.glob("*")]:
                age(path, 100)
            # Two unused corpora of 600 KB: together with the live one, over the 1 MB limit.
            old_unused = corpora / ("a" * 64 + ".txt")
            newer_unused = corpora / ("b" * 64 + ".txt")
            for path, days in ((old_unused, 3), (newer_unused, 2)):
                path.write_text("x" * 600_000)
                age(path, days)
            (corpora / "derived").mkdir(exist_ok=True)
            stale_derived = corpora / "derived" / "gz-0123.txt"
            stale_derived.write_text("decompressed")
            age(stale_derived, 8)
            leased = "t_leasedRun00000"
            (trajectories / f"{leased}.jsonl").write_text("{}\n")
            age(trajectories / f"{leased}.jsonl", 100)
            lease = {"expires_at": time.time() + 600, "owner": {"machine": "elsewhere", "pid": 1}}
            (trajectories / f"{leased}.lease").write_text(json.dumps(lease))
            stale_record = sessions / "s_expiredLongAgo0.json"
            stale_record.write_text(json.dumps({"id": "s_expiredLongAgo0", "trajectory_id": "t_x", "created_at": 1}))
            age(stale_record, 2)
            # The live session's record was refreshed just now, as a session in use keeps it.
            os.utime(sessions / f"{live['session_id']}.json")

            planned = gc(env, "--dry-run", "--json")
            assert planned.returncode == 0, planned.stderr
            names = {(item["kind"], Path(item["name"]).name) for item in json.loads(planned.stdout)["removed"]}
            assert names == {
                ("corpora", old_unused.name),
                ("corpora", newer_unused.name),
                ("derived", stale_derived.name),
                ("trajectories", done["trajectory_id"]),
                ("sessions", stale_record.name),
            }, names
            assert old_unused.exists() and stale_record.exists()  # a dry run removes nothing

            removed = gc(env)
            assert removed.returncode == 0, removed.stderr
            assert "removed corpora" in removed.stdout and "trajectories" in removed.stdout
            assert not old_unused.exists() and not newer_unused.exists() and not stale_derived.exists()
            assert not stale_record.exists() and not (trajectories / f"{done['trajectory_id']}.jsonl").exists()
            # Kept: the live session's corpus, record and trajectory, and the run with a live lease elsewhere.
            assert (corpora / f"{live['corpus_id']}.txt").exists()
            assert (trajectories / f"{live['trajectory_id']}.jsonl").exists()
            assert (trajectories / f"{leased}.jsonl").exists()
            out = await call(client, "repl_exec", session_id=live["session_id"], code="len(context)")
            assert out["stdout"] == "700000\n"
            assert (await call(client, "get_trajectory", trajectory_id=live["trajectory_id"]))["steps"]
            storage = (await call(client, "list_sessions"))["storage"]["kinds"]
            assert storage["corpora"]["max_bytes"] == 1024 * 1024 and storage["trajectories"]["max_age_days"] == 90
    finally:
        server.stop()


def test_the_server_logs_what_it_holds_at_start_up(tmp_path: Path, fake) -> None:
    data = tmp_path / "data"
    (data / "corpora").mkdir(parents=True)
    (data / "corpora" / ("c" * 64 + ".txt")).write_text("held")
    env = server_env(data, tmp_path, fake.url, RLM_LOG_LEVEL="INFO")
    server = HttpServer(env, stderr=subprocess.PIPE, text=True)
    server.stop()
    assert server.process.stderr is not None
    logged = server.process.stderr.read()
    assert f"stored data: {data}: corpora 1 (0.0 MB)" in logged, logged


async def test_a_runs_files_go_with_its_trajectory_and_the_cache_keeps_its_own_limits(tmp_path: Path, fake) -> None:
    data = tmp_path / "data"
    env = server_env(data, tmp_path, fake.url, RLM_TRAJECTORIES_MAX_MB="1", RLM_SUBCALL_CACHE="on")
    trajectories, runs, subcalls = data / "trajectories", data / "runs", data / "subcalls"
    # Each run: one step that sends two sub-calls, then its last turn; a resume finishes it.
    fake.respond = scripted(
        ROOT_MODEL,
        [code("words = ['a', 'b']\nanswers = llm_query_batched(words)"), Reply(text="not yet"),
         code("FINAL(len(words) + len(answers))")],
    )  # fmt: skip
    server = HttpServer(env)
    try:
        async with connect("http", env, server) as client:
            done = (await call(client, "load_context", content="a finished session"))["session_id"]
            old = await call(client, "rlm_query", session_id=done, query="?", max_iterations=1)
            await call(client, "close_session", session_id=done)
            live = (await call(client, "load_context", content="a live session"))["session_id"]
            kept = await call(client, "rlm_query", session_id=live, query="?", max_iterations=1)
            assert old["status"] == kept["status"] == "limit_reached" and kept["cached_sub_calls"] == 2
            old_id, kept_id = old["trajectory_id"], kept["trajectory_id"]
            assert {p.name for p in runs.iterdir()} >= {f"{old_id}.jsonl", f"{old_id}.state.json"}
            (scope,) = subcalls.iterdir()  # this principal's cache: the two answers, asked twice
            assert len(list(scope.iterdir())) == 2

            for path in [trajectories / f"{old_id}.jsonl", *runs.glob(f"{old_id}.*")]:
                age(path, 100)  # past the trajectories' 90 days, the run's files too
            big, leased, orphan, fresh = "t_bigResumable0", "t_leasedRun00000", "t_orphanRun0000", "t_freshOrphan00"
            (trajectories / f"{big}.jsonl").write_text("{}\n")  # tiny, but its snapshot is 1.2 MB
            (runs / f"{big}.state.json").write_text("x" * 1_200_000)
            for path in (trajectories / f"{big}.jsonl", runs / f"{big}.state.json"):
                age(path, 2)
            for path in (trajectories / f"{leased}.jsonl", runs / f"{leased}.jsonl"):
                path.write_text("{}\n")
                age(path, 100)
            lease = {"expires_at": time.time() + 600, "owner": {"machine": "elsewhere", "pid": 1}}
            (trajectories / f"{leased}.lease").write_text(json.dumps(lease))
            (runs / f"{orphan}.jsonl").write_text("{}\n")  # its trajectory is gone
            age(runs / f"{orphan}.jsonl", 1)
            (runs / f"{fresh}.jsonl").write_text("{}\n")  # just written: a run may be starting
            stale_answer = scope / ("e" * 64 + ".json")
            stale_answer.write_text('{"text": "old", "input_tokens": 1, "output_tokens": 1}')
            age(stale_answer, 40)  # past RLM_SUBCALL_CACHE_MAX_AGE_DAYS (30)

            planned = gc(env, "--dry-run", "--json")
            assert planned.returncode == 0, planned.stderr
            names = {(item["kind"], Path(item["name"]).name) for item in json.loads(planned.stdout)["removed"]}
            assert names == {
                ("trajectories", old_id),  # by age
                ("runs", old_id),  # with it
                ("trajectories", big),  # by size: a run's files count with its trajectory
                ("runs", big),
                ("runs", orphan),
                ("subcalls", stale_answer.name),  # the cache's own age limit
            }, names
            assert stale_answer.exists() and (runs / f"{orphan}.jsonl").exists()  # a dry run removes nothing

            removed = gc(env, "--json")
            assert removed.returncode == 0, removed.stderr
            usage = json.loads(removed.stdout)["usage"]["kinds"]
            assert not list(runs.glob(f"{old_id}.*")) and not (trajectories / f"{old_id}.jsonl").exists()
            assert not (runs / f"{big}.state.json").exists() and not (runs / f"{orphan}.jsonl").exists()
            assert not stale_answer.exists() and len(list(scope.iterdir())) == 2
            # Kept: the live session's resumable run, the run leased elsewhere, the file just written.
            assert {p.name for p in runs.iterdir()} >= {f"{kept_id}.jsonl", f"{leased}.jsonl", f"{fresh}.jsonl"}
            assert usage["runs"]["count"] == 3 and usage["runs"]["goes_with"] == "trajectories"
            assert usage["subcalls"]["count"] == 2 and usage["subcalls"]["max_age_days"] == 30
            storage = (await call(client, "list_sessions"))["storage"]["kinds"]
            assert storage["runs"]["max_bytes"] is None and storage["runs"]["goes_with"] == "trajectories"
            assert storage["subcalls"]["max_bytes"] == 512 * 1024 * 1024

            resumed = await call(client, "rlm_query", resume=kept_id)  # still resumable, variables and all
            assert (resumed["status"], resumed["answer"]) == ("completed", "4")
            assert sorted(resumed["resumed"]["restored"]) == ["answers", "words"]
    finally:
        server.stop()
