"""Shared fixtures: a Converse fake, and the server as a subprocess over stdio and streamable HTTP.

Every MCP-level test runs once per transport through the ``client`` fixture, the
way a real client sees the server: a separate process, spoken to by ``mcp.Client``.
Bedrock is the local Converse fake in this process, reached by the server
through ``AWS_ENDPOINT_URL_BEDROCK_RUNTIME``; each test scripts it as it needs.

No test depends on the machine's speed. Ordinary code runs under a compute limit
it can never meet (``EXEC_TIMEOUT_S``), however loaded the machine; a test of the
limit itself uses ``short_client`` (or ``SHORT_LIMITS``) with code that never
ends. Where a test must act while something is in progress, it waits for a sign
that it is (a request reaching the fake), never for a fixed time. Fixtures use
free ports and temporary directories, so the suite runs in parallel
(pytest-xdist) as well as serially.
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

from rlm_mcp.testing.bedrock import ConverseFake, echo

CHECKOUT = Path(__file__).resolve().parent.parent
SUB_MODEL = "fake.sub-model-v1"
ROOT_MODEL = "fake.root-model-v1"
EXEC_TIMEOUT_S = "600"
"""Compute seconds of one execution for ordinary test code: far beyond what any of it takes on any machine."""
SHORT_LIMITS = {"RLM_EXEC_TIMEOUT_S": "1", "RLM_KILL_GRACE_S": "1"}
"""For servers whose tests are about the compute limit: every piece of code they run ends at once or never."""


@pytest.fixture(scope="session")
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
        "RLM_EXEC_TIMEOUT_S": EXEC_TIMEOUT_S,
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
    """``rlm-mcp serve`` over streamable HTTP on ``port``, or on a free port (another one if a parallel test took
    it first)."""

    def __init__(self, env: dict[str, str], *extra_args: str, port: int | None = None, **popen: Any):
        for _ in range(1 if port else 5):
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
            if self._listening():
                return
        raise RuntimeError(f"server exited with {self.process.returncode}")

    def _listening(self) -> bool:
        """True once it listens; False if it exited (the port was taken meanwhile); hang guard of two minutes."""
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return True
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


@pytest.fixture(scope="module")
async def stdio_client(env: dict[str, str]) -> AsyncIterator[Client]:
    """One server over stdio per module, like ``http_server``: starting the SDK takes seconds of CPU."""
    async with connect("stdio", env) as connected:
        yield connected


@pytest.fixture(scope="module")
async def http_client(env: dict[str, str], http_server: HttpServer) -> AsyncIterator[Client]:
    async with connect("http", env, http_server) as connected:
        yield connected


@pytest.fixture
def client(transport: str, request: pytest.FixtureRequest) -> Client:
    """The module's server, over the transport of the test's parameter."""
    return request.getfixturevalue("stdio_client" if transport == "stdio" else "http_client")


@pytest.fixture(scope="module")
def short_env(tmp_path_factory: pytest.TempPathFactory, corpus_dir: Path, fake: ConverseFake) -> dict[str, str]:
    """A server with a one-second compute limit, for tests of the limit (their code never ends)."""
    return server_env(tmp_path_factory.mktemp("short"), corpus_dir, fake.url, **SHORT_LIMITS)


@pytest.fixture(scope="module")
def short_http_server(short_env: dict[str, str]) -> Iterator[HttpServer]:
    server = HttpServer(short_env)
    yield server
    server.stop()


@pytest.fixture(scope="module")
async def short_stdio_client(short_env: dict[str, str]) -> AsyncIterator[Client]:
    async with connect("stdio", short_env) as connected:
        yield connected


@pytest.fixture(scope="module")
async def short_http_client(short_env: dict[str, str], short_http_server: HttpServer) -> AsyncIterator[Client]:
    async with connect("http", short_env, short_http_server) as connected:
        yield connected


@pytest.fixture
def short_client(transport: str, request: pytest.FixtureRequest) -> Client:
    return request.getfixturevalue("short_stdio_client" if transport == "stdio" else "short_http_client")


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[str]:
    """moto's S3 in server mode on loopback; returns its endpoint URL (for AWS_ENDPOINT_URL_S3)."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()
