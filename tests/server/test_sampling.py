"""The client's own model through MCP sampling, on both protocol generations and both transports.

``mode="legacy"`` is the initialize handshake that desktop clients speak: the
server sends ``sampling/createMessage`` mid-call. The SDK's default mode speaks
2026-07-28, where the tool returns ``InputRequiredResult`` rounds instead.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from conftest import HttpServer, server_env
from helpers import call, call_error, children, until_spinning
from mcp import Client, StdioServerParameters
from mcp_types import (
    CallToolResult,
    CreateMessageRequestParams,
    CreateMessageResult,
    CreateMessageResultWithTools,
    InputRequiredResult,
    SamplingCapability,
    SamplingToolsCapability,
    TextContent,
    ToolUseContent,
)

pytestmark = pytest.mark.anyio
CHUNKS = 12


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, corpus_dir: Path) -> dict[str, str]:
    return server_env(
        tmp_path_factory.mktemp("data"),
        corpus_dir,
        "",
        AWS_ACCESS_KEY_ID="",
        AWS_SECRET_ACCESS_KEY="",
        RLM_SUB_MODEL="sampling",
        RLM_ROOT_MODEL="sampling",
    )


class ClientModel:
    """The client's model: a scripted root and a sub-model that counts 'HUM' labels.

    The root calls the python tool when the request offers it, and writes a ```repl block when not.
    """

    def __init__(self, root_code: list[str]):
        self.root_code = root_code
        self.root_turns: list[CreateMessageRequestParams] = []
        self.sub_prompts: list[str] = []

    async def __call__(self, context: Any, params: CreateMessageRequestParams) -> Any:
        if params.system_prompt and not params.tools:
            self.root_turns.append(params)
            turn = sum(1 for m in params.messages if m.role == "assistant")
            source = self.root_code[min(turn, len(self.root_code) - 1)]
            text = TextContent(type="text", text=f"turn {turn}\n```repl\n{source}\n```")
            return CreateMessageResult(role="assistant", content=text, model="client-model-1", stop_reason="endTurn")
        if params.tools:
            self.root_turns.append(params)
            turn = sum(1 for m in params.messages if m.role == "assistant")
            source = self.root_code[min(turn, len(self.root_code) - 1)]
            return CreateMessageResultWithTools(
                role="assistant",
                content=[
                    TextContent(type="text", text=f"turn {turn}"),
                    ToolUseContent(type="tool_use", id=f"use_{turn}", name="python", input={"code": source}),
                ],
                model="client-model-1",
                stop_reason="toolUse",
            )
        prompt = params.messages[-1].content
        assert isinstance(prompt, TextContent)
        self.sub_prompts.append(prompt.text)
        return CreateMessageResult(
            role="assistant",
            content=TextContent(type="text", text=str(prompt.text.count("| HUM"))),
            model="client-model-1",
            stop_reason="endTurn",
        )


@contextlib.asynccontextmanager
async def sampling_client(
    transport: str, env: dict[str, str], http: HttpServer | None, model: Any, *, mode: str, tools: bool = True
) -> AsyncIterator[Client]:
    target: Any = (
        StdioServerParameters(command=sys.executable, args=["-m", "rlm_mcp"], env=env) if transport == "stdio" else None
    )
    if target is None:
        assert http is not None
        target = http.url
    async with Client(
        target,
        read_timeout_seconds=120,
        mode=mode,
        sampling_callback=model,
        sampling_capabilities=SamplingCapability(tools=SamplingToolsCapability() if tools else None),
        input_required_max_rounds=40,
    ) as client:
        yield client


CORPUS = "".join(f"q{i} question | {['HUM', 'LOC', 'NUM'][i % 3]}\n" for i in range(CHUNKS * 10))
MAP_REDUCE = """
lines = context.splitlines()
chunks = ['\\n'.join(lines[i:i + 10]) for i in range(0, len(lines), 10)]
counts = llm_query_batched(['How many lines are about people?\\n' + c for c in chunks])
print(len(chunks), counts[:3])
FINAL(sum(int(c) for c in counts))
"""


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_root_and_sub_calls_on_the_clients_model(transport, env, request, mode) -> None:
    http = request.getfixturevalue("http_server") if transport == "http" else None
    model = ClientModel(["print(len(context))", MAP_REDUCE])
    async with sampling_client(transport, env, http, model, mode=mode) as client:
        sid = (await call(client, "load_context", content=CORPUS))["session_id"]
        out = await call(client, "rlm_query", session_id=sid, query="How many questions are about people?")
    assert out["status"] == "completed", out
    assert out["answer"] == str(CORPUS.count("| HUM")) == "40"
    assert out["iterations"] == 2 and out["sub_calls"] == CHUNKS
    assert len(model.sub_prompts) == CHUNKS and len(model.root_turns) == 2
    second = model.root_turns[1]
    assert second.system_prompt and "llm_query" in second.system_prompt
    assert [t.name for t in second.tools or []] == ["python"]
    result = second.messages[-1].content_as_list[0]
    assert result.type == "tool_result" and result.tool_use_id == "use_0"
    assert result.content[0].text == str(len(CORPUS))  # the root saw what its code printed
    assert out["usage"]["sub_input_tokens"] > 0  # estimated: sampling reports no token counts
    assert out["cost_usd"] is None


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_a_client_without_sampling_tools(transport, env, request, mode) -> None:
    """A client that samples but not with tools serves llm_query, and a root in the text protocol."""
    http = request.getfixturevalue("http_server") if transport == "http" else None
    model = ClientModel(["print(llm_query(context))", "FINAL(llm_query(context))"])
    async with sampling_client(transport, env, http, model, mode=mode, tools=False) as client:
        sid = (await call(client, "load_context", content="a | HUM\nb | HUM\nc | LOC"))["session_id"]
        out = await call(client, "repl_exec", session_id=sid, code="print(llm_query(context))")
        assert out["error"] is None and out["stdout"] == "2\n"
        out = await call(client, "rlm_query", session_id=sid, query="?")
        assert (out["status"], out["answer"], out["iterations"]) == ("completed", "2", 2), out
        error = await call_error(client, "rlm_query", session_id=sid, query="?", wait=False)
        assert "needs wait=true" in error
    first, second = model.root_turns
    assert not first.tools and "```repl" in (first.system_prompt or "")
    assert "REPL output:\n2" in second.messages[-1].content_as_list[0].text


async def test_a_client_without_sampling_gets_a_clear_error(client) -> None:
    sid = (await call(client, "load_context", content="x"))["session_id"]
    out = await call(client, "repl_exec", session_id=sid, code="llm_query('hi')")
    assert out["error"]["type"] == "LLMError"
    assert "declared the sampling capability" in out["error"]["message"]
    assert "VS Code supports sampling" in out["error"]["message"]
    error = await call_error(client, "rlm_query", session_id=sid, query="?")
    assert "declared the sampling capability" in error


async def test_input_required_rounds_on_the_wire(env) -> None:
    """2026-07-28, driven by hand: a batch travels in one round, and an unanswered request is asked again."""
    params = StdioServerParameters(command=sys.executable, args=["-m", "rlm_mcp"], env=env)
    async with Client(params, read_timeout_seconds=60, sampling_callback=ClientModel([]),
                      sampling_capabilities=SamplingCapability()) as client:  # fmt: skip
        sid = (await call(client, "load_context", content="x"))["session_id"]
        arguments = {"session_id": sid, "code": "print(llm_query_batched(['one', 'two', 'three']))"}
        first = await client.session.call_tool("repl_exec", arguments, allow_input_required=True)
        assert isinstance(first, InputRequiredResult) and first.request_state
        asked = first.input_requests or {}
        prompts = {key: req.params.messages[0].content.text for key, req in asked.items()}
        assert sorted(prompts.values()) == ["one", "three", "two"]

        def answer(text: str) -> CreateMessageResult:
            return CreateMessageResult(role="assistant", content=TextContent(type="text", text=text), model="m")

        keys = sorted(prompts, key=lambda k: prompts[k])
        partial = {key: answer(prompts[key].upper()) for key in keys[:2]}  # "one" and "three"
        second = await client.session.call_tool(
            "repl_exec", arguments, input_responses=partial, request_state=first.request_state,
            allow_input_required=True,
        )  # fmt: skip
        assert isinstance(second, InputRequiredResult)
        again = second.input_requests or {}
        assert [req.params.messages[0].content.text for req in again.values()] == ["two"]
        final = await client.session.call_tool(
            "repl_exec", arguments, input_responses={key: answer("TWO") for key in again},
            request_state=second.request_state, allow_input_required=True,
        )  # fmt: skip
        assert isinstance(final, CallToolResult) and not final.is_error
        assert final.structured_content["stdout"] == "['ONE', 'TWO', 'THREE']\n"


async def test_cancelling_a_round_stops_the_run(env) -> None:
    """2026-07-28: the run lives between rounds; a client that cancels the call while its code runs stops it."""
    params = StdioServerParameters(command=sys.executable, args=["-m", "rlm_mcp"], env=env)
    model = ClientModel(["kept = 1\nwhile True:\n    kept = 1"])
    before = children(os.getpid())
    async with Client(params, read_timeout_seconds=60, sampling_callback=model,
                      sampling_capabilities=SamplingCapability(tools=SamplingToolsCapability())) as client:  # fmt: skip
        (server,) = [
            pid for pid in children(os.getpid()) - before if b"rlm_mcp" in Path(f"/proc/{pid}/cmdline").read_bytes()
        ]
        sid = (await call(client, "load_context", content="x"))["session_id"]
        async with anyio.create_task_group() as tg:

            async def ask() -> None:
                await client.call_tool("rlm_query", {"session_id": sid, "query": "?"})

            tg.start_soon(ask)
            await until_spinning(server)  # the root's answer arrived and its endless loop burns CPU
            tg.cancel_scope.cancel()
        assert len(model.root_turns) == 1  # the first round asked for the root's turn; its code was running
        with anyio.fail_after(300):
            while True:
                session = next(s for s in (await call(client, "list_sessions"))["sessions"] if s["session_id"] == sid)
                if not session["busy"]:
                    break
                await anyio.sleep(0.1)
        trajectory = await call(client, "get_trajectory", trajectory_id=session["runs"][-1])
    assert trajectory["status"] == "cancelled", trajectory["message"]
