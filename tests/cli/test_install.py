"""rlm-mcp install and uninstall: each client's real file and shape, merged with a backup, idempotent, with a
dry run; comments kept; model settings checked.

Every test runs the command as a subprocess under a temporary HOME,
XDG_CONFIG_HOME and CODEX_HOME, so no real configuration is touched.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from helpers import call
from mcp import Client, StdioServerParameters

from rlm_mcp.cli.client_entries import example_document, example_text
from rlm_mcp.testing.openai import ChatCompletionsFake, Reply

ROOT = Path(__file__).resolve().parents[2]
LOCAL = ["--sub-model", "openai:llama3.1:8b", "--openai-base-url", "http://localhost:11434/v1", "--allowed-roots", ""]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


def rlm(home: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(ROOT),  # this checkout's rlm_mcp, whatever the working directory
    }
    return subprocess.run(
        [sys.executable, "-m", "rlm_mcp", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd or home,
    )


def install(home: Path, *args: str, cwd: Path | None = None, roots: str | None = "") -> subprocess.CompletedProcess:
    """``rlm-mcp install``; ``--allowed-roots`` (required) is ``roots`` unless given, or left out with None."""
    if roots is not None and "--allowed-roots" not in args:
        args = (*args, "--allowed-roots", roots)
    return rlm(home, "install", *args, cwd=cwd)


@pytest.mark.parametrize(
    ("client", "relative", "key", "typed"),
    [
        ("claude-desktop", ".config/Claude/claude_desktop_config.json", "mcpServers", False),
        ("vscode", ".config/Code/User/mcp.json", "servers", True),
        ("cursor", ".cursor/mcp.json", "mcpServers", False),
        ("claude-code", ".claude.json", "mcpServers", True),
        ("windsurf", ".codeium/windsurf/mcp_config.json", "mcpServers", False),
    ],
)
def test_each_client_gets_its_own_file_and_shape(home: Path, client: str, relative: str, key: str, typed: bool) -> None:
    docs = home / "Documents"
    docs.mkdir()
    done = install(home, "--client", client, *LOCAL[:4], "--allowed-roots", "~/Documents", "--env", "EXTRA=1")
    assert done.returncode == 0, done.stderr
    path = home / relative
    entry = json.loads(path.read_text())[key]["rlm"]
    assert ("type" in entry) == typed and entry.get("type", "stdio") == "stdio"
    assert Path(entry["command"]).is_absolute() and entry["args"][-1] == "serve"
    assert entry["env"] == {
        "RLM_SUB_MODEL": "openai:llama3.1:8b",
        "RLM_OPENAI_BASE_URL": "http://localhost:11434/v1",
        "RLM_ALLOWED_ROOTS": str(docs.resolve()),  # absolute: the client starts the server anywhere
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
    assert again.returncode == 0 and "already installed" in again.stdout and "nothing changed" in again.stdout
    assert len(list(home.glob(".claude.json.bak-*"))) == 1 and json.loads(path.read_text()) == merged

    before = path.read_text()
    dry = install(home, "--client", "claude-code", "--sub-model", "openai:other", "--allowed-roots", "", "--dry-run")
    assert dry.returncode == 0 and "nothing written" in dry.stderr
    assert json.loads(dry.stdout)["mcpServers"]["rlm"]["env"]["RLM_SUB_MODEL"] == "openai:other"
    assert path.read_text() == before  # a dry run changes nothing


def test_bad_input_is_refused_and_changes_nothing(home: Path) -> None:
    path = home / ".cursor" / "mcp.json"
    path.parent.mkdir()
    broken = '{"mcpServers": {"a": {"command": "x"}},\n  "other": [1, 2\n}'
    path.write_text(broken)
    done = install(home, "--client", "cursor", *LOCAL)
    assert done.returncode == 2 and "is not valid JSON" in done.stderr and "Traceback" not in done.stderr
    assert "line 3 column 1" in done.stderr  # the user's own line numbers
    assert path.read_text() == broken
    path.write_text('{"mcpServers": []}')
    done = install(home, "--client", "cursor", *LOCAL)
    assert done.returncode == 2 and "'mcpServers' is not a table of servers" in done.stderr
    path.write_text('{"mcpServers": null}')
    done = install(home, "--client", "cursor", *LOCAL)
    assert done.returncode == 2 and "'mcpServers' is not an object" in done.stderr and "Traceback" not in done.stderr
    done = install(home, "--client", "cursor", "--max-iterations", "0")
    assert done.returncode == 2 and "--max-iterations / RLM_MAX_ITERATIONS" in done.stderr
    done = install(home, "--client", "claude-desktop", "--scope", "project")
    assert done.returncode == 2 and "no project configuration" in done.stderr
    assert install(home, "--client", "cursor", "--env", "NOEQUALS", "--allowed-roots", "").returncode == 2


def test_project_scope_writes_the_workspace_file(home: Path, tmp_path: Path) -> None:
    workspace = tmp_path / "project"
    workspace.mkdir()
    done = install(home, "--client", "vscode", "--scope", "project", *LOCAL, cwd=workspace)
    assert done.returncode == 0, done.stderr
    assert json.loads((workspace / ".vscode" / "mcp.json").read_text())["servers"]["rlm"]["type"] == "stdio"
    done = install(home, "--client", "claude-code", "--scope", "project", "--name", "corpus", "--allowed-roots",
                   str(workspace), cwd=workspace)  # fmt: skip
    assert "corpus" in json.loads((workspace / ".mcp.json").read_text())["mcpServers"]


@pytest.mark.anyio
async def test_the_installed_entry_starts_a_working_server(home: Path, tmp_path: Path) -> None:
    """What a new user without AWS does: install for their client, with the sub-model on a local server."""
    with ChatCompletionsFake() as local:
        local.respond = lambda request: Reply(text=f"local says {request.last_user_text}")
        done = install(home, "--client", "cursor", "--sub-model", "openai:llama3.1:8b", "--allowed-roots", "",
                       "--openai-base-url", local.base_url, "--data-dir", str(tmp_path / "data"))  # fmt: skip
        assert done.returncode == 0, done.stderr
        entry = json.loads((home / ".cursor" / "mcp.json").read_text())["mcpServers"]["rlm"]
        # A client starts it with its own (minimal) environment plus the entry's.
        env = {"HOME": str(home), "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), **entry["env"]}
        params = StdioServerParameters(command=entry["command"], args=entry["args"], env=env)
        async with Client(params, read_timeout_seconds=60) as client:
            sid = (await call(client, "load_context", content="hello"))["session_id"]
            out = await call(client, "repl_exec", session_id=sid, code="print(llm_query(context))")
    assert out["error"] is None and out["stdout"] == "local says hello\n", out


def test_mcp_json_example_is_what_install_writes() -> None:
    assert (
        ROOT / "mcp.json.example"
    ).read_text() == example_text()  # python3 -m rlm_mcp.cli.client_entries regenerates it
    generated = subprocess.run(
        [sys.executable, "-m", "rlm_mcp.cli.client_entries"], capture_output=True, text=True, cwd=ROOT
    )
    assert generated.stdout == example_text()
    example = example_document()
    assert example["servers"]["rlm"] == {"type": "stdio", **example["mcpServers"]["rlm"]}
    assert {"RLM_SUB_MODEL", "RLM_ROOT_MODEL", "RLM_ALLOWED_ROOTS"} <= set(example["mcpServers"]["rlm"]["env"])
    assert example["mcpServers"]["rlm-local"]["env"]["RLM_SUB_MODEL"].startswith("openai:")


def test_the_folders_to_read_are_never_implied(home: Path) -> None:
    """Desktop clients start servers in '/': install must write the allowed roots, or say it needs them."""
    path = home / ".cursor" / "mcp.json"
    done = install(home, "--client", "cursor", *LOCAL[:4], roots=None)  # no --allowed-roots, and no terminal to ask on
    assert done.returncode == 2 and "--allowed-roots ~/Documents" in done.stderr and not path.exists()
    for broad in ("/", "~", str(home.parent)):
        done = install(home, "--client", "cursor", *LOCAL[:4], "--allowed-roots", broad)
        assert done.returncode == 2 and "RLM_ALLOW_BROAD_ROOTS=true" in done.stderr and not path.exists(), broad
    done = install(home, "--client", "cursor", *LOCAL[:4], "--allowed-roots", "/", "--allow-broad-roots", "true")
    assert done.returncode == 0, done.stderr
    env = json.loads(path.read_text())["mcpServers"]["rlm"]["env"]
    assert (env["RLM_ALLOWED_ROOTS"], env["RLM_ALLOW_BROAD_ROOTS"]) == ("/", "True")


def test_on_a_terminal_install_asks_for_the_folders(home: Path) -> None:
    (home / "Documents").mkdir()
    (home / "src").mkdir()
    main, terminal = os.openpty()
    try:
        os.write(main, f"~/Documents{os.pathsep}~/src\n".encode())
        env = {"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"), "PATH": os.environ.get("PATH", ""),
               "PYTHONPATH": str(ROOT)}  # fmt: skip
        done = subprocess.run(
            [sys.executable, "-m", "rlm_mcp", "install", "--client", "claude-desktop", *LOCAL[:4]],
            env=env, stdin=terminal, capture_output=True, text=True, timeout=60, cwd=home,
        )  # fmt: skip
    finally:
        os.close(main)
        os.close(terminal)
    assert done.returncode == 0, done.stderr
    assert "Which folders may the server read?" in done.stderr
    entry = json.loads((home / ".config" / "Claude" / "claude_desktop_config.json").read_text())["mcpServers"]["rlm"]
    resolved = [str((home / "Documents").resolve()), str((home / "src").resolve())]
    assert entry["env"]["RLM_ALLOWED_ROOTS"] == os.pathsep.join(resolved)


VSCODE_WITH_COMMENTS = """{
\t// Servers for every workspace
\t"servers": {
\t\t"github": {
\t\t\t"type": "http",
\t\t\t"url": "https://api.githubcopilot.com/mcp/", // hosted
\t\t},
\t\t/* "old": {"command": "x"}, */
\t},
\t"inputs": [],
}
"""


def test_vscode_comments_and_trailing_commas_are_kept_and_uninstall_restores_the_file(home: Path) -> None:
    path = home / ".config" / "Code" / "User" / "mcp.json"
    path.parent.mkdir(parents=True)
    path.write_text(VSCODE_WITH_COMMENTS)
    done = install(home, "--client", "vscode", *LOCAL)
    assert done.returncode == 0, done.stderr
    text = path.read_text()
    for line in VSCODE_WITH_COMMENTS.splitlines()[:8]:  # everything before the new entry, byte for byte
        assert line in text
    assert '\t\t"rlm": {\n\t\t\t"type": "stdio",' in text  # in the file's own indentation (tabs)
    assert "note:" not in done.stderr  # nothing was lost
    backups = list(path.parent.glob("mcp.json.bak-*"))
    assert len(backups) == 1 and backups[0].read_text() == VSCODE_WITH_COMMENTS

    removed = rlm(home, "uninstall", "--client", "vscode")
    assert removed.returncode == 0 and "removed 'rlm'" in removed.stdout, removed.stderr
    assert path.read_text() == VSCODE_WITH_COMMENTS  # install then uninstall: the user's file, exactly
    again = rlm(home, "uninstall", "--client", "vscode")
    assert again.returncode == 0 and "no 'rlm' entry" in again.stdout and "nothing changed" in again.stdout
    assert path.read_text() == VSCODE_WITH_COMMENTS


def test_replacing_an_entry_that_held_comments_says_they_are_gone(home: Path) -> None:
    path = home / ".cursor" / "mcp.json"
    path.parent.mkdir()
    path.write_text('{\n  "mcpServers": {\n    "rlm": {\n      "command": "old" // mine\n    }\n  }\n}\n')
    done = install(home, "--client", "cursor", *LOCAL)
    assert done.returncode == 0, done.stderr
    assert "comments inside the old 'rlm' entry could not be kept" in done.stderr
    assert "documents no support for" in done.stderr  # Cursor's file is plain JSON
    backup = next(iter(path.parent.glob("mcp.json.bak-*")))
    assert backup.read_text().count("// mine") == 1  # the backup has them


CODEX_CONFIG = """# Codex settings
model = "o3"  # the default model

[mcp_servers.docs]
command = "npx"
args = ["-y", "docs-server"]

[profiles.fast]
model = "o4-mini"
"""


def test_codex_gets_a_toml_table_with_timeouts_and_keeps_the_rest(home: Path) -> None:
    codex = home / ".codex"
    codex.mkdir()
    path = codex / "config.toml"
    path.write_text(CODEX_CONFIG)
    done = install(home, "--client", "codex", "--sub-model", "us.anthropic.claude-haiku-4-5-20251001-v1:0",
                   "--run-timeout-s", "600", "--env", "AWS_PROFILE=work")  # fmt: skip
    assert done.returncode == 0, done.stderr
    text = path.read_text()
    assert text.startswith(CODEX_CONFIG.split("[profiles.fast]")[0])  # comments and order kept
    config = tomllib.loads(text)
    entry = config["mcp_servers"]["rlm"]
    assert Path(entry["command"]).is_absolute() and entry["args"] == ["serve"]
    assert entry["env"] == {
        "RLM_SUB_MODEL": "us.anthropic.claude-haiku-4-5-20251001-v1:0",
        "RLM_RUN_TIMEOUT_S": "600.0",
        "RLM_ALLOWED_ROOTS": "",
        "AWS_PROFILE": "work",
    }
    assert entry["tool_timeout_sec"] == 660 and entry["startup_timeout_sec"] == 60  # Codex's defaults: 60 s, 10 s
    assert config["mcp_servers"]["docs"] == {"command": "npx", "args": ["-y", "docs-server"]}
    assert config["profiles"] == {"fast": {"model": "o4-mini"}}
    flags = ["--sub-model", "us.anthropic.claude-haiku-4-5-20251001-v1:0", "--run-timeout-s", "600"]
    assert "already installed" in install(home, "--client", "codex", *flags, "--env", "AWS_PROFILE=work").stdout

    assert rlm(home, "uninstall", "--client", "codex").returncode == 0
    assert path.read_text() == CODEX_CONFIG
    # CODEX_HOME moves the file, as it moves Codex's
    elsewhere = home / "codex-home"
    env = {**os.environ, "HOME": str(home), "CODEX_HOME": str(elsewhere), "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "rlm_mcp", "install", "--client", "codex", *LOCAL]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "rlm" in tomllib.loads((elsewhere / "config.toml").read_text())["mcp_servers"]


def test_uninstall_dry_run_and_a_missing_file(home: Path) -> None:
    done = rlm(home, "uninstall", "--client", "windsurf")
    assert done.returncode == 0 and "nothing changed" in done.stdout
    assert not (home / ".codeium").exists()  # nothing created
    assert install(home, "--client", "windsurf", *LOCAL).returncode == 0
    path = home / ".codeium" / "windsurf" / "mcp_config.json"
    before = path.read_text()
    dry = rlm(home, "uninstall", "--client", "windsurf", "--dry-run")
    assert dry.returncode == 0 and "would change" in dry.stderr
    assert json.loads(dry.stdout) == {"mcpServers": {}}
    assert path.read_text() == before


@pytest.mark.parametrize(
    ("flags", "refusal"),
    [
        (["--sub-model", "gpt-4o"], "write openai:gpt-4o"),
        (["--sub-model", "claude-3-sonnet"], "not a Bedrock model id"),
        (["--root-model", "foo:bar"], "unknown model backend 'foo'"),
        (["--sub-model", "us.anthropic claude"], "contains spaces"),
        (["--env", "RLM_SUB_MODEL=gpt-4o"], "write openai:gpt-4o"),  # a setting given as --env is checked too
    ],
)
def test_model_names_that_cannot_work_are_refused(home: Path, flags: list[str], refusal: str) -> None:
    done = install(home, "--client", "cursor", *flags)
    assert done.returncode == 2 and refusal in done.stderr and "Traceback" not in done.stderr
    assert not (home / ".cursor").exists()


@pytest.mark.parametrize(
    ("flags", "warning"),
    [
        ([], "no sub-model (--sub-model / RLM_SUB_MODEL)"),
        ([], "no root model (--root-model / RLM_ROOT_MODEL)"),
        (["--sub-model", "llama3.1:8b"], "write openai:llama3.1:8b"),
        (["--sub-model", "anthropic.claude-sonnet-4-5"], "no version suffix"),
        (["--sub-model", "acme.model-v1:0"], "'acme' is not a provider Bedrock is known to offer"),
        (["--sub-model", "openai:llama3.1:8b"], "looks like a local model tag"),
    ],
)
def test_model_names_that_look_wrong_install_with_a_warning(home: Path, flags: list[str], warning: str) -> None:
    done = install(home, "--client", "cursor", *flags)
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if line.startswith("rlm-mcp: warning: ")]
    assert any(warning in line for line in warnings), done.stderr
    assert (home / ".cursor" / "mcp.json").exists()


def test_a_complete_setup_installs_without_warnings(home: Path) -> None:
    done = install(home, "--client", "cursor", "--root-model", "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
                   "--sub-model", "us.anthropic.claude-haiku-4-5-20251001-v1:0")  # fmt: skip
    assert done.returncode == 0 and "warning:" not in done.stderr, done.stderr
    assert "this installation's own launcher" in done.stderr  # says which command it wrote, and why


def test_the_example_entries_pass_the_model_checks() -> None:
    from rlm_mcp.cli.client_entries import example_findings

    assert [f.message for f in example_findings() if f.level != "ok"] == []


def test_the_server_logs_what_is_wrong_with_its_models(tmp_path: Path) -> None:
    """serve says at start-up what install would have refused or warned about (stdin closed: it then exits)."""
    env = {"HOME": str(tmp_path), "PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT),
           "RLM_SUB_MODEL": "gpt-4o", "RLM_DATA_DIR": str(tmp_path / "data"), "RLM_LOG_LEVEL": "WARNING"}  # fmt: skip
    done = subprocess.run([sys.executable, "-m", "rlm_mcp", "serve"], env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)  # fmt: skip
    assert "WARNING" in done.stderr and "write openai:gpt-4o" in done.stderr and "no root model" in done.stderr
    assert done.stdout == ""
