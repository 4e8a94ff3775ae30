"""The server as a client sees it: tools, schemas, loading, running code, errors (stdio and HTTP)."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import call, call_error

pytestmark = pytest.mark.anyio

TOOLS = {"load_context", "repl_exec", "get_trajectory", "list_sessions", "close_session"}


@pytest.fixture(scope="module")
def big_file(corpus_dir: Path) -> Path:
    """A 50+ MB log with a known number of ERROR lines."""
    path = corpus_dir / "big.log"
    block = "".join(
        f"2026-01-01T00:00:{i % 60:02d} {'ERROR' if i % 100 == 7 else 'INFO '} request {i} served in {i % 97} ms\n"
        for i in range(10_000)
    )
    with path.open("w") as f:
        while f.tell() < 52 * 1024 * 1024:
            f.write(block)
    return path


async def test_tools_have_typed_schemas(client) -> None:
    tools = {t.name: t for t in (await client.list_tools()).tools}
    assert set(tools) >= TOOLS
    load = tools["load_context"]
    assert {"path", "content", "session_id", "encoding", "errors"} <= set(load.input_schema["properties"])
    assert load.output_schema and "session_id" in load.output_schema["properties"]
    repl = tools["repl_exec"]
    assert repl.input_schema["required"] == ["session_id", "code"]
    assert {"stdout", "error", "variables", "elapsed_ms", "sub_calls", "final"} <= set(repl.output_schema["properties"])
    assert tools["get_trajectory"].annotations.read_only_hint is True


async def test_large_file_and_persistent_variables(client, big_file: Path) -> None:
    loaded = await call(client, "load_context", path=str(big_file))
    assert loaded["type"] == "str"
    assert loaded["chars"] >= 50 * 1024 * 1024
    assert loaded["preview"].startswith("2026-01-01T00:00:00 INFO")
    sid = loaded["session_id"]

    counted = await call(
        client,
        "repl_exec",
        session_id=sid,
        code=(
            "import re\n"
            "errors = re.findall(r'^\\S+ ERROR', context, re.M)\n"
            "n = len(errors)\n"
            "print(n, len(context.splitlines()))"
        ),
    )
    lines = loaded["lines"]
    assert counted["error"] is None
    assert counted["stdout"] == f"{lines // 100} {lines}\n"
    assert {"name": "n", "type": "int", "size": None} in counted["variables"]
    after = await call(client, "repl_exec", session_id=sid, code="n - len(errors)")
    assert after["stdout"] == "0\n"


async def test_timeout_keeps_variables(short_client) -> None:
    """Code that never ends meets the compute limit; what it did before the loop survives."""
    sid = (await call(short_client, "load_context", content="a corpus"))["session_id"]
    await call(short_client, "repl_exec", session_id=sid, code="n = 41\nerrors = ['e']")
    timed_out = await call(short_client, "repl_exec", session_id=sid, code="n += 1\nwhile True:\n    pass")
    assert timed_out["timed_out"] is True
    assert timed_out["error"]["type"] == "TimeoutError"
    assert timed_out["restarted"] is False
    after = await call(short_client, "repl_exec", session_id=sid, code="n - len(errors)")
    assert after["stdout"] == "41\n"  # the increment before the loop survived, and so did `errors`


async def test_code_errors_are_structured(client) -> None:
    sid = (await call(client, "load_context", content="alpha beta gamma"))["session_id"]
    failed = await call(client, "repl_exec", session_id=sid, code="def f(x):\n    return x / 0\n\ny = f(1)")
    error = failed["error"]
    assert error["type"] == "ZeroDivisionError"
    assert error["line"] == 2
    assert "line 4, in <module>" in error["traceback"] and "return x / 0" in error["traceback"]
    assert "sandbox" not in error["traceback"]  # only the user's own frames

    syntax = await call(client, "repl_exec", session_id=sid, code="for x in")
    assert syntax["error"]["type"] == "SyntaxError"


async def test_final_and_final_var(client) -> None:
    sid = (await call(client, "load_context", content="one two three"))["session_id"]
    done = await call(client, "repl_exec", session_id=sid, code="words = context.split()\nFINAL(len(words))")
    assert done["final"] == "3"
    by_name = await call(client, "repl_exec", session_id=sid, code="answer = '-'.join(words)\nFINAL_VAR('answer')")
    assert by_name["final"] == "one-two-three"


async def test_bad_input_gets_clear_tool_errors(client) -> None:
    assert "exactly one of" in await call_error(client, "load_context")
    assert "exactly one of" in await call_error(client, "load_context", content="x", path="y")
    assert "no session 's_doesNotExist1'" in await call_error(
        client, "repl_exec", session_id="s_doesNotExist1", code="1"
    )
    assert "not a valid session id" in await call_error(client, "repl_exec", session_id="../../etc", code="1")
    assert "code" in await call_error(client, "repl_exec", session_id="s_doesNotExist1")  # missing field
    assert "not a valid trajectory id" in await call_error(client, "get_trajectory", trajectory_id="t_../x")
    # the server is still fine afterwards
    sid = (await call(client, "load_context", content="still here"))["session_id"]
    assert (await call(client, "repl_exec", session_id=sid, code="context"))["stdout"] == "'still here'\n"


async def test_sessions_list_and_close(client) -> None:
    sid = (await call(client, "load_context", content="abc"))["session_id"]
    listed = await call(client, "list_sessions")
    mine = [s for s in listed["sessions"] if s["session_id"] == sid]
    assert mine and mine[0]["chars"] == 3 and mine[0]["sub_call_budget"] == 50
    assert (await call(client, "close_session", session_id=sid)) == {"session_id": sid, "closed": True}
    assert "no session" in await call_error(client, "repl_exec", session_id=sid, code="1")
    assert "no session" in await call_error(client, "close_session", session_id=sid)


async def test_trajectory_records_every_exec(client) -> None:
    loaded = await call(client, "load_context", content="x" * 1000)
    sid, tid = loaded["session_id"], loaded["trajectory_id"]
    await call(client, "repl_exec", session_id=sid, code="a = len(context)")
    await call(client, "repl_exec", session_id=sid, code="print(a * 2)")
    await call(client, "repl_exec", session_id=sid, code="1/0")
    trajectory = await call(client, "get_trajectory", trajectory_id=tid, detail="full")
    assert trajectory["kind"] == "session" and trajectory["session_id"] == sid
    assert [s["code"] for s in trajectory["steps"]] == ["a = len(context)", "print(a * 2)", "1/0"]
    assert trajectory["steps"][1]["stdout"] == "2000\n"
    assert trajectory["steps"][2]["error"]["type"] == "ZeroDivisionError"
    assert trajectory["iterations"] == 3
