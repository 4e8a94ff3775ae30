"""Any model: the OpenAI-compatible backend against its wire fake, and root and sub-model on different backends.

The server here has no AWS configuration at all: a user with only a local
OpenAI-compatible server (Ollama, vLLM, LM Studio) gets the whole product.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ROOT_MODEL, SUB_MODEL, connect, server_env
from helpers import call

from rlm_mcp.errors import ModelError, ModelErrorKind
from rlm_mcp.models import Message, TextBlock, ToolCall, ToolResult, ToolSpec, parse_model
from rlm_mcp.models.openai import OpenAIClient
from rlm_mcp.testing.openai import ChatCompletionsFake, ChatRequest, Fault, Reply, code, scripted, throttled

pytestmark = pytest.mark.anyio

API_KEY = "sk-test-key"
LOCAL_SUB = "llama3.1:8b"
LOCAL_ROOT = "qwen2.5-coder:32b"


@pytest.fixture(scope="module")
def openai_fake() -> Iterator[ChatCompletionsFake]:
    with ChatCompletionsFake(api_key=API_KEY, completion_tokens_models=frozenset({"o-reasoner"})) as server:
        yield server


@pytest.fixture(autouse=True)
def _reset_openai_fake(openai_fake: ChatCompletionsFake) -> None:
    openai_fake.respond = lambda request: Reply(text=f"seen:{request.last_user_text}")
    openai_fake.requests.clear()


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, corpus_dir: Path, openai_fake: ChatCompletionsFake) -> dict:
    """No AWS anywhere: Bedrock is not configured, only the OpenAI-compatible server."""
    return server_env(
        tmp_path_factory.mktemp("data"),
        corpus_dir,
        "",
        AWS_ACCESS_KEY_ID="",
        AWS_SECRET_ACCESS_KEY="",
        AWS_DEFAULT_REGION="",
        RLM_SUB_MODEL=f"openai:{LOCAL_SUB}",
        RLM_ROOT_MODEL=f"openai:{LOCAL_ROOT}",
        RLM_OPENAI_BASE_URL=openai_fake.base_url,
        RLM_OPENAI_API_KEY=API_KEY,
    )


def test_model_syntax() -> None:
    assert parse_model("us.anthropic.claude-haiku-4-5-20251001-v1:0") == (
        "bedrock",
        "us.anthropic.claude-haiku-4-5-20251001-v1:0",
    )
    assert parse_model("bedrock:amazon.nova-lite-v1:0") == ("bedrock", "amazon.nova-lite-v1:0")
    assert parse_model("arn:aws:bedrock:us-east-1:1:inference-profile/p") == (
        "bedrock",
        "arn:aws:bedrock:us-east-1:1:inference-profile/p",
    )
    assert parse_model("openai:llama3.1:8b") == ("openai", "llama3.1:8b")
    assert parse_model("sampling") == ("sampling", "sampling")
    assert parse_model("sampling:claude-sonnet") == ("sampling", "sampling:claude-sonnet")
    with pytest.raises(ModelError, match="unknown model backend 'ollama'"):
        parse_model("ollama:llama3")
    with pytest.raises(ModelError, match="names no model"):
        parse_model("openai:")


async def test_sub_calls_on_a_local_openai_compatible_server(client, openai_fake) -> None:
    sid = (await call(client, "load_context", content="alpha\nbeta\ngamma"))["session_id"]
    out = await call(client, "repl_exec", session_id=sid, code="print(llm_query_batched(context.splitlines()))")
    assert out["error"] is None, out["error"]
    assert out["stdout"] == "['seen:alpha', 'seen:beta', 'seen:gamma']\n"
    assert out["sub_calls"]["count"] == 3 and out["sub_calls"]["input_tokens"] > 0
    requests = openai_fake.requests_for(LOCAL_SUB)
    assert len(requests) == 3
    first = requests[0]
    assert first.authorization == f"Bearer {API_KEY}"
    assert first.body["max_tokens"] == 4096 and first.body["messages"][0]["role"] == "user"
    trajectory_id = await _session_trajectory(client, sid)
    full = await call(client, "get_trajectory", trajectory_id=trajectory_id, detail="full")
    assert {c["model"] for c in full["steps"][0]["sub_calls"]} == {LOCAL_SUB}


async def _session_trajectory(client, sid: str) -> str:
    sessions = (await call(client, "list_sessions"))["sessions"]
    return next(s["trajectory_id"] for s in sessions if s["session_id"] == sid)


async def test_whole_loop_on_openai_compatible_models(client, openai_fake) -> None:
    corpus = "".join(f"line {i} {'ERROR' if i % 7 == 0 else 'ok'}\n" for i in range(70))

    def count_errors(request: ChatRequest) -> Reply:
        return Reply(text=str(request.last_user_text.count("ERROR")), input_tokens=30, output_tokens=2)

    openai_fake.respond = scripted(
        LOCAL_ROOT,
        [
            code("print(len(context.splitlines()))", text="Looking first.", input_tokens=100, output_tokens=20),
            code(
                "lines = context.splitlines()\n"
                "chunks = ['\\n'.join(lines[i:i + 20]) for i in range(0, len(lines), 20)]\n"
                "total = sum(int(a) for a in llm_query_batched(['Count the failing lines:\\n' + c for c in chunks]))\n"
                "FINAL(total)",
                input_tokens=200,
                output_tokens=40,
            ),
        ],
        sub=count_errors,
    )
    sid = (await call(client, "load_context", content=corpus))["session_id"]
    out = await call(client, "rlm_query", session_id=sid, query="How many error lines?")
    assert out["status"] == "completed", out
    assert out["answer"] == str(corpus.count("ERROR")) == "10"
    assert out["usage"]["root_input_tokens"] == 300 and out["usage"]["root_output_tokens"] == 60

    roots = openai_fake.requests_for(LOCAL_ROOT)
    assert len(roots) == 2
    first, second = roots
    assert first.body["messages"][0]["role"] == "system" and "python" in json.dumps(first.tools)
    assert first.tools[0]["function"]["parameters"]["required"] == ["code"]
    # The second turn carries the assistant's tool call and its result, linked by id.
    assistant = second.messages[1]
    call_id = assistant["tool_calls"][0]["id"]
    assert json.loads(assistant["tool_calls"][0]["function"]["arguments"]) == {
        "code": "print(len(context.splitlines()))"
    }
    assert second.messages[2] == {"role": "tool", "tool_call_id": call_id, "content": "70"}
    assert second.tool_results == ["70"]


async def test_root_and_sub_model_on_different_backends(
    tmp_path: Path, corpus_dir: Path, fake, openai_fake: ChatCompletionsFake
) -> None:
    """Root on Bedrock (the Converse fake), sub-calls on the OpenAI-compatible server."""
    from rlm_mcp.testing.bedrock import code as converse_code
    from rlm_mcp.testing.bedrock import scripted as converse_scripted

    fake.respond = converse_scripted(ROOT_MODEL, [converse_code("FINAL(llm_query('ping'))")])
    env = server_env(
        tmp_path,
        corpus_dir,
        fake.url,
        RLM_SUB_MODEL=f"openai:{LOCAL_SUB}",
        RLM_OPENAI_BASE_URL=openai_fake.base_url,
        RLM_OPENAI_API_KEY=API_KEY,
    )
    async with connect("stdio", env) as client:
        sid = (await call(client, "load_context", content="x"))["session_id"]
        out = await call(client, "rlm_query", session_id=sid, query="?")
        assert (out["status"], out["answer"]) == ("completed", "seen:ping")
        # And the other way round, chosen per call: root on the OpenAI server, sub-calls on Bedrock.
        openai_fake.respond = scripted(LOCAL_ROOT, [code("FINAL(llm_query('pong'))")])
        out = await call(
            client,
            "rlm_query",
            session_id=sid,
            query="?",
            root_model=f"openai:{LOCAL_ROOT}",
            sub_model=f"bedrock:{SUB_MODEL}",
        )
        assert (out["status"], out["answer"]) == ("completed", "PONG")
    assert len(fake.requests_for(ROOT_MODEL)) == 1 and len(fake.requests_for(SUB_MODEL)) == 1
    assert [r.model_id for r in openai_fake.requests] == [LOCAL_SUB, LOCAL_ROOT]


def _client(fake: ChatCompletionsFake, key: str | None = API_KEY, attempts: int = 3) -> OpenAIClient:
    return OpenAIClient(base_url=fake.base_url, api_key=key, max_attempts=attempts, read_timeout_s=10, pool_size=4)


async def test_rate_limits_and_server_faults_are_retried(openai_fake: ChatCompletionsFake) -> None:
    attempts = 0
    lock = threading.Lock()

    def flaky(request: ChatRequest) -> Reply | Fault:
        nonlocal attempts
        with lock:
            attempts += 1
            n = attempts
        if n == 1:
            return throttled()
        if n == 2:
            return Fault(503, "overloaded", "The server is overloaded")
        return Reply(text="finally")

    openai_fake.respond = flaky
    client = _client(openai_fake)
    try:
        completion = await client.complete("m", "hi", max_tokens=10)
    finally:
        await client.aclose()
    assert completion.text == "finally" and attempts == 3


@pytest.mark.parametrize(
    ("fault", "kind", "words"),
    [
        (Fault(400, "context_length_exceeded", "This model's maximum context length is 8192 tokens"), "context_window",
         "too long for m"),
        (Fault(404, "model_not_found", "model 'm' not found"), "config", "ollama list"),
        (throttled(), "throttled", "kept rate-limiting m"),
        (Fault(400, "invalid_value", "temperature is out of range"), "validation", "temperature is out of range"),
    ],
)  # fmt: skip
async def test_errors_say_what_to_fix(openai_fake: ChatCompletionsFake, fault: Fault, kind: str, words: str) -> None:
    openai_fake.respond = lambda request: fault
    client = _client(openai_fake, attempts=2)
    try:
        with pytest.raises(ModelError) as caught:
            await client.complete("m", "hi", max_tokens=10)
    finally:
        await client.aclose()
    assert caught.value.kind == kind and words in str(caught.value)


async def test_bad_key_and_unreachable_server(openai_fake: ChatCompletionsFake) -> None:
    client = _client(openai_fake, key="sk-wrong")
    with pytest.raises(ModelError, match="Check RLM_OPENAI_API_KEY") as caught:
        await client.complete("m", "hi", max_tokens=10)
    assert caught.value.kind == "auth"
    await client.aclose()
    gone = OpenAIClient(base_url="http://127.0.0.1:9/v1", api_key=None, max_attempts=2, read_timeout_s=2, pool_size=1)
    with pytest.raises(ModelError, match=r"nothing is listening at http://127\.0\.0\.1:9/v1") as caught:
        await gone.complete("m", "hi", max_tokens=10)
    assert caught.value.kind == "unavailable"
    hosted = OpenAIClient(
        base_url="https://api.openai.com/v1", api_key=None, max_attempts=1, read_timeout_s=2, pool_size=1
    )
    with pytest.raises(ModelError, match="RLM_OPENAI_API_KEY"):
        await hosted.check()


async def test_reasoning_models_get_max_completion_tokens(openai_fake: ChatCompletionsFake) -> None:
    client = _client(openai_fake)
    try:
        first = await client.complete("o-reasoner", "think", max_tokens=99)
        second = await client.complete("o-reasoner", "again", max_tokens=99)
    finally:
        await client.aclose()
    assert first.text == "seen:think" and second.text == "seen:again"
    served = openai_fake.requests_for("o-reasoner")
    assert [r.body.get("max_completion_tokens") for r in served] == [99, 99]  # asked once with max_tokens, then learnt


async def test_conversation_translation_round_trips(openai_fake: ChatCompletionsFake) -> None:
    """Tool calls go out as JSON-string arguments and come back parsed, raw newlines and all."""
    openai_fake.respond = lambda request: Reply(tool_calls=[("python", {"code": "x = 1\nprint(x)"})])
    client = _client(openai_fake)
    history = [
        Message("user", [TextBlock("question")]),
        Message("assistant", [TextBlock("let me look"), ToolCall("call_1", "python", {"code": "len(context)"})]),
        Message("user", [ToolResult("call_1", "Traceback: boom", is_error=True)]),
    ]
    tool = ToolSpec("python", "run code", {"type": "object", "properties": {"code": {"type": "string"}}})
    try:
        reply = await client.chat("r", system="sys", messages=history, tools=[tool], max_tokens=50)
    finally:
        await client.aclose()
    assert reply.stop_reason == "tool_use" and reply.tool_calls[0].input == {"code": "x = 1\nprint(x)"}
    sent = openai_fake.requests_for("r")[0].body["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "tool"]
    assert sent[2]["content"] == "let me look"
    assert sent[3] == {"role": "tool", "tool_call_id": "call_1", "content": "ERROR: Traceback: boom"}


def test_api_key_settings_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    from rlm_mcp.config import Settings

    monkeypatch.setenv("OPENAI_API_KEY", "sk-the-usual-variable")
    assert Settings().openai_api_key.get_secret_value() == "sk-the-usual-variable"
    monkeypatch.setenv("RLM_OPENAI_API_KEY", "sk-ours")
    assert Settings().openai_api_key.get_secret_value() == "sk-ours"
    assert Settings(openai_api_key="sk-flag").openai_api_key.get_secret_value() == "sk-flag"
    assert "sk-ours" not in repr(Settings())  # a secret is never printed


def test_model_error_kinds_keep_their_words_and_a_misspelt_one_is_refused() -> None:
    """Kinds are written into trajectories and compared as strings: the enum keeps the words, and a kind nobody
    defined fails where it is raised rather than silently never matching."""
    error = ModelError("slow down", ModelErrorKind.THROTTLED)
    assert error.kind == "throttled" and f"{error.kind}" == "throttled"
    with pytest.raises(ValueError, match="throttle"):
        ModelError("slow down", "throttle")  # type: ignore[arg-type]
