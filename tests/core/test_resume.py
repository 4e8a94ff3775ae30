"""Resumable runs: a run stopped by its budget, a crash or a cancel goes on with its transcript and variables.

The root is scripted turn by turn (the turn is the number of assistant messages
the fake receives), so a resumed run, whose transcript carries the earlier
turns, picks the script up where it stopped, as a real model would.
"""

from __future__ import annotations

import itertools
import json
import secrets
import subprocess
import sys
import threading
from pathlib import Path

import anyio
import pytest
from browser import Chromium, find_chromium
from conftest import ROOT_MODEL, SUB_MODEL, HttpServer, connect, server_env
from helpers import bearer_client, call, call_error

from rlm_mcp.models.pricing import PriceTable
from rlm_mcp.schemas import NotRestored, Resumption, Step, SubCallRecord, Trajectory
from rlm_mcp.testing.bedrock import ConverseRequest, Reply, code, scripted
from rlm_mcp.viewer import render

pytestmark = pytest.mark.anyio
RESUMED = "[The run was resumed.]"
SETUP = """
labels = {'q1': 'HUM', 'q2': ('LOC', 2)}
seen = [1, 2, 3]
shared = [labels, labels]
big = 'x' * 5_000_000
def helper(x):
    return x
print('saved')
"""
CHECK = """
try:
    big
    had_big = True
except NameError:
    had_big = False
answers = llm_query_batched(['a', 'b', 'c'])
FINAL(repr((labels, seen, shared[0] is shared[1], had_big, answers)))
"""


async def test_a_run_stopped_by_its_budget_resumes_where_it_stopped(client, fake) -> None:
    fake.respond = scripted(
        ROOT_MODEL,
        [
            code(SETUP),
            code("answers = llm_query_batched(['a', 'b', 'c'])"),  # 3 > the 2 sub-calls allowed
            Reply(text="stopped early"),  # the last turn, after the iteration limit
            code(CHECK),
        ],
    )
    sid = (await call(client, "load_context", content="q1 q2 q3"))["session_id"]
    first = await call(client, "rlm_query", session_id=sid, query="Label them", max_iterations=2, max_sub_calls=2)
    assert (first["status"], first["answer"], first["sub_calls"]) == ("limit_reached", "stopped early", 0)
    assert first["budget"]["sub_calls_remaining"] == 2 and first["resumed"] is None
    assert "SubcallBudgetExceeded" in fake.requests_for(ROOT_MODEL)[2].all_text
    before = fake.requests_for(ROOT_MODEL)[-1].messages

    reports: list[tuple[float, float | None, str]] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        reports.append((value, total, message or ""))

    arguments = {"resume": first["trajectory_id"], "max_iterations": 5, "max_sub_calls": 10}
    reply = await client.call_tool("rlm_query", arguments, progress_callback=on_progress)
    out = reply.structured_content
    assert out is not None and out["status"] == "completed", out
    # Progress runs over the continuation's own budget (MCP: it only increases, up to the total) while its
    # messages count the turns of the whole run: the continuation's first turn is the run's fourth.
    values = [value for value, _, _ in reports]
    assert all(a < b for a, b in itertools.pairwise(values)) and values[-1] <= 1, values
    assert {total for _, total, _ in reports} == {5}
    assert reports[0][2] == "step 4: the root model is writing" and "step 4: 3/3 sub-calls" in [m for *_, m in reports]
    assert out["answer"] == "({'q1': 'HUM', 'q2': ('LOC', 2)}, [1, 2, 3], True, False, ['A', 'B', 'C'])"
    assert out["trajectory_id"] == first["trajectory_id"] and out["session_id"] == sid
    assert (out["iterations"], out["sub_calls"]) == (1, 3)  # this continuation's own figures
    resumed = out["resumed"]
    assert sorted(resumed["restored"]) == ["labels", "seen", "shared"]
    reasons = {n["name"]: n["reason"] for n in resumed["not_restored"]}
    assert set(reasons) == {"big", "helper"}
    assert reasons["big"].startswith("too large") and "function" in reasons["helper"]
    assert resumed["from_status"] == "limit_reached" and resumed["after_step"] == 3 and resumed["snapshot_step"] == 1

    # The root got its conversation back exactly as it was sent, then a note saying what happened.
    after = fake.requests_for(ROOT_MODEL)[-1].messages
    assert after[: len(before)] == before
    assert after[len(before)] == {"role": "assistant", "content": [{"text": "stopped early"}]}
    note = after[-1]["content"][-1]["text"]
    assert note.startswith(RESUMED) and "limit_reached" in note and "5 turns, 10 sub-calls" in note
    assert "labels, seen, shared" in note and "big (too large" in note and "helper (a function" in note
    assert len(after) == len(before) + 2

    trajectory = await call(client, "get_trajectory", trajectory_id=out["trajectory_id"], detail="full")
    assert trajectory["status"] == "completed" and trajectory["answer"] == out["answer"]
    assert [s["turn"] for s in trajectory["steps"]] == [0, 1, 2, 3] and trajectory["iterations"] == 4
    assert [r["from_status"] for r in trajectory["resumes"]] == ["limit_reached"]
    assert trajectory["sub_calls"] == 3 and len(fake.requests_for(SUB_MODEL)) == 3


async def test_a_completed_run_takes_a_follow_up_and_nothing_else(client, fake) -> None:
    def root(request: ConverseRequest) -> Reply:
        if "follow-up" in request.last_user_text:
            return code("FINAL(n * 2)")
        return code("n = len(context)\nFINAL(n)")

    fake.respond = scripted(ROOT_MODEL, [root])
    loaded = await call(client, "load_context", content="twelve chars")
    run = await call(client, "rlm_query", session_id=loaded["session_id"], query="How long?")
    assert (run["status"], run["answer"]) == ("completed", "12")
    error = await call_error(client, "rlm_query", resume=run["trajectory_id"])
    assert "completed with an answer" in error and "query=" in error
    error = await call_error(client, "rlm_query", resume=loaded["trajectory_id"])  # a repl_exec session
    assert "not an rlm_query run" in error
    assert "no trajectory" in await call_error(client, "rlm_query", resume="t_neverWasARun1")

    out = await call(client, "rlm_query", resume=run["trajectory_id"], query="And twice that?")
    assert (out["status"], out["answer"]) == ("completed", "24")
    assert out["resumed"]["query"] == "And twice that?" and out["resumed"]["restored"] == ["n"]
    trajectory = await call(client, "get_trajectory", trajectory_id=run["trajectory_id"])
    assert trajectory["answer"] == "24" and len(trajectory["resumes"]) == 1 and len(trajectory["steps"]) == 2


async def test_a_running_run_cannot_be_resumed_and_a_cancelled_one_can(client, fake) -> None:
    release = threading.Event()

    def root(request: ConverseRequest) -> Reply:
        if RESUMED in request.last_user_text:
            return code("FINAL(kept)")
        if any(m["role"] == "assistant" for m in request.messages):
            release.wait(60)
            return code("print('never seen')")
        return code("kept = 41 + 1")

    fake.respond = scripted(ROOT_MODEL, [root])
    sid = (await call(client, "load_context", content="abc"))["session_id"]
    started = await call(client, "rlm_query", session_id=sid, query="?", wait=False)
    with anyio.fail_after(300):
        while len(fake.requests_for(ROOT_MODEL)) < 2:
            await anyio.sleep(0.05)
    assert "still running" in await call_error(client, "rlm_query", resume=started["trajectory_id"])
    await call(client, "close_session", session_id=sid)  # cancels the run
    release.set()
    with anyio.fail_after(300):
        while (await call(client, "get_trajectory", trajectory_id=started["trajectory_id"]))["status"] == "running":
            await anyio.sleep(0.05)
    # Its session is gone: the corpus is loaded again, and the run goes on there.
    error = await call_error(client, "rlm_query", resume=started["trajectory_id"])
    assert "is gone" in error and "load_context" in error
    sid = (await call(client, "load_context", content="abc"))["session_id"]
    out = await call(client, "rlm_query", resume=started["trajectory_id"], session_id=sid)
    assert (out["status"], out["answer"], out["session_id"]) == ("completed", "42", sid)
    assert out["resumed"]["from_status"] == "cancelled" and out["resumed"]["restored"] == ["kept"]


async def test_a_run_whose_server_died_resumes_on_the_next_server(tmp_path: Path, fake, corpus_dir: Path) -> None:
    release = threading.Event()

    def root(request: ConverseRequest) -> Reply:
        if RESUMED in request.last_user_text:
            return code("FINAL(repr(kept))")
        if any(m["role"] == "assistant" for m in request.messages):
            release.wait(60)  # the server dies while the root "thinks" about its second turn
            return code("print('never run')")
        return code("kept = {'a': [1, 2], 'b': {3}}\nprint('one')")

    fake.respond = scripted(ROOT_MODEL, [root])
    env = server_env(tmp_path / "data", corpus_dir, fake.url)
    server = HttpServer(env)
    try:
        async with connect("http", env, server) as client:
            sid = (await call(client, "load_context", content="some corpus"))["session_id"]
            started = await call(client, "rlm_query", session_id=sid, query="?", wait=False)
            with anyio.fail_after(300):
                while len(fake.requests_for(ROOT_MODEL)) < 2:
                    await anyio.sleep(0.05)
        server.process.kill()  # no shutdown, no clean-up: as a crash
        server.process.wait()
    finally:
        release.set()
        server.stop()
    restarted = HttpServer(env)
    try:
        async with connect("http", env, restarted) as client:
            view = await call(client, "get_trajectory", trajectory_id=started["trajectory_id"])
            assert view["status"] == "interrupted" and len(view["steps"]) == 1
            out = await call(client, "rlm_query", resume=started["trajectory_id"])
            assert (out["status"], out["answer"]) == ("completed", "{'a': [1, 2], 'b': {3}}")
            assert out["resumed"]["from_status"] == "interrupted" and out["resumed"]["snapshot_step"] == 0
            # The interrupted turn's request was never answered: the transcript goes on from the last whole turn.
            resumed_request = fake.requests_for(ROOT_MODEL)[-1]
            assert [m["role"] for m in resumed_request.messages] == ["user", "assistant", "user"]
            assert "one" in resumed_request.messages[2]["content"][0]["toolResult"]["content"][0]["text"]
    finally:
        restarted.stop()


async def test_only_the_owner_resumes_a_run(tmp_path: Path, fake, corpus_dir: Path) -> None:
    alice, bob = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    env = server_env(tmp_path / "data", corpus_dir, fake.url, RLM_AUTH_TOKENS=f"alice:{alice},bob:{bob}")
    fake.respond = scripted(ROOT_MODEL, [lambda r: Reply(text="gave up") if "You have used all" in r.last_user_text
                                         else code("x = 1")])  # fmt: skip
    server = HttpServer(env)
    try:
        async with bearer_client(server.url, alice) as client:
            sid = (await call(client, "load_context", content="abc"))["session_id"]
            run = await call(client, "rlm_query", session_id=sid, query="?", max_iterations=1)
        assert run["status"] == "limit_reached"
        ghost = "t_neverWrittenRun0"
        async with bearer_client(server.url, bob) as client:
            error = await call_error(client, "rlm_query", resume=run["trajectory_id"])
            assert f"no trajectory {run['trajectory_id']!r}" in error
            # Exactly what a run that never existed gets: nothing tells bob that alice's run is there.
            missing = await call_error(client, "rlm_query", resume=ghost)
            assert error.replace(run["trajectory_id"], ghost) == missing
            bob_sid = (await call(client, "load_context", content="abc"))["session_id"]
            error = await call_error(client, "rlm_query", resume=run["trajectory_id"], session_id=bob_sid)
            missing = await call_error(client, "rlm_query", resume=ghost, session_id=bob_sid)
            assert error.replace(run["trajectory_id"], ghost) == missing and "no trajectory" in error
            # Nor can bob read alice's run or her session's budget.
            assert "no trajectory" in await call_error(client, "get_trajectory", trajectory_id=run["trajectory_id"])
            assert "no session" in await call_error(client, "get_budget", session_id=sid)
        fake.respond = scripted(ROOT_MODEL, [code("FINAL(x + 1)")])
        async with bearer_client(server.url, alice) as client:
            out = await call(client, "rlm_query", resume=run["trajectory_id"])
            assert (out["status"], out["answer"]) == ("completed", "2")
    finally:
        server.stop()


def test_the_shell_resumes_a_run_that_stopped_short(tmp_path: Path, fake) -> None:
    env = server_env(tmp_path / "data", tmp_path / "elsewhere", fake.url)
    notes = tmp_path / "notes.txt"
    notes.write_text("alpha beta gamma delta")

    def rlm(*args: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "rlm_mcp", "query", *args]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)

    fake.respond = scripted(ROOT_MODEL, [code("words = context.split()"), Reply(text="not yet"),
                                         code("FINAL(len(words))")])  # fmt: skip
    done = rlm("--context", str(notes), "--max-iterations", "1", "How many words?")
    assert done.returncode == 3 and done.stdout == "not yet\n"
    hint = done.stderr.split("rlm-mcp query --resume ", 1)[1].split()[0]
    assert hint.startswith("t_")
    done = rlm("--resume", hint, "--max-iterations", "3", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert (result["status"], result["answer"], result["trajectory_id"]) == ("completed", "4", hint)
    assert result["resumed"]["restored"] == ["words"]
    assert rlm("--resume", hint).returncode == 2  # completed now: a follow-up question is needed
    done = rlm("--resume", hint, "--context", str(notes), "And the first word?")
    assert done.returncode == 0 and done.stdout == "4\n"  # the script's last step repeats


@pytest.mark.skipif(find_chromium() is None, reason="Debian's chromium is not installed (apt-get install chromium)")
def test_the_viewer_marks_the_resume_and_the_cached_sub_calls(tmp_path: Path) -> None:
    t0 = 1_750_000_000.0
    call = {"model": SUB_MODEL, "latency_ms": 900.0, "prompt_chars": 40, "prompt_preview": "p", "input_tokens": 10}
    steps = [
        Step(index=0, turn=0, started_at=t0, elapsed_ms=5, code="x = 1", sub_call_count=1,
             sub_calls=[SubCallRecord(started_at=t0, **call)]),
        Step(index=1, turn=2, started_at=t0 + 60, elapsed_ms=5, code="FINAL(x)", final="1", sub_call_count=2,
             cached_sub_calls=1, sub_calls=[SubCallRecord(started_at=t0 + 60, cached=True, **call),
                                            SubCallRecord(started_at=t0 + 61, **call)]),
    ]  # fmt: skip
    lost = NotRestored(name="helper", reason="a function or class: define it again")
    resumption = Resumption(at=t0 + 59, after_step=1, from_status="limit_reached", from_message="budget",
                            session_id="s_viewerTest01", restored=["x"], snapshot_step=0,
                            not_restored=[lost])  # fmt: skip
    run = Trajectory(id="t_resumedRun0001", kind="run", session_id="s_viewerTest01", status="completed",
                     created_at=t0, updated_at=t0 + 62, query="?", answer="1", root_model=ROOT_MODEL, steps=steps,
                     resumes=[resumption], cost_saved_usd=0.001, sub_calls=3)  # fmt: skip
    page = tmp_path / "run.html"
    page.write_text(render(run, {}, PriceTable()), encoding="utf-8")
    chromium = Chromium(find_chromium())
    try:
        report = chromium.open(page.as_uri())
        assert report.errors == [], report.errors
        marker = chromium.evaluate("document.querySelector('#r > .steps > .resume').textContent")
        assert "limit_reached" in marker and "restored (as after step 1): x" in marker
        assert "helper (a function" in marker
        # The marker sits right before the continuation's first step.
        assert chromium.evaluate("document.querySelector('#r > .steps > .resume').nextElementSibling.id") == "r-s1"
        rows = "[...document.querySelectorAll('#r-s1 tr.sub-row')]"
        cells = chromium.evaluate(rows + ".map(r => r.lastChild.textContent)")
        assert cells == ["cached", "ok"]
        assert "1 cached" in chromium.evaluate("document.querySelector('.stats').textContent")
    finally:
        chromium.close()
