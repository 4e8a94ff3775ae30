"""Every reply shape real models produce, end to end, over each backend's real wire format.

Each test runs once per backend: Bedrock Converse (boto3 against the Converse
fake), an OpenAI-compatible server (the chat-completions fake) and the MCP
client's own model (sampling, answered by the sampling fake through the real
``mcp.Client``). The server is a subprocess spoken to over stdio, one per
backend for the whole module; each test scripts the root with the same
backend-neutral :class:`Reply` values, which each fake puts in its own wire
shape. Shapes a wire cannot carry (a raw argument string in MCP sampling,
whose tool inputs are JSON objects) are skipped there, saying why.
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT_MODEL, SUB_MODEL, connect, server_env
from helpers import call
from mcp import Client, StdioServerParameters
from mcp_types import SamplingCapability, SamplingToolsCapability

from rlm_mcp.testing.base import Fault, Reply, Responder, code, echo, scripted
from rlm_mcp.testing.openai import ChatCompletionsFake
from rlm_mcp.testing.sampling import SamplingFake

pytestmark = pytest.mark.anyio
CORPUS = "alpha beta gamma\ndelta alpha\nalpha omega\n"
BACKENDS = ["bedrock", "openai", "sampling"]


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def openai_fake() -> Iterator[ChatCompletionsFake]:
    with ChatCompletionsFake() as server:
        yield server


@dataclass
class Backend:
    name: str
    client: Client
    fake: Any
    root: str
    """The root's model id as its fake sees it."""

    def play(self, steps: list[Any], sub: Responder = echo) -> None:
        self.fake.respond = scripted(self.root, steps, sub)

    def roots(self) -> list[Any]:
        return self.fake.requests_for(self.root)


def backend_env(name: str, tmp: Path, corpus_dir: Path, converse_url: str, openai_url: str, **extra: str) -> dict:
    models = {
        "bedrock": {},
        "openai": {"RLM_ROOT_MODEL": "openai:local-root", "RLM_SUB_MODEL": "openai:local-sub"},
        "sampling": {"RLM_ROOT_MODEL": "sampling:root", "RLM_SUB_MODEL": "sampling:sub"},
    }[name]
    return server_env(tmp, corpus_dir, converse_url, RLM_OPENAI_BASE_URL=openai_url, **models, **extra)


def sampling_client(env: dict[str, str], fake: SamplingFake, *, tools: bool = True) -> Client:
    """The real MCP client with a sampling callback (the handshake-era protocol: one request per sample)."""
    return Client(
        StdioServerParameters(command=sys.executable, args=["-m", "rlm_mcp"], env=env),
        read_timeout_seconds=120,
        mode="legacy",
        sampling_callback=fake,
        sampling_capabilities=SamplingCapability(tools=SamplingToolsCapability() if tools else None),
    )


@pytest.fixture(scope="module", params=BACKENDS)
async def backend(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, corpus_dir: Path, fake, openai_fake
) -> AsyncIterator[Backend]:
    name = request.param
    env = backend_env(name, tmp_path_factory.mktemp(name), corpus_dir, fake.url, openai_fake.base_url)
    if name == "sampling":
        sampler = SamplingFake()
        async with sampling_client(env, sampler) as client:
            yield Backend(name, client, sampler, "root")
    else:
        async with connect("stdio", env) as client:
            yield Backend(name, client, fake if name == "bedrock" else openai_fake,
                          ROOT_MODEL if name == "bedrock" else "local-root")  # fmt: skip


@pytest.fixture(autouse=True)
def _fresh(request: pytest.FixtureRequest) -> None:
    if "backend" in request.fixturenames:
        backend: Backend = request.getfixturevalue("backend")
        backend.fake.requests.clear()
        backend.fake.respond = echo


async def run(backend: Backend, steps: list[Any], *, sid: str | None = None) -> tuple[dict, dict, str]:
    """One rlm_query with the root playing ``steps``; its result, full trajectory and session id."""
    backend.fake.requests.clear()
    backend.play(steps)
    if sid is None:
        sid = (await call(backend.client, "load_context", content=CORPUS))["session_id"]
    out = await call(backend.client, "rlm_query", session_id=sid, query="How often does alpha occur?")
    trajectory = await call(backend.client, "get_trajectory", trajectory_id=out["trajectory_id"], detail="full")
    return out, trajectory, sid


def raw_arguments_only(backend: Backend) -> None:
    if backend.name == "sampling":
        pytest.skip("MCP sampling carries tool inputs as JSON objects: a raw argument string cannot occur")


# -- code in the text ----------------------------------------------------------------------------------------


async def test_fenced_code_runs_one_or_several_blocks_in_order(backend: Backend) -> None:
    out, trajectory, _ = await run(backend, [
        Reply(text="Let me look.\n```repl\nn = len(context)\nprint(n)\n```"),
        Reply(text="```python3\nwords = context.split()\n```\nthen\n```py\nprint(words.count('alpha'), n)\n```"),
        Reply(text="FINAL(words.count('alpha'))"),
    ])  # fmt: skip
    assert (out["status"], out["answer"]) == ("completed", "3"), out
    roots = backend.roots()
    assert f"REPL output:\n{len(CORPUS)}" in roots[1].last_user_text
    assert f"REPL output of block 2 of 2:\n3 {len(CORPUS)}" in roots[2].last_user_text
    assert [s["code"] for s in trajectory["steps"]] == [
        "n = len(context)\nprint(n)", "words = context.split()", "print(words.count('alpha'), n)",
        "FINAL(words.count('alpha'))",
    ]  # fmt: skip
    assert trajectory["steps"][0]["root_text"].startswith("Let me look.")


async def test_final_alone_in_a_fence(backend: Backend) -> None:
    out, _, _ = await run(backend, [Reply(text="```repl\nFINAL('fenced answer')\n```")])
    assert (out["status"], out["answer"]) == ("completed", "fenced answer")


async def test_code_and_a_text_answer_in_one_reply_run_the_code_first(backend: Backend) -> None:
    out, _, _ = await run(backend, [
        Reply(text="Checking:\n```python\nprint(context.count('alpha'))\n```\nThere are probably 2."),
        Reply(text="There are 3."),
    ])  # fmt: skip
    assert (out["status"], out["answer"], out["iterations"]) == ("completed", "There are 3.", 2)
    assert "REPL output:\n3" in backend.roots()[1].last_user_text


# -- FINAL written in the text ---------------------------------------------------------------------------------


async def test_final_in_text_is_resolved_in_the_repl(backend: Backend) -> None:
    out, trajectory, sid = await run(backend, [code("total = 6"), Reply(text="Done.\nFINAL_VAR(total)")])
    assert out["answer"] == "6"
    assert trajectory["steps"][-1]["code"] == "FINAL_VAR('total')"
    assert "resolved in the REPL" in trajectory["steps"][-1]["notes"][0]
    for written, answer in [
        ("FINAL(total * 7)", "42"),                          # an expression, evaluated
        ('FINAL("Paris")', "Paris"),                         # a string, without its quotes
        ("FINAL(The total is six (6).)", "The total is six (6)."),  # prose, taken as written
        ("Answer: FINAL(max)", "max"),                       # a word that names a builtin
    ]:  # fmt: skip
        out, _, _ = await run(backend, [Reply(text=written)], sid=sid)
        assert (out["status"], out["answer"]) == ("completed", answer), written


async def test_final_in_text_on_the_last_turn(backend: Backend) -> None:
    backend.fake.requests.clear()
    backend.play([code("x = 5"), Reply(text="<think>out of turns</think>\nFINAL(x * 2)")])
    sid = (await call(backend.client, "load_context", content=CORPUS))["session_id"]
    out = await call(backend.client, "rlm_query", session_id=sid, query="?", max_iterations=1)
    assert (out["status"], out["answer"]) == ("limit_reached", "10"), out


async def test_a_final_that_fails_goes_back_to_the_root(backend: Backend) -> None:
    out, _, _ = await run(backend, [
        Reply(text="FINAL_VAR(missing)"),
        Reply(text="```python\n1 / 0\n```\nFINAL(5)"),
        code("FINAL('fixed')"),
    ])  # fmt: skip
    assert (out["status"], out["answer"]) == ("completed", "fixed")
    roots = backend.roots()
    assert "no variable named 'missing'" in roots[1].last_user_text
    assert "FINAL_VAR(missing) in your reply was evaluated as Python and failed" in roots[1].last_user_text
    assert "ZeroDivisionError" in roots[2].last_user_text and "FINAL(5) in your reply was not used" in (
        roots[2].last_user_text
    )


# -- reasoning ------------------------------------------------------------------------------------------------


async def test_reasoning_is_never_run_never_answered_never_sent_back(backend: Backend) -> None:
    out, trajectory, _ = await run(backend, [
        Reply(text="<think>\nDraft:\n```python\nFINAL('from the draft')\n```\n</think>\n"
                   "```python\nseen = len(context)\n```", reasoning="a reasoning field too"),
        Reply(text="<thinking>done</thinking>\nThe corpus has 42 characters."),
    ])  # fmt: skip
    assert (out["status"], out["answer"]) == ("completed", "The corpus has 42 characters.")
    first = trajectory["steps"][0]
    assert first["code"] == "seen = len(context)"
    assert "Draft" in first["root_reasoning"] and "a reasoning field too" in first["root_reasoning"]
    assert "<think>" not in first["root_text"]
    seen = backend.roots()[1].all_text
    assert "from the draft" not in seen and "a reasoning field too" not in seen


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
async def test_a_reply_of_reasoning_only_is_asked_again(backend: Backend, field: str) -> None:
    if backend.name != "openai" and field == "reasoning":
        pytest.skip("the field name is an OpenAI-compatible server's choice (Ollama's 'reasoning')")
    if backend.name == "openai":
        backend.fake.reasoning_field = field
    try:
        out, trajectory, _ = await run(backend, [Reply(reasoning="hmm, where to start"), code("FINAL(1)")])
    finally:
        if backend.name == "openai":
            backend.fake.reasoning_field = "reasoning_content"
    assert out["answer"] == "1"
    assert "Your reply was only reasoning" in backend.roots()[1].last_user_text
    assert trajectory["steps"][0]["root_reasoning"] == "hmm, where to start"


async def test_reasoning_cut_off_at_the_output_limit(backend: Backend) -> None:
    out, _, _ = await run(backend, [
        Reply(text="<think>\nI will read every line, one by one, and then", stop_reason="max_tokens"),
        code("FINAL(2)"),
    ])  # fmt: skip
    assert out["answer"] == "2"
    assert "cut off at the output limit while reasoning" in backend.roots()[1].last_user_text


# -- tool calls -----------------------------------------------------------------------------------------------


async def test_a_tool_call_cut_off_at_the_output_limit_says_so(backend: Backend) -> None:
    partial: Any = {"code": "for line in context.splitlines():\n    print("}
    if backend.name == "openai":
        partial = '{"code": "for line in context.splitlines():\\n    print('  # the arguments, cut mid-string
    out, trajectory, _ = await run(backend, [
        Reply(text="Counting.", tool_calls=[("python", partial)], stop_reason="max_tokens"),
        code("FINAL('shorter')"),
    ])  # fmt: skip
    assert out["answer"] == "shorter"
    said = backend.roots()[1].tool_results[0]
    assert "cut off at the output limit (8,192 tokens)" in said and "split the step" in said
    assert "no code" not in said
    assert trajectory["steps"][0]["code"] is None and "cut off" in trajectory["steps"][0]["notes"][0]


async def test_tool_input_in_every_shape_models_write(backend: Backend) -> None:
    shapes: list[Any] = [
        {"source": "acc = [1]"},
        {"code": json.dumps({"code": "acc.append(2)"})},
        {"python": "acc.append(3)"},
        {"code": ["acc.append(4)", "acc.append(5)"]},
    ]
    if backend.name != "sampling":  # raw argument strings: OpenAI's arguments, a string document in Converse
        shapes += ["acc.append(6)", json.dumps({"code": "acc.append(7)"})]
    if backend.name == "openai":
        shapes += [json.dumps(json.dumps({"code": "acc.append(8)"}))]
    out, trajectory, _ = await run(backend, [Reply(tool_calls=[("python", s)]) for s in shapes] + [code("FINAL(acc)")])
    assert out["status"] == "completed"
    assert json.loads(out["answer"]) == list(range(1, len(shapes) + 2))
    assert all(step["error"] is None for step in trajectory["steps"])


async def test_a_final_among_several_tool_calls_skips_the_rest(backend: Backend) -> None:
    out, trajectory, sid = await run(backend, [
        Reply(text="All at once.", tool_calls=[
            ("python", {"code": "a = 1"}), ("python", {"code": "FINAL(a)"}),
            ("python", {"code": "a = 2"}), ("shell", {"cmd": "ls"}),
        ]),
    ])  # fmt: skip
    assert (out["status"], out["answer"]) == ("completed", "1")
    steps = trajectory["steps"]
    assert [s["code"] for s in steps] == ["a = 1", "FINAL(a)", "a = 2", None]
    assert steps[0]["root_text"] == "All at once."
    assert all("not run: the run ended with FINAL" in s["notes"][0] for s in steps[2:])
    assert (await call(backend.client, "repl_exec", session_id=sid, code="a"))["stdout"] == "1\n"


async def test_malformed_tool_use_is_asked_again(backend: Backend) -> None:
    if backend.name != "bedrock":
        pytest.skip("malformed_tool_use is a Converse stop reason")
    out, _, _ = await run(backend, [Reply(stop_reason="malformed_tool_use"), code("FINAL(3)")])
    assert out["answer"] == "3" and "could not read your last reply" in backend.roots()[1].last_user_text


# -- stop reasons ------------------------------------------------------------------------------------------------


async def test_a_text_reply_cut_off_is_asked_to_continue(backend: Backend) -> None:
    out, _, _ = await run(backend, [Reply(text="The answer is", stop_reason="max_tokens"), Reply(text="It is 3.")])
    assert (out["answer"], out["iterations"]) == ("It is 3.", 2)
    assert "cut off at the output limit" in backend.roots()[1].last_user_text


@pytest.mark.parametrize("stop", ["guardrail_intervened", "content_filtered"])
async def test_a_blocked_reply_fails_the_run(backend: Backend, stop: str) -> None:
    if backend.name == "sampling":
        pytest.skip("MCP sampling has no stop reason for a blocked reply")
    if backend.name == "openai" and stop == "guardrail_intervened":
        pytest.skip("chat completions has one such reason, content_filter")
    out, _, _ = await run(backend, [Reply(text="", stop_reason=stop)])
    assert out["status"] == "failed" and "was blocked" in out["message"]


# -- the text protocol -----------------------------------------------------------------------------------------


REFUSALS = {
    "bedrock": Fault(400, "ValidationException", "This model doesn't support tool use."),
    "openai": Fault(400, "api_error", "registry.ollama.ai/library/gemma3:4b does not support tools"),
}
TEXT_ROOT = [
    Reply(text="```\nlines = context.splitlines()\nprint(len(lines))\n```"),  # unlabelled: code in the text protocol
    Reply(text="There are 3 lines."),
    Reply(text='FINAL("3 lines")'),
]


def refusing_tools(backend: Backend, steps: list[Any]) -> Responder:
    play = scripted(backend.root, steps)

    def respond(request: Any) -> Any:
        return REFUSALS[backend.name] if request.model_id == backend.root and request.tools else play(request)

    return respond


async def test_a_model_without_tool_calling_gets_the_text_protocol(backend: Backend) -> None:
    if backend.name == "sampling":
        pytest.skip("a client without sampling tools is test_sampling_without_tools_gets_the_text_protocol")
    backend.fake.requests.clear()
    backend.fake.respond = refusing_tools(backend, TEXT_ROOT)
    sid = (await call(backend.client, "load_context", content=CORPUS))["session_id"]
    out = await call(backend.client, "rlm_query", session_id=sid, query="How many lines?")
    assert (out["status"], out["answer"]) == ("completed", "3 lines"), out
    roots = backend.roots()
    assert [bool(r.tools) for r in roots] == [True, False, False, False]  # refused once, then text
    assert "```repl" in roots[1].system and "`python` tool" not in roots[1].system
    assert "REPL output:\n3" in roots[2].last_user_text
    assert "no ```repl block and no FINAL" in roots[3].last_user_text  # plain text is asked for FINAL once
    trajectory = await call(backend.client, "get_trajectory", trajectory_id=out["trajectory_id"], detail="full")
    assert "no tool calling" in trajectory["steps"][0]["notes"][0]
    # The backend remembers: the next run starts in the text protocol without asking again.
    backend.fake.requests.clear()
    out = await call(backend.client, "rlm_query", session_id=sid, query="Again?")
    assert out["status"] == "completed" and not any(r.tools for r in backend.roots())


async def test_sampling_without_tools_gets_the_text_protocol(tmp_path: Path, corpus_dir: Path, fake, openai_fake):
    sampler = SamplingFake()
    sampler.respond = scripted("root", TEXT_ROOT, sub=lambda r: Reply(text="sub:" + r.last_user_text))
    env = backend_env("sampling", tmp_path, corpus_dir, fake.url, openai_fake.base_url)
    async with sampling_client(env, sampler, tools=False) as client:
        sid = (await call(client, "load_context", content=CORPUS))["session_id"]
        out = await call(client, "rlm_query", session_id=sid, query="How many lines?")
    assert (out["status"], out["answer"]) == ("completed", "3 lines"), out
    roots = sampler.requests_for("root")
    assert len(roots) == 3 and not any(r.tools for r in roots) and "```repl" in roots[0].system


async def test_the_setting_forces_the_text_protocol(tmp_path: Path, corpus_dir: Path, fake, openai_fake) -> None:
    fake.respond = scripted(ROOT_MODEL, [Reply(text="```repl\nx = llm_query('ping')\n```\nFINAL_VAR(x)")])
    env = backend_env("bedrock", tmp_path, corpus_dir, fake.url, openai_fake.base_url, RLM_ROOT_PROTOCOL="text")
    async with connect("stdio", env) as client:
        sid = (await call(client, "load_context", content=CORPUS))["session_id"]
        out = await call(client, "rlm_query", session_id=sid, query="?")
    assert (out["status"], out["answer"]) == ("completed", "PING")
    (root,) = fake.requests_for(ROOT_MODEL)
    assert not root.tools and "```repl" in root.system
    assert len(fake.requests_for(SUB_MODEL)) == 1


async def test_forcing_tools_on_a_client_without_them_says_what_to_set(tmp_path: Path, corpus_dir: Path, fake,
                                                                      openai_fake) -> None:  # fmt: skip
    env = backend_env("sampling", tmp_path, corpus_dir, fake.url, openai_fake.base_url, RLM_ROOT_PROTOCOL="tools")
    async with sampling_client(env, SamplingFake(), tools=False) as client:
        sid = (await call(client, "load_context", content=CORPUS))["session_id"]
        out = await call(client, "rlm_query", session_id=sid, query="?")
    assert out["status"] == "failed" and "RLM_ROOT_PROTOCOL to auto or text" in out["message"]
