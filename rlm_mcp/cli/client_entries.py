"""``rlm-mcp install`` / ``uninstall``: this server's entry in an MCP client's own configuration file.

Each client has its own file and shape (checked against each client's
documentation):

===============  ==========================================================  ====================  ===========
client           user file (``--scope user``)                                project file          key
===============  ==========================================================  ====================  ===========
claude-desktop   ``<config>/Claude/claude_desktop_config.json``              (none)                mcpServers
vscode           ``<config>/Code/User/mcp.json`` (JSON with comments)        ``.vscode/mcp.json``  servers
cursor           ``~/.cursor/mcp.json``                                      ``.cursor/mcp.json``  mcpServers
windsurf         ``~/.codeium/windsurf/mcp_config.json``                     (none)                mcpServers
claude-code      ``~/.claude.json`` (what ``claude mcp add -s user`` edits)   ``.mcp.json``         mcpServers
codex            ``$CODEX_HOME/config.toml`` (``~/.codex/config.toml``)      ``.codex/config.toml`` mcp_servers
===============  ==========================================================  ====================  ===========

``<config>`` is ``~/Library/Application Support`` on macOS, ``%APPDATA%`` on
Windows and ``$XDG_CONFIG_HOME`` (``~/.config``) elsewhere. VS Code and Claude
Code entries carry ``"type": "stdio"``; the others infer it. Codex entries are
TOML tables with ``command``, ``args``, ``env`` and timeouts long enough for a
run. Changes keep every other byte of the file (comments included), write a
timestamped backup first, write atomically, and do nothing when the file is
already as wanted.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import SecretStr, ValidationError

from rlm_mcp.cli.clientfiles import ClientFile, Syntax
from rlm_mcp.cli.flags import describe_errors
from rlm_mcp.cli.launcher import Launcher
from rlm_mcp.config import Settings, codex_home, env_name, setting_for_env, user_config_dir
from rlm_mcp.errors import InvalidInput
from rlm_mcp.files import write_atomically
from rlm_mcp.models.names import Finding, check_models

Scope = Literal["user", "project"]
MODEL_FIELDS = ("root_model", "sub_model", "openai_base_url", "openai_api_key")
CODEX_STARTUP_TIMEOUT_S = 60
"""Codex waits 10 s by default for a server to start; a first ``uvx rlm-mcp`` downloads the package first."""


@dataclass(frozen=True)
class ClientFormat:
    name: str
    title: str
    key: str
    typed: bool
    """Whether entries say ``"type": "stdio"``."""
    user_file: str
    project_file: str | None
    restart: str
    syntax: Syntax = "json"
    desktop: bool = True
    """Started from a desktop app, whose ``PATH`` is short: commands must be absolute paths."""


CLIENTS: dict[str, ClientFormat] = {
    "claude-desktop": ClientFormat(
        "claude-desktop",
        "Claude Desktop",
        "mcpServers",
        False,
        "{config}/Claude/claude_desktop_config.json",
        None,
        "Quit and reopen Claude Desktop to load it.",
    ),
    "vscode": ClientFormat(
        "vscode",
        "VS Code",
        "servers",
        True,
        "{config}/Code/User/mcp.json",
        ".vscode/mcp.json",
        "VS Code picks it up from MCP: List Servers (start it there if it does not start by itself).",
        "jsonc",
    ),
    "cursor": ClientFormat(
        "cursor",
        "Cursor",
        "mcpServers",
        False,
        "{home}/.cursor/mcp.json",
        ".cursor/mcp.json",
        "Cursor reloads it; check Settings > MCP for a green dot.",
    ),
    "windsurf": ClientFormat(
        "windsurf",
        "Windsurf",
        "mcpServers",
        False,
        "{home}/.codeium/windsurf/mcp_config.json",
        None,
        "Press refresh in Windsurf's MCP panel (Cascade > MCP servers), or restart Windsurf.",
    ),
    "claude-code": ClientFormat(
        "claude-code",
        "Claude Code",
        "mcpServers",
        True,
        "{home}/.claude.json",
        ".mcp.json",
        "Start a new Claude Code session; `claude mcp list` shows it.",
        desktop=False,
    ),
    "codex": ClientFormat(
        "codex",
        "Codex",
        "mcp_servers",
        False,
        "{codex}/config.toml",
        ".codex/config.toml",
        "Start a new Codex session; /mcp lists it (a project file is read only in a trusted project).",
        "toml",
        desktop=False,
    ),
}


def config_path(client: str, scope: Scope = "user", project: Path | None = None) -> Path:
    fmt = CLIENTS[client]
    if scope == "project":
        if fmt.project_file is None:
            raise InvalidInput(f"{fmt.title} has no project configuration; use --scope user")
        return (project or Path.cwd()) / fmt.project_file
    return Path(fmt.user_file.format(config=user_config_dir(), home=Path.home(), codex=codex_home()))


def open_file(client: str, path: Path) -> ClientFile:
    fmt = CLIENTS[client]
    return ClientFile(path, fmt.key, fmt.syntax, fmt.title)


# -- what goes into an entry ------------------------------------------------------------------


@dataclass
class EntrySettings:
    """The variables an entry gives the server, and what ``install`` should warn about."""

    env: dict[str, str]
    settings: Settings
    warnings: list[str] = field(default_factory=list)


def _env_value(value: Any) -> str:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, list):
        return os.pathsep.join(str(v) for v in value)
    return str(value)


def entry_settings(given: dict[str, Any], extra_env: dict[str, str]) -> EntrySettings:
    """The one place that validates what an entry will hand the server.

    ``given`` are the settings named on ``install``'s command line (validated as the server will read
    them, then written as their variables); ``extra_env`` is anything else (``--env AWS_PROFILE=...``).
    Refuses what cannot work (a bad value, a model id of no backend); warns about what only looks wrong
    or is missing (no sub-model). Settings from ``extra_env`` are checked as well.
    """
    env_given = {name: value for name, value in _settings_in_env(extra_env).items() if name not in given}
    try:
        settings = Settings(**{**env_given, **given})
    except ValidationError as exc:
        raise InvalidInput(describe_errors(exc)) from None
    env = {env_name(name): _env_value(getattr(settings, name)) for name in given}
    env.update(extra_env)
    # The client starts the server with the entry's variables, not this shell's: judge the models by those.
    findings = check_models(_as_named(settings, {**env_given, **given}))
    failed = [f.message for f in findings if f.level == "fail"]
    if failed:
        raise InvalidInput("; ".join(failed))
    return EntrySettings(env, settings, [f.message for f in findings if f.level == "warn"])


def _as_named(settings: Settings, named: dict[str, Any]) -> Settings:
    """``settings`` with the model settings not in ``named`` at their defaults (not this shell's variables)."""
    update = {name: getattr(settings, name) if name in named else Settings.model_fields[name].default
              for name in MODEL_FIELDS}  # fmt: skip
    return settings.model_copy(update=update)


def _settings_in_env(env: dict[str, str]) -> dict[str, str]:
    return {name: value for key, value in env.items() if (name := setting_for_env(key)) is not None}


def entry(client: str, launcher: Launcher, env: dict[str, str], settings: Settings | None = None) -> dict[str, Any]:
    """The server's entry in ``client``'s format."""
    fmt = CLIENTS[client]
    body: dict[str, Any] = {"type": "stdio"} if fmt.typed else {}
    body.update({"command": launcher.command, "args": [*launcher.args, "serve"]})
    if env:
        body["env"] = dict(env)
    if fmt.name == "codex":
        # Codex stops a tool call after 60 s by default; an rlm_query run may take RLM_RUN_TIMEOUT_S.
        run_timeout = (settings or Settings()).run_timeout_s
        body["startup_timeout_sec"] = CODEX_STARTUP_TIMEOUT_S
        body["tool_timeout_sec"] = int(run_timeout) + 60
    return body


# -- changing the file ------------------------------------------------------------------------


@dataclass
class Outcome:
    path: Path
    text: str
    """The file's content after the change (the same as before when nothing changes)."""
    changed: bool
    existed: bool
    notes: list[str] = field(default_factory=list)
    backup: Path | None = None


def merge(client: str, path: Path, name: str, server: dict[str, Any]) -> Outcome:
    """The file with the entry merged in (nothing is written)."""
    current = open_file(client, path)
    if current.servers().get(name) == server:
        return Outcome(path, current.text, changed=False, existed=current.existed)
    change = current.with_entry(name, server)
    return Outcome(path, change.text, changed=True, existed=current.existed, notes=change.notes)


def remove(client: str, path: Path, name: str) -> Outcome:
    """The file without the entry (nothing is written); unchanged when the entry is not there."""
    if not path.exists():
        return Outcome(path, "", changed=False, existed=False)
    current = open_file(client, path)
    change = current.without_entry(name)
    if change is None:
        return Outcome(path, current.text, changed=False, existed=True)
    return Outcome(path, change.text, changed=True, existed=True, notes=change.notes)


def write(outcome: Outcome) -> Outcome:
    """Back up the old file (if any) and write the new one atomically; a no-op when nothing changed."""
    if not outcome.changed:
        return outcome
    path = outcome.path
    path.parent.mkdir(parents=True, exist_ok=True)
    if outcome.existed:
        outcome.backup = path.with_name(f"{path.name}.bak-{time.strftime('%Y%m%d-%H%M%S')}")
        shutil.copy2(path, outcome.backup)
    data = outcome.text.encode("utf-8")
    write_atomically(path, lambda f: f.write(data), keep_mode=True)
    return outcome


def claude_mcp_add(name: str, server: dict[str, Any], scope: Scope) -> str:
    """The ``claude mcp add-json`` command that makes the same change through Claude Code's own CLI."""
    return f"claude mcp add-json --scope {scope} {name} '{json.dumps(server)}'"


def mentions_us(server: Any) -> bool:
    """Whether a client's entry starts rlm-mcp (by script, ``python -m rlm_mcp``, uvx or pipx)."""
    if not isinstance(server, dict):
        return False
    words = [str(server.get("command", "")), *(str(a) for a in server.get("args") or [])]
    return any("rlm-mcp" in word or "rlm_mcp" in word for word in words)


# -- mcp.json.example ---------------------------------------------------------------------------

EXAMPLE_LAUNCHER = Launcher("rlm-mcp", (), "script", "the rlm-mcp on the client's PATH")
EXAMPLE_ENTRIES: dict[str, dict[str, str]] = {
    "rlm": {
        "RLM_ROOT_MODEL": "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
        "RLM_SUB_MODEL": "us.anthropic.claude-haiku-4-5-20251001-v1:0",
        "RLM_ALLOWED_ROOTS": "/path/to/your/documents",
        "AWS_PROFILE": "default",
        "AWS_REGION": "us-east-1",
    },
    "rlm-local": {
        "RLM_ROOT_MODEL": "openai:qwen2.5-coder:32b",
        "RLM_SUB_MODEL": "openai:llama3.1:8b",
        "RLM_OPENAI_BASE_URL": "http://localhost:11434/v1",
        "RLM_ALLOWED_ROOTS": "/path/to/your/documents",
    },
}


def example_document() -> dict[str, Any]:
    """What ``mcp.json.example`` holds: both entries in both shapes (Claude Desktop/Cursor, and VS Code)."""
    return {
        "mcpServers": {name: entry("claude-desktop", EXAMPLE_LAUNCHER, env) for name, env in EXAMPLE_ENTRIES.items()},
        "servers": {name: entry("vscode", EXAMPLE_LAUNCHER, env) for name, env in EXAMPLE_ENTRIES.items()},
    }


def example_text() -> str:
    """``mcp.json.example``, exactly.

    Regenerate it with ``python3 -m rlm_mcp.cli.client_entries > mcp.json.example``.
    """
    return json.dumps(example_document(), indent=2) + "\n"


def example_findings() -> list[Finding]:
    """What the model checks say about the example entries (a test keeps them clean)."""
    findings = []
    for env in EXAMPLE_ENTRIES.values():
        named = _settings_in_env(env)
        findings += check_models(_as_named(Settings(**named), named))
    return findings


if __name__ == "__main__":
    print(example_text(), end="")
