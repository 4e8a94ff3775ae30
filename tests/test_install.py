"""rlm-mcp install: each client's real file and shape, merged with a backup, idempotent, with a dry run.

Every test runs the command as a subprocess under a temporary HOME and
XDG_CONFIG_HOME, so no real configuration is touched.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import call
from mcp import Client, StdioServerParameters

from rlm_mcp.fakes.openai import ChatCompletionsFake, Reply
from rlm_mcp.install import example_document

ROOT = Path(__file__).resolve().parent.parent
LOCAL = ["--sub-model", "openai:llama3.1:8b", "--openai-base-url", "http://localhost:11434/v1"]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


def install(home: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"), "PATH": os.environ.get("PATH", "")}
    return subprocess.run(
        [sys.executable, "-m", "rlm_mcp", "install", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd or home,
    )


@pytest.mark.parametrize(
    ("client", "relative", "key", "typed"),
    [
        ("claude-desktop", ".config/Claude/claude_desktop_config.json", "mcpServers", False),
        ("vscode", ".config/Code/User/mcp.json", "servers", True),
        ("cursor", ".cursor/mcp.json", "mcpServers", False),
        ("claude-code", ".claude.json", "mcpServers", True),
    ],
)
def test_each_client_gets_its_own_file_and_shape(home: Path, client: str, relative: str, key: str, typed: bool) -> None:
    done = install(home, "--client", client, *LOCAL, "--allowed-roots", str(home), "--env", "EXTRA=1")
    assert done.returncode == 0, done.stderr
    path = home / relative
    entry = json.loads(path.read_text())[key]["rlm"]
    assert ("type" in entry) == typed and entry.get("type", "stdio") == "stdio"
    assert Path(entry["command"]).is_absolute() and entry["args"][-1] == "serve"
    assert entry["env"] == {
        "RLM_SUB_MODEL": "openai:llama3.1:8b",
        "RLM_OPENAI_BASE_URL": "http://localhost:11434/v1",
        "RLM_ALLOWED_ROOTS": str(home.resolve()),
        "EXTRA": "1",
    }
    assert f"installed 'rlm' in {path}" in done.stdout
    if client == "claude-code":
        assert "claude mcp add-json --scope user rlm" in done.stderr


def test_merge_keeps_everything_else_backs_up_and_is_idempotent(home: Path) -> None:
    path = home / ".claude.json"
    original = {
        "numStartups": 12,
        "projects": {"/src": {"allowedTools": []}},
        "mcpServers": {"other": {"command": "x"}},
    }
    path.write_text(json.dumps(original))
    assert install(home, "--client", "claude-code", *LOCAL).returncode == 0
    merged = json.loads(path.read_text())
    assert merged["numStartups"] == 12 and merged["projects"] == original["projects"]
    assert set(merged["mcpServers"]) == {"other", "rlm"} and merged["mcpServers"]["other"] == {"command": "x"}
    backups = list(home.glob(".claude.json.bak-*"))
    assert len(backups) == 1 and json.loads(backups[0].read_text()) == original

    again = install(home, "--client", "claude-code", *LOCAL)
    assert again.returncode == 0 and "already installed" in again.stdout
    assert len(list(home.glob(".claude.json.bak-*"))) == 1 and json.loads(path.read_text()) == merged

    before = path.read_text()
    dry = install(home, "--client", "claude-code", "--sub-model", "openai:other", "--dry-run")
    assert dry.returncode == 0 and "nothing written" in dry.stderr
    assert json.loads(dry.stdout)["mcpServers"]["rlm"]["env"]["RLM_SUB_MODEL"] == "openai:other"
    assert path.read_text() == before  # a dry run changes nothing


def test_bad_input_is_refused_and_changes_nothing(home: Path) -> None:
    path = home / ".cursor" / "mcp.json"
    path.parent.mkdir()
    path.write_text('{"mcpServers": {"a": 1},}  // a trailing comma')
    done = install(home, "--client", "cursor", *LOCAL)
    assert done.returncode == 2 and "is not valid JSON" in done.stderr and "Traceback" not in done.stderr
    assert path.read_text() == '{"mcpServers": {"a": 1},}  // a trailing comma'
    done = install(home, "--client", "cursor", "--max-iterations", "0")
    assert done.returncode == 2 and "max_iterations" in done.stderr
    done = install(home, "--client", "claude-desktop", "--scope", "project")
    assert done.returncode == 2 and "no project configuration" in done.stderr
    assert install(home, "--client", "cursor", "--env", "NOEQUALS").returncode == 2


def test_project_scope_writes_the_workspace_file(home: Path, tmp_path: Path) -> None:
    workspace = tmp_path / "project"
    workspace.mkdir()
    done = install(home, "--client", "vscode", "--scope", "project", *LOCAL, cwd=workspace)
    assert done.returncode == 0, done.stderr
    assert json.loads((workspace / ".vscode" / "mcp.json").read_text())["servers"]["rlm"]["type"] == "stdio"
    done = install(home, "--client", "claude-code", "--scope", "project", "--name", "corpus", cwd=workspace)
    assert "corpus" in json.loads((workspace / ".mcp.json").read_text())["mcpServers"]


@pytest.mark.anyio
async def test_the_installed_entry_starts_a_working_server(home: Path, tmp_path: Path) -> None:
    """What a new user without AWS does: install for their client, with the sub-model on a local server."""
    with ChatCompletionsFake() as local:
        local.respond = lambda request: Reply(text=f"local says {request.last_user_text}")
        done = install(home, "--client", "cursor", "--sub-model", "openai:llama3.1:8b",
                       "--openai-base-url", local.base_url, "--data-dir", str(tmp_path / "data"))  # fmt: skip
        assert done.returncode == 0, done.stderr
        entry = json.loads((home / ".cursor" / "mcp.json").read_text())["mcpServers"]["rlm"]
        # A client starts it with its own (minimal) environment plus the entry's.
        env = {"HOME": str(home), "PATH": "/usr/bin:/bin", **entry["env"]}
        params = StdioServerParameters(command=entry["command"], args=entry["args"], env=env)
        async with Client(params, read_timeout_seconds=60) as client:
            sid = (await call(client, "load_context", content="hello"))["session_id"]
            out = await call(client, "repl_exec", session_id=sid, code="print(llm_query(context))")
    assert out["error"] is None and out["stdout"] == "local says hello\n", out


def test_mcp_json_example_is_what_install_writes() -> None:
    assert json.loads((ROOT / "mcp.json.example").read_text()) == example_document()
    example = example_document()
    assert example["servers"]["rlm"] == {"type": "stdio", **example["mcpServers"]["rlm"]}
    assert {"RLM_SUB_MODEL", "RLM_ROOT_MODEL", "RLM_ALLOWED_ROOTS"} <= set(example["mcpServers"]["rlm"]["env"])
    assert example["mcpServers"]["rlm-local"]["env"]["RLM_SUB_MODEL"].startswith("openai:")
