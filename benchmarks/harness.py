"""Running the real server for a benchmark: an MCP client over stdio, the Converse fake, and memory readings.

Every figure comes from the product as a client sees it: ``rlm-mcp`` runs as its
own process, spoken to by ``mcp.Client`` over stdio, with Bedrock reached through
boto3 at the local Converse fake (or at real Bedrock with ``--bedrock``).
Memory is read from ``/proc``: the peak resident set (``VmHWM``) of the server
and of each of its sandbox workers.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mcp import Client, StdioServerParameters

# Real model ids, so the price table turns the fake's token counts into a cost estimate.
ROOT_MODEL = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
SUB_MODEL = "us.anthropic.claude-haiku-4-5-20251001-v1:0"


@dataclass
class Target:
    """Where Bedrock is: the local fake (default) or the real service (``--bedrock``)."""

    fake_url: str | None
    root_model: str = ROOT_MODEL
    sub_model: str = SUB_MODEL

    def env(self) -> dict[str, str]:
        if self.fake_url is None:  # real Bedrock: the caller's own AWS settings, untouched
            keep = ("AWS_", "HOME", "PATH", "LANG")
            return {k: v for k, v in os.environ.items() if k.startswith(keep)}
        return {
            "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": self.fake_url,
            "AWS_ACCESS_KEY_ID": "AKIAFAKEFAKEFAKE",
            "AWS_SECRET_ACCESS_KEY": "fake-secret",
            "AWS_DEFAULT_REGION": "us-east-1",
            "PATH": os.environ.get("PATH", ""),
        }


def status_kb(pid: int, field_name: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = (entry / "stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
    return found


def comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def workers(server: int) -> tuple[list[int], list[int]]:
    """A server's sandbox workers and its worker templates (whose children are workers too)."""
    found, templates = [], []
    for pid in children(server):
        if comm(pid) == "rlm-template":
            templates.append(pid)
            found.extend(children(pid))
        else:
            found.append(pid)
    return found, templates


def find_server(marker: str) -> int | None:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                cmdline = (entry / "cmdline").read_bytes().split(b"\0")
                if b"rlm_mcp" in cmdline and marker.encode() in cmdline:
                    return int(entry.name)
    return None


@dataclass
class Server:
    """One server process and the client connected to it."""

    client: Client
    data_dir: Path
    pid: int | None
    settings: dict[str, str] = field(default_factory=dict)

    def memory(self) -> dict[str, int]:
        """Peak resident memory in bytes: the server's, and the sum over its sandbox workers (the worker template,
        which holds no corpus and shares its pages with the workers it forks, is reported apart)."""
        if self.pid is None:
            return {"server_peak": 0, "workers_peak": 0, "peak": 0, "template_peak": 0}
        server = status_kb(self.pid, "VmHWM") * 1024
        pids, templates = workers(self.pid)
        worker_peak = sum(status_kb(pid, "VmHWM") for pid in pids) * 1024
        template = sum(status_kb(pid, "VmHWM") for pid in templates) * 1024
        return {
            "server_peak": server,
            "workers_peak": worker_peak,
            "peak": server + worker_peak,
            "template_peak": template,
        }

    async def call(self, tool: str, **arguments: Any) -> dict[str, Any]:
        result = await self.client.call_tool(tool, arguments)
        if result.is_error:
            raise RuntimeError(f"{tool} failed: {result.content[0].text if result.content else result}")
        assert result.structured_content is not None
        return result.structured_content


@contextlib.asynccontextmanager
async def server(target: Target, roots: Path, **settings: str) -> AsyncIterator[Server]:
    """A fresh server (its own data directory), so peak-memory readings belong to one measurement."""
    with tempfile.TemporaryDirectory(prefix="rlm-bench-data-") as data:
        env = {
            **target.env(),
            "RLM_ROOT_MODEL": target.root_model,
            "RLM_SUB_MODEL": target.sub_model,
            "RLM_ALLOWED_ROOTS": str(roots),
            "RLM_LOG_LEVEL": "WARNING",
            "RLM_MAX_SUB_CALLS": "100000",
            "RLM_SUBCALL_CONCURRENCY": "16",
            "RLM_EXEC_TIMEOUT_S": "900",
            "RLM_RUN_TIMEOUT_S": "3600",
            "RLM_MAX_CORPUS_MB": "8192",
            "RLM_SUBCALL_CACHE": "off",  # figures of repeated runs measure the work, not the cache (but see savings)
            **settings,
        }
        params = StdioServerParameters(
            command=sys.executable, args=["-m", "rlm_mcp", "serve", "--data-dir", data], env=env
        )
        async with Client(params, read_timeout_seconds=3600) as client:
            yield Server(client, Path(data), find_server(data), settings)
