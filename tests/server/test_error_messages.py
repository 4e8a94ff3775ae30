"""Errors that say what to do: model backends through their real clients, and MCP protocol errors by the spec.

Bedrock errors are played by the Converse fake in botocore's own error shape
(``x-amzn-ErrorType``), so boto3 parses them as it parses AWS's; the
OpenAI-compatible errors by its fake. Protocol errors go through a real
``mcp.Client`` over both transports, and over the handshake-era protocol too.
"""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest
from conftest import SUB_MODEL, HttpServer, connect
from helpers import call
from mcp import Client, StdioServerParameters
from mcp.shared.exceptions import MCPError

from rlm_mcp.errors import ModelError
from rlm_mcp.models.bedrock import BedrockClient
from rlm_mcp.models.openai import OpenAIClient
from rlm_mcp.testing.bedrock import ConverseFake, Fault
from rlm_mcp.testing.openai import ChatCompletionsFake

pytestmark = pytest.mark.anyio


@pytest.fixture
def bedrock(fake: ConverseFake, monkeypatch: pytest.MonkeyPatch) -> Iterator[BedrockClient]:
    monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", fake.url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAFAKEFAKEFAKE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "fake-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    yield BedrockClient(pool_size=2, max_attempts=3, read_timeout_s=10)


async def _bedrock_error(
    bedrock: BedrockClient, fake: ConverseFake, fault: Fault, model: str = SUB_MODEL
) -> ModelError:
    fake.respond = lambda request: fault
    with pytest.raises(ModelError) as caught:
        await bedrock.complete(model, "hello", max_tokens=10)
    return caught.value


@pytest.mark.parametrize(
    ("code", "message", "words"),
    [
        ("UnrecognizedClientException", "The security token included in the request is invalid.",
         "AWS does not know this access key id"),
        ("InvalidSignatureException", "The request signature we calculated does not match the signature you provided.",
         "the secret access key does not match"),
        ("ExpiredTokenException", "The security token included in the request is expired",
         "have expired (boto3 found them in: env). Fix: refresh them"),
    ],
)  # fmt: skip
async def test_bedrock_bad_credentials_say_what_to_fix(
    bedrock: BedrockClient, fake: ConverseFake, code: str, message: str, words: str
) -> None:
    error = await _bedrock_error(bedrock, fake, Fault(403, code, message))
    text = str(error)
    assert error.kind == "auth"
    assert text.startswith("AWS rejected the credentials") and words in text
    assert "boto3 found them in: env" in text  # where the credentials came from (here: environment variables)
    assert message not in text or text.index(words) < text.index(message)  # the fix first, AWS's words after
    assert len(fake.requests) == 1  # not retried


@pytest.mark.parametrize(
    "fault",
    [
        Fault(400, "ValidationException", "The provided model identifier is invalid."),
        Fault(404, "ResourceNotFoundException", "Model not found."),
    ],
)
async def test_bedrock_unknown_model_names_the_region_and_the_fix(
    bedrock: BedrockClient, fake: ConverseFake, fault: Fault
) -> None:
    error = await _bedrock_error(bedrock, fake, fault, model="anthropic.claude-nonsense-v9:0")
    text = str(error)
    assert error.kind == "config"
    assert "model anthropic.claude-nonsense-v9:0 was not found in eu-west-1" in text
    assert "aws bedrock list-foundation-models --region eu-west-1" in text
    assert "eu.anthropic.claude-nonsense-v9:0" in text  # the inference-profile id to try, for this region
    assert "--root-model" in text and "RLM_ROOT_MODEL" in text


async def test_bedrock_model_that_needs_an_inference_profile(bedrock: BedrockClient, fake: ConverseFake) -> None:
    refusal = (
        "Invocation of model ID anthropic.claude-sonnet-4-5-20250929-v1:0 with on-demand throughput isn't "
        "supported. Retry your request with the ID or ARN of an inference profile that contains this model."
    )
    error = await _bedrock_error(
        bedrock, fake, Fault(400, "ValidationException", refusal), model="anthropic.claude-sonnet-4-5-20250929-v1:0"
    )
    assert error.kind == "config"
    assert "Use its inference profile, eu.anthropic.claude-sonnet-4-5-20250929-v1:0" in str(error)


def _closed_port() -> int:
    """A loopback port nothing listens on (connections to it are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_bedrock_refused_connection_to_a_local_endpoint_fails_at_once(
    monkeypatch: pytest.MonkeyPatch, bedrock: BedrockClient
) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", url)
    client = BedrockClient(pool_size=1, max_attempts=8, read_timeout_s=10)
    attempts = []
    await client.check()
    client._get_client().meta.events.register("before-send.bedrock-runtime", lambda **kw: attempts.append(1))
    with pytest.raises(ModelError) as caught:
        await client.complete(SUB_MODEL, "hello", max_tokens=10)
    assert caught.value.kind == "unavailable"
    assert f"nothing answers at {url}" in str(caught.value) and "AWS_ENDPOINT_URL_BEDROCK_RUNTIME" in str(caught.value)
    assert len(attempts) == 1  # one attempt, not eight with backoff between them


async def test_openai_refused_connection_to_a_local_server_fails_at_once(caplog: pytest.LogCaptureFixture) -> None:
    url = f"http://localhost:{_closed_port()}/v1"
    client = OpenAIClient(base_url=url, api_key=None, max_attempts=6, read_timeout_s=5, pool_size=1)
    with caplog.at_level(logging.WARNING, logger="rlm_mcp.models.openai"), pytest.raises(ModelError) as caught:
        await client.complete("llama3.1:8b", "hi", max_tokens=10)
    await client.aclose()
    assert caught.value.kind == "unavailable"
    assert str(caught.value).startswith(f"nothing is listening at {url} (connection refused)")
    assert "ollama serve" in str(caught.value)
    assert not [r for r in caplog.records if "retrying" in r.getMessage()]  # no retries: it failed on the first


async def test_openai_unreachable_remote_server_says_so_before_retrying(caplog: pytest.LogCaptureFixture) -> None:
    """Not on this machine: worth retrying, but the first failure is logged at once (the CLI shows warnings)."""
    client = OpenAIClient(base_url="http://192.0.2.1:9/v1", api_key=None, max_attempts=2, read_timeout_s=1, pool_size=1)
    with caplog.at_level(logging.WARNING, logger="rlm_mcp.models.openai"), pytest.raises(ModelError) as caught:
        await client.complete("m", "hi", max_tokens=10)
    await client.aclose()
    assert caught.value.kind in ("unavailable", "timeout")
    assert [r for r in caplog.records if r.getMessage().startswith("cannot reach http://192.0.2.1:9/v1")]


async def test_openai_base_url_without_v1_is_blamed_not_the_model() -> None:
    with ChatCompletionsFake() as server:
        client = OpenAIClient(base_url=server.url, api_key=None, max_attempts=1, read_timeout_s=5, pool_size=1)
        with pytest.raises(ModelError) as caught:
            await client.complete("llama3.1:8b", "hi", max_tokens=10)
        await client.aclose()
    text = str(caught.value)
    assert caught.value.kind == "config"
    assert f"set --openai-base-url / RLM_OPENAI_BASE_URL to {server.url}/v1" in text
    assert "model llama3.1:8b was not found" not in text


# -- MCP: arguments, prompts and resources ---------------------------------------------------------


async def test_argument_errors_are_one_sentence_per_field(client) -> None:
    result = await client.call_tool("rlm_query", {"session_id": "s_x", "query": "q", "max_iterations": 0})
    text = result.content[0].text
    assert result.is_error
    assert text == "invalid arguments for rlm_query: `max_iterations` should be greater than or equal to 1, not 0."
    result = await client.call_tool("load_context", {"errors": "ignore", "include": "*.py"})
    text = result.content[0].text
    assert "`errors` should be 'strict' or 'replace', not 'ignore'" in text
    assert "`include` should be a valid list, not '*.py'" in text
    assert "pydantic" not in text and "type=" not in text and "https://" not in text
    result = await client.call_tool("repl_exec", {})
    text = result.content[0].text
    assert "`session_id` is required (the session_id returned by load_context)" in text
    assert "`code` is required (Python code to run" in text


async def test_unknown_prompt_and_missing_resources_have_spec_codes(client) -> None:
    with pytest.raises(MCPError) as caught:
        await client.get_prompt("no_such_prompt", {})
    assert caught.value.error.code == -32602  # invalid params, not 0
    assert "unknown prompt 'no_such_prompt'" in caught.value.error.message and "rlm_guide" in caught.value.error.message
    for uri in ("rlm://trajectories/t_doesNotExist00", "rlm://sessions/s_doesNotExist00"):
        with pytest.raises(MCPError) as caught:
            await client.read_resource(uri)
        # The 2026-07-28 protocol (the client's default) says -32602 (SEP-2164); never -32603.
        assert caught.value.error.code == -32602, (uri, caught.value.error)
    with pytest.raises(MCPError) as caught:
        await client.read_resource("rlm://trajectories/not-an-id")
    assert caught.value.error.code == -32602


async def test_missing_resource_is_32002_for_handshake_era_clients(env) -> None:
    params = StdioServerParameters(command=sys.executable, args=["-m", "rlm_mcp"], env=env)
    async with Client(params, mode="legacy", read_timeout_seconds=60) as legacy:
        with pytest.raises(MCPError) as caught:
            await legacy.read_resource("rlm://trajectories/t_doesNotExist00")
        assert caught.value.error.code == -32002
        with pytest.raises(MCPError) as caught:
            await legacy.get_prompt("no_such_prompt", {})
        assert caught.value.error.code == -32602
        sid = (await call(legacy, "load_context", content="still works"))["session_id"]
        assert sid.startswith("s_")


async def test_the_http_log_line_names_the_endpoint(env) -> None:
    server = HttpServer({**env, "RLM_LOG_LEVEL": "INFO"}, stderr=subprocess.PIPE, text=True)
    try:
        async with connect("http", env, server) as http:
            await http.list_tools()
    finally:
        server.stop()
    log_text = server.process.stderr.read()
    assert f"serving MCP on http://127.0.0.1:{server.port}/mcp " in log_text, log_text
    assert f"http://127.0.0.1:{server.port}/trajectories/" in log_text


async def test_no_root_model_names_the_argument_and_the_setting(env) -> None:
    without_root = {k: v for k, v in env.items() if k != "RLM_ROOT_MODEL"}
    async with connect("stdio", without_root) as client:
        sid = (await call(client, "load_context", content="text"))["session_id"]
        result = await client.call_tool("rlm_query", {"session_id": sid, "query": "?"})
    text = result.content[0].text
    assert result.is_error
    assert "no root model is configured: pass the root_model argument" in text and "RLM_ROOT_MODEL" in text
