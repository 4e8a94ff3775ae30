"""The AgentCore Runtime contract: stateless /mcp on 0.0.0.0:8000, the platform's headers, /ping, shared request state.

The server is started with the image's exact entry-point arguments (only the port
differs, so tests can run side by side) and spoken to the way the platform does:
raw HTTP POSTs carrying ``Mcp-Session-Id`` and
``X-Amzn-Bedrock-AgentCore-Runtime-Session-Id``, a new one per request if it likes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import anyio
import httpx2
import pytest
import uvicorn
from conftest import HttpServer, free_port, server_env
from helpers import call, holding, rpc, tool_result
from mcp import Client, types
from mcp.client.streamable_http import streamable_http_client
from mcp.server.mcpserver.resolve import Elicit, Resolve
from mcp.shared.exceptions import MCPError
from pydantic import BaseModel

from rlm_mcp.config import Settings
from rlm_mcp.core.service import RLMService
from rlm_mcp.server.app import build_server

CONTRACT = ("--host", "0.0.0.0", "--stateless")  # with --transport streamable-http and --port: the image's ENTRYPOINT
KEYS = "a3f1" * 16
MODERN = "2026-07-28"


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory, corpus_dir: Path, fake) -> Iterator[HttpServer]:
    # AgentCore with IAM (SigV4) authenticates every invocation before it reaches the container.
    env = server_env(
        tmp_path_factory.mktemp("runtime"),
        corpus_dir,
        fake.url,
        RLM_REQUEST_STATE_KEYS=KEYS,
        RLM_ALLOW_UNAUTHENTICATED="true",
    )
    server = HttpServer(env, *CONTRACT)
    yield server
    server.stop()


def platform_headers(**extra: str) -> dict[str, str]:
    """What AgentCore Runtime adds to every invocation it forwards (fresh ids each time here)."""
    return {
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "Mcp-Session-Id": str(uuid.uuid4()),
        "X-Amzn-Bedrock-AgentCore-Runtime-Session-Id": f"runtime-session-{uuid.uuid4().hex}",
        "X-Amzn-Trace-Id": "Root=1-65f00000-000000000000000000000001",
        **extra,
    }


def raw_tool(url: str, name: str, arguments: dict[str, Any], headers: dict[str, str] | None = None) -> dict[str, Any]:
    """A tools/call over raw HTTP with the platform's headers; its structured result."""
    return tool_result(rpc(url, "tools/call", {"name": name, "arguments": arguments}, headers or platform_headers()))


def test_platform_headers_are_accepted_on_the_handshake_protocol(runtime: HttpServer) -> None:
    init = rpc(
        runtime.url,
        "initialize",
        {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "agentcore", "version": "1"}},
        platform_headers(),
    )
    assert init["result"]["serverInfo"]["name"] == "rlm-mcp"
    tools = rpc(runtime.url, "tools/list", {}, platform_headers())["result"]["tools"]
    assert {"load_context", "repl_exec", "rlm_query", "get_trajectory"} <= {t["name"] for t in tools}

    # No initialize on this "connection", new platform ids on every request: state follows our session_id.
    sid = raw_tool(runtime.url, "load_context", {"content": "alpha beta"})["session_id"]
    raw_tool(runtime.url, "repl_exec", {"session_id": sid, "code": "v = 7"})
    headers = platform_headers()
    del headers["Mcp-Session-Id"]  # the platform adds one only when the client sent none; both must work
    out = raw_tool(runtime.url, "repl_exec", {"session_id": sid, "code": "print(context, v)"}, headers)
    assert out["stdout"] == "alpha beta 7\n"


def test_platform_headers_are_accepted_on_the_stateless_protocol(runtime: HttpServer) -> None:
    meta = {"io.modelcontextprotocol/protocolVersion": MODERN, "io.modelcontextprotocol/clientCapabilities": {}}

    def call_tool(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        headers = platform_headers(**{"Mcp-Protocol-Version": MODERN, "Mcp-Method": "tools/call", "Mcp-Name": name})
        return tool_result(
            rpc(runtime.url, "tools/call", {"name": name, "arguments": arguments, "_meta": meta}, headers)
        )

    sid = call_tool("load_context", {"content": "gamma"})["session_id"]
    assert call_tool("repl_exec", {"session_id": sid, "code": "context.upper()"})["stdout"] == "'GAMMA'\n"


@pytest.mark.anyio
async def test_an_mcp_client_behind_the_platform(runtime: HttpServer) -> None:
    async with (
        httpx2.AsyncClient(headers=platform_headers(), timeout=60) as http,
        Client(streamable_http_client(runtime.url, http_client=http), read_timeout_seconds=60) as client,
    ):
        sid = (await call(client, "load_context", content="delta"))["session_id"]
        assert (await call(client, "repl_exec", session_id=sid, code="len(context)"))["stdout"] == "5\n"


def test_ping_reports_busy_while_work_runs(runtime: HttpServer, fake) -> None:
    ping_url = runtime.url.removesuffix("/mcp") + "/ping"
    first = httpx2.get(ping_url, timeout=10)
    assert first.status_code == 200 and first.headers["content-type"] == "application/json"
    assert set(first.json()) == {"status", "time_of_last_update"}
    assert first.json()["status"] == "Healthy" and isinstance(first.json()["time_of_last_update"], int)

    release = threading.Event()
    fake.respond = holding("WAIT", release)
    sid = raw_tool(runtime.url, "load_context", {"content": "x"})["session_id"]
    worker = threading.Thread(
        target=raw_tool, args=(runtime.url, "repl_exec", {"session_id": sid, "code": "llm_query('WAIT')"})
    )
    worker.start()
    try:
        deadline = time.monotonic() + 300  # only a hang guard: the request reaching the fake is the sign
        while not any("WAIT" in r.last_user_text for r in fake.requests) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.1)  # so a status change lands on a later second
        busy = httpx2.get(ping_url, timeout=10).json()
        assert busy["status"] == "HealthyBusy"
        assert busy["time_of_last_update"] > first.json()["time_of_last_update"]
    finally:
        release.set()
        worker.join(300)
    assert httpx2.get(ping_url, timeout=10).json()["status"] == "Healthy"


# -- multi-round-trip requests across replicas ------------------------------------------------------


class Colour(BaseModel):
    name: str


def ask_colour() -> Elicit[Colour]:
    return Elicit("Which colour?", Colour)


class RoundRobin(httpx2.AsyncBaseTransport):
    """A load balancer in miniature: each request goes to the next replica."""

    def __init__(self, ports: list[int]):
        self.ports = ports
        self.sent: list[tuple[int, str]] = []
        self._inner = httpx2.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        port = self.ports[len(self.sent) % len(self.ports)]
        self.sent.append((port, json.loads(request.content or b"{}").get("method", "")))
        request.url = request.url.copy_with(port=port)
        return await self._inner.handle_async_request(request)


async def _paint(port: int, balancer: RoundRobin, answer: Any) -> types.CallToolResult | MCPError:
    async with (
        httpx2.AsyncClient(transport=balancer, timeout=30) as http,
        Client(
            streamable_http_client(f"http://127.0.0.1:{port}/mcp", http_client=http), elicitation_callback=answer
        ) as client,
    ):
        try:
            return await client.call_tool("paint", {"thing": "the boat"})
        except MCPError as refused:
            return refused


async def paint_on_two_replicas(tmp_path: Path, keys: str) -> tuple[types.CallToolResult | MCPError, RoundRobin]:
    """Two servers built by build_server, each given a tool that asks the client a question mid-call."""
    ports = [free_port(), free_port()]
    servers = []
    for index, port in enumerate(ports):
        settings = Settings(data_dir=tmp_path / f"replica{index}", request_state_keys=keys)
        app = build_server(RLMService(settings))

        @app.tool()
        async def paint(thing: str, colour: Annotated[Colour, Resolve(ask_colour)]) -> str:
            return f"{thing} is {colour.name}"

        http_app = app.streamable_http_app(stateless_http=True)
        servers.append(uvicorn.Server(uvicorn.Config(http_app, host="127.0.0.1", port=port, log_config=None)))

    async def answer(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        return types.ElicitResult(action="accept", content={"name": "teal"})

    balancer = RoundRobin(ports)
    async with anyio.create_task_group() as tg:
        for server in servers:
            tg.start_soon(server.serve)
        while not all(server.started for server in servers):
            await anyio.sleep(0.05)
        try:
            result = await _paint(ports[0], balancer, answer)
        finally:
            for server in servers:
                server.should_exit = True
    return result, balancer


@pytest.mark.anyio
async def test_a_multi_round_trip_request_finishes_on_another_replica(tmp_path: Path) -> None:
    result, balancer = await paint_on_two_replicas(tmp_path, KEYS)
    assert (
        isinstance(result, types.CallToolResult)
        and not result.is_error
        and result.content[0].text == "the boat is teal"
    )
    rounds = [port for port, method in balancer.sent if method == "tools/call"]
    assert len(rounds) == 2 and rounds[0] != rounds[1]  # asked on one replica, answered on the other


@pytest.mark.anyio
async def test_without_shared_keys_the_second_round_is_refused(tmp_path: Path) -> None:
    result, balancer = await paint_on_two_replicas(tmp_path, "")  # each replica keeps a key of its own
    assert isinstance(result, MCPError) and result.error.message == "Invalid or expired requestState"
    assert len({port for port, method in balancer.sent if method == "tools/call"}) == 2


# -- the signed client of the deployment guide ------------------------------------------------------


def test_the_guides_client_asks_a_question(runtime: HttpServer, tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("the answer is in here\n")
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "AKIAFAKEFAKEFAKE", "AWS_SECRET_ACCESS_KEY": "fake"}
    client = Path(__file__).resolve().parents[2] / "scripts" / "agentcore_client.py"
    done = subprocess.run(
        [sys.executable, str(client), "--url", runtime.url, "--file", str(notes), "--query", "Where is it?"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "loaded 22 characters" in done.stdout and "completed after 1 iterations" in done.stdout


def test_the_guides_client_signs_for_agentcore(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAFAKEFAKEFAKE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "fake")
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
    import agentcore_client

    arn = "arn:aws:bedrock-agentcore:eu-central-1:123456789012:runtime/rlm_mcp-abc123"
    url = agentcore_client.runtime_url(arn)
    assert url == (
        "https://bedrock-agentcore.eu-central-1.amazonaws.com/runtimes/"
        "arn%3Aaws%3Abedrock-agentcore%3Aeu-central-1%3A123456789012%3Aruntime%2Frlm_mcp-abc123"
        "/invocations?qualifier=DEFAULT"
    )
    request = httpx2.Request("POST", url, content=b"{}", headers={"Content-Type": "application/json"})
    signed = next(agentcore_client.SigV4("bedrock-agentcore", "eu-central-1").auth_flow(request))
    assert "/eu-central-1/bedrock-agentcore/aws4_request" in signed.headers["Authorization"]


def test_a_short_request_state_key_is_refused_with_how_to_make_one(tmp_path: Path, fake) -> None:
    env = server_env(tmp_path, tmp_path, fake.url, RLM_REQUEST_STATE_KEYS="too-short")
    done = subprocess.run([sys.executable, "-m", "rlm_mcp"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "--request-state-keys / RLM_REQUEST_STATE_KEYS:" in done.stderr
    assert "at least 32 characters" in done.stderr and "secrets.token_hex(32)" in done.stderr
    assert "too-short" not in done.stderr  # a secret is never echoed
