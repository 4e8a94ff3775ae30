"""Many clients at once: how long each of 32 simultaneous ``load_context`` calls waits, over streamable HTTP.

Every load starts a session, so every load starts a sandbox. The figure is the
wait each client sees from the moment all of them are released together until
its result arrives: the p99 and the maximum over the rounds show whether starts
are serialized (the last client waits for every sandbox before it) or run side
by side. The floor is one load alone on the same idle server.
"""

from __future__ import annotations

import contextlib
import math
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
from mcp import Client

from benchmarks import harness


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.asynccontextmanager
async def http_server(target: harness.Target, roots: Path, **settings: str) -> AsyncIterator[str]:
    """A fresh server over streamable HTTP with its own data directory; yields the MCP URL."""
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="rlm-bench-data-") as data:
        env = {
            **target.env(),
            "RLM_ROOT_MODEL": target.root_model,
            "RLM_SUB_MODEL": target.sub_model,
            "RLM_ALLOWED_ROOTS": str(roots),
            "RLM_LOG_LEVEL": "WARNING",
            **settings,
        }
        command = [sys.executable, "-m", "rlm_mcp", "serve", "--data-dir", data]
        command += ["--transport", "streamable-http", "--port", str(port)]
        process = subprocess.Popen(command, env=env)
        try:
            with anyio.fail_after(60):
                while True:
                    if process.poll() is not None:
                        raise RuntimeError(f"the server exited with {process.returncode}")
                    try:
                        stream = await anyio.connect_tcp("127.0.0.1", port)
                    except OSError:
                        await anyio.sleep(0.05)
                        continue
                    await stream.aclose()
                    break
            yield f"http://127.0.0.1:{port}/mcp"
        finally:
            process.terminate()
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile: the smallest value with at least ``share`` of the values at or below it."""
    ordered = sorted(values)
    return ordered[max(math.ceil(share * len(ordered)) - 1, 0)]


async def _one_load(url: str, text: str, start: anyio.Event) -> float:
    async with Client(url, read_timeout_seconds=600) as client:
        await start.wait()
        started = time.perf_counter()
        result = await client.call_tool("load_context", {"content": text})
        waited = time.perf_counter() - started
        if result.is_error:
            raise RuntimeError(f"load_context failed: {result.content[0].text}")
        session_id = result.structured_content["session_id"]
        await client.call_tool("close_session", {"session_id": session_id})
    return waited


async def concurrent_loads(work: Path, target: harness.Target, clients: int = 32, rounds: int = 3) -> dict[str, Any]:
    """``clients`` simultaneous loads (each its own MCP client and session), ``rounds`` times; waits in seconds."""
    waits: list[float] = []
    round_max: list[float] = []
    async with http_server(target, work, RLM_MAX_SESSIONS=str(clients)) as url:
        alone = []
        for i in range(3):
            never = anyio.Event()
            never.set()
            alone.append(await _one_load(url, f"alone {i}", never))
        for r in range(rounds):
            start = anyio.Event()
            found: list[float] = []

            async def load(i: int, found: list[float] = found, start: anyio.Event = start, r: int = r) -> None:
                found.append(await _one_load(url, f"round {r} client {i}", start))

            async with anyio.create_task_group() as tg:
                for i in range(clients):
                    tg.start_soon(load, i)
                await anyio.sleep(1.0)  # every client connected and waiting at the gate
                start.set()
            waits.extend(found)
            round_max.append(max(found))
    return {
        "clients": clients,
        "rounds": rounds,
        "alone_s": round(statistics.median(alone), 3),
        "median_s": round(statistics.median(waits), 3),
        "p99_s": round(_percentile(waits, 0.99), 3),
        "max_s": round(max(waits), 3),
        "round_max_s": [round(x, 3) for x in round_max],
    }
