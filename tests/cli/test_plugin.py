"""The Claude Code plugin: what ``rlm-mcp install --client claude-code --plugin`` writes, and that it works.

The files follow Claude Code's plugin format (``.claude-plugin/marketplace.json``,
``.claude-plugin/plugin.json``, ``.mcp.json``, ``skills/<name>/SKILL.md`` with YAML
front matter); the server entry is started as Claude Code would start it and
answers through a real ``mcp.Client``; the skill is the ``rlm_guide`` text. When
Claude Code's own CLI is on ``PATH``, it installs and removes the plugin for real.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import call, code_examples
from mcp import Client, StdioServerParameters

from rlm_mcp.cli import plugin_files as plugin
from rlm_mcp.config import Settings
from rlm_mcp.core import guide
from rlm_mcp.testing.openai import ChatCompletionsFake, Reply

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "claude-plugin"
LOCAL = ["--sub-model", "openai:llama3.1:8b", "--openai-base-url", "http://localhost:11434/v1"]
SKILL = f"plugins/rlm/skills/{guide.SKILL_NAME}/SKILL.md"
KEBAB = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    (path / "docs").mkdir(parents=True)
    return path


def rlm(home: Path, *args: str, path: str = "/usr/bin:/bin") -> subprocess.CompletedProcess:
    """The CLI as a user runs it, under a temporary HOME; ``claude`` is not on ``path`` unless put there."""
    env = {"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"), "PATH": path, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "rlm_mcp", *args], env=env, capture_output=True, text=True, timeout=120, cwd=home
    )


def front_matter(text: str) -> dict[str, object]:
    yaml = pytest.importorskip("yaml")
    match = re.match(r"^---\n(.*?)\n---\n", text, re.S)
    assert match is not None, text[:200]
    return yaml.safe_load(match.group(1))


def read_tree(directory: Path) -> dict[str, str]:
    return {p.relative_to(directory).as_posix(): p.read_text() for p in sorted(directory.rglob("*")) if p.is_file()}


def test_the_committed_plugin_is_what_the_module_writes(tmp_path: Path) -> None:
    """claude-plugin/ is regenerated with `python3 -m rlm_mcp.cli.plugin_files claude-plugin`."""
    assert read_tree(COMMITTED) == plugin.example_files()
    command = [sys.executable, "-m", "rlm_mcp.cli.plugin_files", str(tmp_path / "out")]
    done = subprocess.run(command, cwd=ROOT, capture_output=True)
    assert done.returncode == 0, done.stderr
    assert read_tree(tmp_path / "out") == plugin.example_files()


def test_the_skill_and_the_guide_come_from_one_source() -> None:
    settings = Settings(sub_context_tokens=1000, max_sub_calls=7)
    skill, prompt = guide.skill_text(settings), guide.guide_text(settings)
    assert code_examples(skill) == code_examples(prompt) and len(code_examples(skill)) == 5
    for step in guide.STEPS:  # every step of the method, in both
        first_words = step.text.split("{")[0][:40]
        assert first_words in skill and first_words in prompt
    assert "7 sub-calls per session" in skill and "7 sub-calls per session" in prompt
    assert "rlm_query(session_id, query)" in skill and "When to offload" in skill


def test_install_writes_the_plugin_in_claude_codes_format(home: Path) -> None:
    target = home / "plugin"
    done = rlm(home, "install", "--client", "claude-code", "--plugin", str(target), *LOCAL, "--allowed-roots", "~/docs")
    assert done.returncode == 0, done.stderr
    assert f"claude plugin marketplace add {target} --scope user && claude plugin install rlm@rlm-mcp" in done.stdout
    files = read_tree(target)
    assert set(files) == set(plugin.FILES)

    marketplace = json.loads(files[".claude-plugin/marketplace.json"])
    manifest = json.loads(files["plugins/rlm/.claude-plugin/plugin.json"])
    assert KEBAB.match(marketplace["name"]) and isinstance(marketplace["owner"]["name"], str)
    (entry,) = marketplace["plugins"]
    assert entry["source"] == "./plugins/rlm" and entry["name"] == manifest["name"] == "rlm"
    assert entry["version"] == manifest["version"] and manifest["description"]

    servers = json.loads(files["plugins/rlm/.mcp.json"])["mcpServers"]
    server = servers["rlm"]
    assert server["type"] == "stdio" and Path(server["command"]).is_absolute() and server["args"][-1] == "serve"
    assert server["env"]["RLM_ALLOWED_ROOTS"] == str((home / "docs").resolve())  # absolute, as install writes it
    assert server["env"]["RLM_SUB_MODEL"] == "openai:llama3.1:8b"

    skill = files[SKILL]
    meta = front_matter(skill)
    assert set(meta) == {"name", "description"} and meta["name"] == guide.SKILL_NAME == Path(SKILL).parent.name
    assert KEBAB.match(str(meta["name"])) and len(str(meta["name"])) <= 64
    assert 0 < len(str(meta["description"])) <= 1024
    assert skill.split("---\n", 2)[2] == guide.skill_text(Settings()).split("---\n", 2)[2]

    flags = ["--client", "claude-code", "--plugin", str(target), *LOCAL, "--allowed-roots", "~/docs"]
    again = rlm(home, "install", *flags)
    assert "already as wanted" in again.stdout and read_tree(target) == files
    other = rlm(home, "install", "--client", "claude-code", "--plugin", str(target), "--sub-model", "openai:other",
                "--allowed-roots", "~/docs")  # fmt: skip
    changed = json.loads(read_tree(target)["plugins/rlm/.claude-plugin/plugin.json"])
    assert other.returncode == 0 and changed["version"] != manifest["version"]  # so `claude plugin update` sees it


def test_the_default_directory_lasts_and_dry_run_writes_nothing(home: Path) -> None:
    dry = rlm(home, "install", "--client", "claude-code", "--plugin", *LOCAL, "--allowed-roots", "", "--dry-run")
    default = home / ".config" / "rlm-mcp" / "claude-code-plugin"
    assert dry.returncode == 0 and "nothing written" in dry.stderr and not default.exists()
    assert f"==> {default / SKILL} <==" in dry.stdout
    done = rlm(home, "install", "--client", "claude-code", "--plugin", *LOCAL, "--allowed-roots", "")
    assert done.returncode == 0 and (default / SKILL).is_file()
    removed = rlm(home, "uninstall", "--client", "claude-code", "--plugin")
    assert removed.returncode == 0 and not default.exists()
    assert "claude plugin uninstall rlm@rlm-mcp" in removed.stdout  # what to run, without claude on PATH


def test_the_plugin_needs_allowed_roots_and_claude_code(home: Path) -> None:
    target = home / "plugin"
    done = rlm(home, "install", "--client", "claude-code", "--plugin", str(target), *LOCAL)
    assert done.returncode == 2 and "--allowed-roots ~/Documents" in done.stderr and not target.exists()
    done = rlm(home, "install", "--client", "cursor", "--plugin", str(target), *LOCAL, "--allowed-roots", "")
    assert done.returncode == 2 and "--plugin is for --client claude-code" in done.stderr and not target.exists()
    (target / ".claude-plugin").mkdir(parents=True)
    (target / ".claude-plugin" / "marketplace.json").write_text('{"name": "someone-elses"}')
    refused = rlm(home, "uninstall", "--client", "claude-code", "--plugin", str(target))
    assert refused.returncode == 2 and "holds another marketplace" in refused.stderr and target.exists()


@pytest.mark.anyio
async def test_the_plugins_server_entry_starts_a_working_server(home: Path, tmp_path: Path) -> None:
    """What Claude Code does with .mcp.json: start the command with its args and env; llm_map then works."""
    with ChatCompletionsFake() as local:
        local.respond = lambda request: Reply(text=str(len(re.findall(r"item", request.last_user_text))))
        target = home / "plugin"
        done = rlm(home, "install", "--client", "claude-code", "--plugin", str(target), "--sub-model",
                   "openai:llama3.1:8b", "--openai-base-url", local.base_url, "--allowed-roots", "~/docs",
                   "--data-dir", str(tmp_path / "data"))  # fmt: skip
        assert done.returncode == 0, done.stderr
        server = json.loads((target / "plugins/rlm/.mcp.json").read_text())["mcpServers"]["rlm"]
        (home / "docs" / "items.txt").write_text("item\n" * 300)
        env = {"HOME": str(home), "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), **server["env"]}
        params = StdioServerParameters(command=server["command"], args=server["args"], env=env)
        async with Client(params, read_timeout_seconds=60) as client:
            sid = (await call(client, "load_context", path=str(home / "docs" / "items.txt")))["session_id"]
            out = await call(
                client,
                "repl_exec",
                session_id=sid,
                code="rs = llm_map('Count the lines.\\n{chunk}', split_chunks(context, 500), parse='int')\n"
                "FINAL(sum(r['value'] for r in rs))",
            )
            refused = await client.call_tool("load_context", {"path": str(tmp_path)})  # outside the allowed roots
    assert out["error"] is None and out["final"] == "300", out
    assert refused.is_error


NO_CLAUDE = "Claude Code's CLI (npm @anthropic-ai/claude-code) is not on PATH"


@pytest.mark.skipif(shutil.which("claude") is None, reason=NO_CLAUDE)
def test_claude_code_installs_and_removes_the_plugin(home: Path) -> None:
    """With Claude Code's CLI on PATH: install registers the marketplace and the plugin, uninstall removes both."""
    path = f"{Path(shutil.which('claude') or '').parent}:{Path(sys.executable).parent}:/usr/bin:/bin"
    done = rlm(home, "install", "--client", "claude-code", "--plugin", *LOCAL, "--allowed-roots", "~/docs", path=path)
    assert done.returncode == 0 and "plugin installed" in done.stdout, done.stderr
    env = {**os.environ, "HOME": str(home), "PATH": path}
    listed = subprocess.run(["claude", "plugin", "list", "--json"], env=env, capture_output=True, text=True, timeout=60)
    assert "rlm@rlm-mcp" in listed.stdout, listed.stdout + listed.stderr
    settings = json.loads((home / ".claude" / "settings.json").read_text())
    assert settings["enabledPlugins"] == {"rlm@rlm-mcp": True}
    removed = rlm(home, "uninstall", "--client", "claude-code", "--plugin", path=path)
    assert removed.returncode == 0, removed.stderr
    settings = json.loads((home / ".claude" / "settings.json").read_text())
    assert settings["enabledPlugins"] == {} and settings["extraKnownMarketplaces"] == {}
