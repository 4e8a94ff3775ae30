"""Fuzzing every tool's input through the real MCP client (hypothesis).

Arguments are drawn from each tool's parameter names (plus unknown ones) with
values of every JSON type, biased towards the shapes that get furthest into the
server: real and fake session ids, paths in and out of the allowed roots, code
snippets. Whatever comes in, the answer must be a result or a clear error (never
a traceback or an internal exception), and afterwards a session loaded before
the fuzzing still answers correctly.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import anyio.from_thread
import anyio.to_thread
import pytest
from conftest import SHORT_LIMITS, server_env
from helpers import call
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.anyio

PARAMETERS = {
    "load_context": ["path", "content", "session_id", "name", "encoding", "errors"],
    "repl_exec": ["session_id", "code"],
    "rlm_query": ["session_id", "query", "root_model", "sub_model", "max_iterations", "max_sub_calls", "wait"],
    "get_trajectory": ["trajectory_id", "detail"],
    "list_sessions": [],
    "close_session": ["session_id"],
}
INTERNAL = (
    "Traceback (most recent call last)",
    "Internal Server Error",
    "object has no attribute",
    "is not subscriptable",
    "unexpected keyword argument",
    "sandbox failed",
)

text = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=40)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**12), 10**12) | st.floats(allow_nan=False) | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=6,
)
paths = st.sampled_from(
    ["doc.txt", "../doc.txt", "/etc/passwd", "/proc/self/environ", "*.txt", "/**", "~", ".", "", "/dev/null"]
)
code = st.sampled_from(["1 + 1", "print(len(context))", "import os", "while True:\n    pass", "FINAL('x')", ""])
SHAPED = {
    "path": paths,
    "code": code,
    "detail": st.sampled_from(["summary", "full", "all"]),
    "encoding": st.sampled_from(["utf-8", "latin-1", "utf-16", "nope"]),
    "errors": st.sampled_from(["strict", "replace", "ignore"]),
    "max_iterations": st.integers(-1, 3),
    "max_sub_calls": st.integers(-1, 3),
    "wait": st.booleans(),
    "root_model": st.sampled_from(["fake.root-model-v1", "fake.sub-model-v1", "no-such-model"]),
    "sub_model": st.sampled_from(["fake.sub-model-v1", "no-such-model"]),
}


REQUIRED = {
    "load_context": ["content"],
    "repl_exec": ["session_id", "code"],
    "rlm_query": ["session_id", "query"],
    "get_trajectory": ["trajectory_id"],
    "close_session": ["session_id"],
}


@st.composite
def tool_calls(draw: st.DrawFn, session_id: str, trajectory_id: str) -> tuple[str, dict[str, Any]]:
    tool = draw(st.sampled_from(sorted(PARAMETERS)))
    optional = [name for name in [*PARAMETERS[tool], "unexpected"] if name not in REQUIRED.get(tool, [])]
    names = draw(st.lists(st.sampled_from(optional), unique=True, max_size=2)) if optional else []
    if draw(st.integers(0, 3)):  # mostly well-formed enough to get past the schema
        names = [*REQUIRED.get(tool, []), *names]
    ids = st.sampled_from([session_id, session_id, "s_" + "A" * 16, trajectory_id, "../x"])
    arguments = {}
    for name in names:
        shaped = ids if name in ("session_id", "trajectory_id") else SHAPED.get(name, text)
        arguments[name] = draw(st.one_of(shaped, shaped, shaped, shaped, json_values))
    if tool == "close_session" and arguments.get("session_id") == session_id:
        arguments["session_id"] = "s_" + "B" * 16  # the reference session must survive to be checked
    return tool, arguments


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, corpus_dir: Path, fake) -> dict[str, str]:
    """A one-second compute limit: the fuzzed code either ends at once or never (``while True``)."""
    return server_env(tmp_path_factory.mktemp("data"), corpus_dir, fake.url, **SHORT_LIMITS)


@pytest.fixture(scope="module")
def doc(corpus_dir: Path) -> Path:
    path = corpus_dir / "doc.txt"
    path.write_text("fuzzing corpus\n")
    return path


async def test_fuzzed_tool_calls_get_a_result_or_a_clear_error(client, doc: Path) -> None:
    reference = await call(client, "load_context", path="doc.txt")
    sid, tid = reference["session_id"], reference["trajectory_id"]
    await call(client, "repl_exec", session_id=sid, code="kept = 41")
    seen: list[str] = []

    @settings(
        max_examples=100,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        database=None,
        derandomize=True,  # the same examples on every run: CI failures reproduce, coverage does not vary
    )
    @given(call_=tool_calls(sid, tid))
    def fuzz(call_: tuple[str, dict[str, Any]]) -> None:
        tool, arguments = call_
        result = anyio.from_thread.run(client.call_tool, tool, arguments)
        seen.append(tool)
        if result.is_error:
            message = result.content[0].text if result.content else ""
            assert message.strip(), f"{tool}({arguments}) failed without a message"
            assert not any(marker in message for marker in INTERNAL), f"{tool}({arguments}): {message[:500]}"
        else:
            assert result.structured_content is not None, f"{tool}({arguments}) returned no structured result"
            json.dumps(result.structured_content)
            made = result.structured_content.get("session_id")
            if tool == "load_context" and made != sid:  # keep the server lean for the next examples
                anyio.from_thread.run(client.call_tool, "close_session", {"session_id": made})

    # hypothesis drives the examples from a worker thread; each call runs on this event loop
    await anyio.to_thread.run_sync(fuzz)
    assert len(set(seen)) == len(PARAMETERS)  # every tool was reached
    after = await call(client, "repl_exec", session_id=sid, code="kept + 1, context")
    assert after["stdout"].startswith("(42, 'fuzzing corpus\\n')")
