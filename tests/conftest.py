"""Shared fixtures: a Converse fake, and the server as a subprocess over stdio and streamable HTTP.

Every MCP-level test runs once per transport through the ``client`` fixture, the
way a real client sees the server: a separate process, spoken to by ``mcp.Client``.
Bedrock is the local Converse fake in this process, reached by the server
through ``AWS_ENDPOINT_URL_BEDROCK_RUNTIME``; each test scripts it as it needs.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, StdioServerParameters

from rlm_mcp.fakes.bedrock import ConverseFake, echo

CHECKOUT = Path(__file__).resolve().parent.parent
SUB_MODEL = "fake.sub-model-v1"
ROOT_MODEL = "fake.root-model-v1"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def fake() -> Iterator[ConverseFake]:
    with ConverseFake() as converse:
        yield converse


@pytest.fixture(autouse=True)
def _reset_fake(request: pytest.FixtureRequest) -> None:
    if "fake" in request.fixturenames:
        converse: ConverseFake = request.getfixturevalue("fake")
        converse.respond = echo
        converse.requests.clear()
        converse.max_in_flight = 0


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("corpus")


def server_env(data_dir: Path, roots: Path, fake_url: str, **overrides: str) -> dict[str, str]:
    env = {
        "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": fake_url,
        "AWS_ACCESS_KEY_ID": "AKIAFAKEFAKEFAKE",
        "AWS_SECRET_ACCESS_KEY": "fake-secret",
        "AWS_DEFAULT_REGION": "us-east-1",
        "RLM_SUB_MODEL": SUB_MODEL,
        "RLM_ROOT_MODEL": ROOT_MODEL,
        "RLM_DATA_DIR": str(data_dir),
        "RLM_ALLOWED_ROOTS": str(roots),
        "RLM_EXEC_TIMEOUT_S": "2",
        "RLM_KILL_GRACE_S": "1",
        "RLM_BEDROCK_MAX_ATTEMPTS": "3",
        "RLM_LOG_LEVEL": "WARNING",
        # Tests count the requests the fake gets: answers reused across tests would hide them. The cache's own
        # tests turn it on (test_subcall_cache.py).
        "RLM_SUBCALL_CACHE": "off",
        "PATH": os.environ.get("PATH", ""),
        # A server started in another directory still runs this checkout, not whichever one is installed.
        "PYTHONPATH": str(CHECKOUT),
    }
    env.update(overrides)
    return {k: v for k, v in env.items() if v != ""}


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, corpus_dir: Path, fake: ConverseFake) -> dict[str, str]:
    return server_env(tmp_path_factory.mktemp("data"), corpus_dir, fake.url)


class HttpServer:
    def __init__(self, env: dict[str, str], *extra_args: str, port: int | None = None, **popen: Any):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/mcp"
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "rlm_mcp",
                "serve",
                "--transport",
                "streamable-http",
                "--port",
                str(self.port),
                *extra_args,
            ],
            env=env,
            **popen,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return
            time.sleep(0.05)
        raise RuntimeError("server did not start listening")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture(scope="module")
def http_server(env: dict[str, str]) -> Iterator[HttpServer]:
    server = HttpServer(env)
    yield server
    server.stop()


@pytest.fixture(params=["stdio", "http"])
def transport(request: pytest.FixtureRequest) -> str:
    return request.param


@contextlib.asynccontextmanager
async def connect(transport: str, env: dict[str, str], http: HttpServer | None = None) -> AsyncIterator[Client]:
    if transport == "stdio":
        params = StdioServerParameters(command=sys.executable, args=["-m", "rlm_mcp"], env=env)
        async with Client(params, read_timeout_seconds=120) as client:
            yield client
    else:
        assert http is not None
        async with Client(http.url, read_timeout_seconds=120) as client:
            yield client


@pytest.fixture
async def client(transport: str, env: dict[str, str], request: pytest.FixtureRequest) -> AsyncIterator[Client]:
    http = request.getfixturevalue("http_server") if transport == "http" else None
    async with connect(transport, env, http) as connected:
        yield connected


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[str]:
    """moto's S3 in server mode on loopback; returns its endpoint URL (for AWS_ENDPOINT_URL_S3)."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()
