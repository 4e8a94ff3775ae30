"""Bad input to every tool: each gets a clear MCP error, and nothing else is disturbed.

One reference session is loaded first and checked last: whatever the bad calls
did in between, it still holds its corpus and variables, no half-made session
was left behind, and (over HTTP, where the server's pid is known) no sandbox
process is running that should not be.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import server_env
from helpers import call, call_error, children

from rlm_mcp.testing.bedrock import ConverseFake

pytestmark = pytest.mark.anyio

MAX_CORPUS_MB = 1
BIG = MAX_CORPUS_MB * 1024 * 1024 + 10


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, corpus_dir: Path, fake: ConverseFake) -> dict[str, str]:
    return server_env(tmp_path_factory.mktemp("data"), corpus_dir, fake.url, RLM_MAX_CORPUS_MB=str(MAX_CORPUS_MB))


@pytest.fixture(scope="module")
def files(corpus_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    outside = tmp_path_factory.mktemp("elsewhere")
    (outside / "notes.txt").write_text("private\n")
    (corpus_dir / "big.txt").write_text("x" * BIG)
    (corpus_dir / "half.txt").write_text("y" * (BIG // 2 + 100))
    (corpus_dir / "utf16.txt").write_bytes("text".encode("utf-16"))
    (corpus_dir / "empty-dir").mkdir()
    (corpus_dir / "linked-dir").symlink_to(outside, target_is_directory=True)
    (corpus_dir / "proc-link").symlink_to("/proc/self/environ")
    (corpus_dir / "ok.txt").write_text("fine\n")
    return corpus_dir


LONG = "s_" + "a" * 5000
UNKNOWN_SESSION = "s_" + "A" * 16
UNKNOWN_TRAJECTORY = "t_" + "A" * 16

CASES: list[tuple[str, dict[str, object], str]] = [
    # load_context
    ("load_context", {}, "give exactly one of `content`"),
    ("load_context", {"content": "a", "path": "ok.txt"}, "give exactly one of `content`"),
    ("load_context", {"path": 5}, "should be a valid string"),
    ("load_context", {"content": ["a", "b"]}, "should be a valid string"),
    ("load_context", {"content": ""}, "the corpus is empty"),
    ("load_context", {"content": "a\x00b"}, "NUL bytes"),
    ("load_context", {"path": "ok\x00.txt"}, "NUL byte"),
    ("load_context", {"path": ""}, "path is empty"),
    ("load_context", {"content": "a", "session_id": "../../etc/passwd"}, "is not a valid session id"),
    ("load_context", {"content": "a", "session_id": LONG}, "at most 100 characters"),
    ("load_context", {"content": "a", "session_id": UNKNOWN_SESSION}, "no session"),
    ("load_context", {"content": "a", "name": "n" * 10_000}, "at most 500 characters"),
    ("load_context", {"content": "a", "encoding": "rot-13-nope"}, "unknown encoding"),
    ("load_context", {"content": "a", "errors": "ignore"}, "'strict' or 'replace'"),
    ("load_context", {"path": "big.txt"}, "over the corpus limit of 1,048,576 bytes (1 MB, RLM_MAX_CORPUS_MB)"),
    ("load_context", {"content": "z" * BIG}, f"content holds {BIG:,} bytes, over the corpus limit of 1,048,576 bytes"),
    ("load_context", {"path": "utf16.txt"}, "binary"),
    ("load_context", {"path": "empty-dir"}, "no text files to load"),
    ("load_context", {"path": "linked-dir/notes.txt"}, "outside the allowed roots"),
    ("load_context", {"path": "linked-dir"}, "outside the allowed roots"),
    ("load_context", {"path": "proc-link"}, "is on /proc"),
    ("load_context", {"path": "/dev/zero"}, "is on /dev"),
    ("load_context", {"path": "/etc/*"}, "starts outside the allowed roots (at /etc)"),
    ("load_context", {"path": "/**/*.txt"}, "starts outside the allowed roots (at /)"),
    ("load_context", {"path": "linked-dir/*"}, "starts outside the allowed roots"),
    ("load_context", {"path": "~root/.bashrc"}, "outside the allowed roots"),
    # repl_exec
    ("repl_exec", {"session_id": UNKNOWN_SESSION}, "is required"),
    ("repl_exec", {"code": "1"}, "is required"),
    ("repl_exec", {"session_id": UNKNOWN_SESSION, "code": None}, "should be a valid string"),
    ("repl_exec", {"session_id": UNKNOWN_SESSION, "code": 42}, "should be a valid string"),
    ("repl_exec", {"session_id": UNKNOWN_SESSION, "code": "1"}, "no session"),
    ("repl_exec", {"session_id": "s_/../../x", "code": "1"}, "is not a valid session id"),
    ("repl_exec", {"session_id": 7, "code": "1"}, "should be a valid string"),
    ("repl_exec", {"session_id": LONG, "code": "1"}, "at most 100 characters"),
    # rlm_query
    ("rlm_query", {"session_id": UNKNOWN_SESSION}, "query is required"),
    ("rlm_query", {"query": "q"}, "give session_id"),
    ("rlm_query", {"resume": "../etc/passwd"}, "not a valid trajectory id"),
    ("rlm_query", {"session_id": UNKNOWN_SESSION, "query": "q", "max_tokens": 0}, "greater than or equal to 1"),
    ("rlm_query", {"session_id": UNKNOWN_SESSION, "query": "q", "max_cost_usd": -1}, "greater than 0"),
    ("rlm_query", {"session_id": UNKNOWN_SESSION, "query": "q"}, "no session"),
    ("rlm_query", {"session_id": UNKNOWN_SESSION, "query": "q", "max_iterations": 0}, "greater than or equal to 1"),
    ("rlm_query", {"session_id": UNKNOWN_SESSION, "query": "q", "max_sub_calls": -1}, "greater than or equal to 0"),
    ("rlm_query", {"session_id": UNKNOWN_SESSION, "query": "q", "wait": "later"}, "valid boolean"),
    ("rlm_query", {"session_id": UNKNOWN_SESSION, "query": "q", "root_model": "m" * 1000}, "at most 300 characters"),
    # get_trajectory
    ("get_trajectory", {}, "is required"),
    ("get_trajectory", {"trajectory_id": "../../sessions/x"}, "is not a valid trajectory id"),
    ("get_trajectory", {"trajectory_id": UNKNOWN_TRAJECTORY}, UNKNOWN_TRAJECTORY),
    ("get_trajectory", {"trajectory_id": UNKNOWN_TRAJECTORY, "detail": "everything"}, "'summary' or 'full'"),
    # get_budget
    ("get_budget", {}, "is required"),
    ("get_budget", {"session_id": "x"}, "is not a valid session id"),
    ("get_budget", {"session_id": UNKNOWN_SESSION}, "no session"),
    # close_session
    ("close_session", {"session_id": UNKNOWN_SESSION}, "no session"),
    ("close_session", {"session_id": "x"}, "is not a valid session id"),
    ("close_session", {"session_id": None}, "should be a valid string"),
    # not a tool
    ("drop_tables", {}, "Unknown tool"),
]


async def test_every_tool_refuses_bad_input_clearly(client, files: Path, request: pytest.FixtureRequest) -> None:
    reference = await call(client, "load_context", path="ok.txt")
    sid = reference["session_id"]
    await call(client, "repl_exec", session_id=sid, code="kept = context.upper()")

    problems = []
    for tool, arguments, expected in CASES:
        text = await call_error(client, tool, **arguments)
        if expected not in text:
            problems.append(f"{tool}({str(arguments)[:80]}): {expected!r} not in {text[:400]!r}")
        if "Traceback" in text:
            problems.append(f"{tool}({str(arguments)[:80]}) showed a traceback: {text[:400]!r}")
    assert not problems, "\n".join(problems)

    # Bad code is a result, not a tool error; an empty one is refused.
    assert "code is empty" in await call_error(client, "repl_exec", session_id=sid, code="  \n")
    too_long = await call_error(client, "repl_exec", session_id=sid, code="#" * 200_001)
    assert "over the limit of 200,000" in too_long
    nul = await call(client, "repl_exec", session_id=sid, code="x = 1\x00")
    assert nul["error"]["type"] == "SyntaxError"
    assert "query is empty" in await call_error(client, "rlm_query", session_id=sid, query=" ")

    # An append that would take the corpus over the limit is refused and loses nothing.
    half = await call(client, "load_context", path="half.txt")
    over = await call_error(client, "load_context", path="half.txt", session_id=half["session_id"])
    assert "over the limit" in over
    still = await call(client, "repl_exec", session_id=half["session_id"], code="len(context)")
    assert still["stdout"] == f"{BIG // 2 + 100}\n"

    after = await call(client, "repl_exec", session_id=sid, code="kept, context")
    assert after["stdout"] == "('FINE\\n', 'fine\\n')\n" and not after["restarted"]
    live = {s["session_id"] for s in (await call(client, "list_sessions"))["sessions"]}
    assert sid in live and half["session_id"] in live
    if request.getfixturevalue("transport") == "http":
        server = request.getfixturevalue("http_server").process.pid
        assert len(children(server)) == len(live)  # one sandbox per live session, none left by a failed load


async def test_binary_and_undecodable_files_keep_the_session(client, files: Path) -> None:
    """A failed add to a session leaves its corpus as it was."""
    (files / "raw.bin").write_bytes(bytes(range(256)) * 4)
    (files / "cp1252.txt").write_bytes("na\u00efve \u20ac\n".encode("cp1252"))
    loaded = await call(client, "load_context", content="base")
    sid = loaded["session_id"]
    assert "binary" in await call_error(client, "load_context", path="raw.bin", session_id=sid)
    assert "not valid utf-8" in await call_error(client, "load_context", path="cp1252.txt", session_id=sid)
    out = await call(client, "repl_exec", session_id=sid, code="context")
    assert out["stdout"] == "'base'\n"
    fixed = await call(client, "load_context", path="cp1252.txt", session_id=sid, encoding="cp1252")
    assert fixed["documents"] == 2
    out = await call(client, "repl_exec", session_id=sid, code="context[1].splitlines()[1]")
    assert out["stdout"] == "'na\u00efve \u20ac'\n"
    assert os.path.exists(files / "raw.bin")
