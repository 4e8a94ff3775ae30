"""House rules that keep the layers apart, and the command line."""

from __future__ import annotations

import ast
import contextlib
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import free_port
from helpers import call
from mcp import Client
from mcp.client.sse import sse_client

ROOT = Path(__file__).resolve().parent.parent


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_sandbox_knows_nothing_of_the_server() -> None:
    for path in (ROOT / "sandbox").rglob("*.py"):
        offending = {m for m in imported_modules(path) if m.split(".")[0] in ("rlm_mcp", "mcp", "boto3", "botocore")}
        assert not offending, f"{path.name} imports {offending}"


def test_only_config_reads_the_environment() -> None:
    readers = [
        path.relative_to(ROOT)
        for package in ("rlm_mcp", "sandbox")
        for path in (ROOT / package).rglob("*.py")
        if "os.environ" in path.read_text() or "os.getenv" in path.read_text()
    ]
    assert readers == [Path("rlm_mcp/config.py")]


def test_cli_help_lists_settings_with_their_variables() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "rlm_mcp", "serve", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for flag, env in [("--sub-model", "RLM_SUB_MODEL"), ("--exec-timeout-s", "RLM_EXEC_TIMEOUT_S")]:
        assert flag in out and env in out
    assert "--transport {stdio,streamable-http,sse}" in out


def test_bad_setting_is_a_clear_error() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "rlm_mcp", "--max-iterations", "0"], capture_output=True, text=True, timeout=300
    )
    assert done.returncode != 0
    assert "invalid setting: max_iterations (RLM_MAX_ITERATIONS or --max-iterations)" in done.stderr
    assert "greater than or equal to 1" in done.stderr and "Traceback" not in done.stderr
    assert done.stdout == ""  # stdout is the protocol channel: nothing else may go there


@pytest.mark.anyio
async def test_sse_transport(env: dict[str, str]) -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "rlm_mcp", "serve", "--transport", "sse", "--port", str(port)], env=env
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
            time.sleep(0.05)
        async with Client(sse_client(f"http://127.0.0.1:{port}/sse")) as client:
            sid = (await call(client, "load_context", content="over sse"))["session_id"]
            assert (await call(client, "repl_exec", session_id=sid, code="context.upper()"))["stdout"] == "'OVER SSE'\n"
    finally:
        process.terminate()
        process.wait(10)


def test_readme_test_command_is_what_ci_runs() -> None:
    """The default run, then the tests marked slow: CI runs everything, a developer's default run is fast."""
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    command = 'python3 -m pip install -e ".[dev]" && python3 -m pytest && python3 -m pytest -m slow'
    assert f"```bash\n{command}\n```" in readme
    assert command in ci.splitlines()


def test_readme_documents_every_setting() -> None:
    from rlm_mcp.config import Settings

    readme = (ROOT / "README.md").read_text()
    for name in Settings.model_fields:
        env = "AWS_REGION" if name == "aws_region" else f"RLM_{name.upper()}"
        assert f"| `{env}` | `--{name.replace('_', '-')}` |" in readme, f"{env} is missing from the README"
