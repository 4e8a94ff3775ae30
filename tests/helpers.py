"""Small helpers shared by the tests (fixtures live in conftest.py)."""

from __future__ import annotations

import contextlib
import json
import re
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from rlm_mcp.testing.bedrock import ConverseRequest, Reply, Responder, echo


async def call(client: Client, tool: str, **arguments: object) -> dict:
    """Call a tool that must succeed; return its structured result."""
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, result.content[0].text if result.content else result
    assert result.structured_content is not None
    return result.structured_content


async def call_error(client: Client, tool: str, **arguments: object) -> str:
    """Call a tool that must fail; return the error text."""
    result = await client.call_tool(tool, arguments)
    assert result.is_error, f"{tool} should have failed but returned {result.structured_content}"
    return result.content[0].text


def direct_children(pid: int) -> set[int]:
    """The pids of a process's children, from /proc."""
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found.update(int(c) for c in (task / "children").read_text().split())
        except OSError:
            continue
    return found


def is_template(pid: int) -> bool:
    """Whether ``pid`` is a worker template (``sandbox.template``), which forks workers and is not one."""
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip() == "rlm-template"
    except OSError:
        return False


def children(pid: int) -> set[int]:
    """A server's sandbox workers: its children, and those of its worker template, without the template."""
    found: set[int] = set()
    for child in direct_children(pid):
        if is_template(child):
            found.update(direct_children(child))
        else:
            found.add(child)
    return found


def alive(pid: int) -> bool:
    """Running, as opposed to gone or a zombie waiting to be reaped."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def rpc(url: str, method: str, params: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
    """One JSON-RPC POST; the reply may come as JSON or as a one-event SSE stream."""
    response = httpx2.post(
        url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params}, headers=headers, timeout=300
    )
    assert response.status_code == 200, response.text
    if response.headers["content-type"].startswith("text/event-stream"):
        data = [line[5:] for line in response.text.splitlines() if line.startswith("data:")]
        return json.loads(data[-1])
    return response.json()


def tool_result(reply: dict[str, Any]) -> dict[str, Any]:
    assert "result" in reply, reply
    assert not reply["result"].get("isError"), reply["result"]
    return reply["result"]["structuredContent"]


def holding(word: str, release: threading.Event, then: Responder = echo) -> Responder:
    """A Converse responder that keeps any prompt containing ``word`` waiting until ``release`` is set."""

    def respond(request: ConverseRequest) -> Reply:
        if word in request.last_user_text:
            release.wait(120)
        return then(request)

    return respond


@contextlib.asynccontextmanager
async def bearer_client(url: str, token: str) -> AsyncIterator[Client]:
    """A real MCP client over streamable HTTP whose every request carries ``Authorization: Bearer <token>``."""
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=120) as http,
        Client(streamable_http_client(url, http_client=http), read_timeout_seconds=120) as client,
    ):
        yield client


async def until_requested(fake: Any, word: str, count: int = 1) -> None:
    """Wait until ``count`` requests containing ``word`` reached the fake: the sign that the code sending them runs.

    Tests act on a sign that something is in progress, never after a fixed time; the bound only keeps a broken
    server from hanging the suite.
    """
    import anyio

    with anyio.fail_after(300):
        while sum(word in r.last_user_text for r in list(fake.requests)) < count:
            await anyio.sleep(0.02)


def cpu_ticks(pid: int) -> int:
    """User and system clock ticks a process has used, from /proc (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])


async def until_spinning(server: int, ticks: int = 20) -> None:
    """Wait until one of ``server``'s sandbox workers has burnt ``ticks`` more clock ticks: code is running in it."""
    import anyio

    start: dict[int, int] = {}
    with anyio.fail_after(300):
        while True:
            for worker in children(server):
                now = cpu_ticks(worker)
                if now - start.setdefault(worker, now) >= ticks:
                    return
            await anyio.sleep(0.05)


def code_examples(text: str) -> list[str]:
    """The code a prompt shows: indented lines under a numbered step (one example per step), and ```repl blocks."""
    found: list[str] = []
    current: list[str] | None = None
    for line in text.splitlines():
        if re.match(r"^\d+\. ", line):
            current = []
            found.append("")
        elif current is not None and re.match(r"^ {3}```", line):
            continue  # the skill fences its examples; the code between the fences is the example
        elif current is not None and re.match(r"^ {3}\S", line):
            current.append(line[3:])
            found[-1] = "\n".join(current)
        else:
            current = None
    found = [f for f in found if f]
    found += [block.strip("\n") for block in re.findall(r"```repl\n(.*?)```", text, re.S)]
    return found
