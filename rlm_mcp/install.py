"""``rlm-mcp install``: put an entry for this server into an MCP client's own configuration file.

Each client has its own file and shape (checked against each client's
documentation):

===============  ==========================================================  ===================  =========
client           user file (``--scope user``)                                project file         key
===============  ==========================================================  ===================  =========
claude-desktop   ``<config>/Claude/claude_desktop_config.json``              (none)               mcpServers
vscode           ``<config>/Code/User/mcp.json``                             ``.vscode/mcp.json``  servers
cursor           ``~/.cursor/mcp.json``                                      ``.cursor/mcp.json``  mcpServers
claude-code      ``~/.claude.json`` (what ``claude mcp add -s user`` edits)   ``.mcp.json``         mcpServers
===============  ==========================================================  ===================  =========

``<config>`` is ``~/Library/Application Support`` on macOS, ``%APPDATA%`` on
Windows and ``$XDG_CONFIG_HOME`` (``~/.config``) elsewhere. VS Code and Claude
Code entries carry ``"type": "stdio"``; Claude Desktop and Cursor infer it.
The merge keeps every other key of the file, writes a timestamped backup
before changing an existing file, writes atomically, and does nothing when the
entry is already there as wanted.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from rlm_mcp.config import user_config_dir
from rlm_mcp.errors import InvalidInput
from rlm_mcp.files import write_atomically

Scope = Literal["user", "project"]


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


CLIENTS: dict[str, ClientFormat] = {
    "claude-desktop": ClientFormat(
        "claude-desktop", "Claude Desktop", "mcpServers", False, "{config}/Claude/claude_desktop_config.json", None,
        "Quit and reopen Claude Desktop to load it.",
    ),
    "vscode": ClientFormat(
        "vscode", "VS Code", "servers", True, "{config}/Code/User/mcp.json", ".vscode/mcp.json",
        "VS Code picks it up from MCP: List Servers (start it there if it does not start by itself).",
    ),
    "cursor": ClientFormat(
        "cursor", "Cursor", "mcpServers", False, "{home}/.cursor/mcp.json", ".cursor/mcp.json",
        "Cursor reloads it; check Settings > MCP for a green dot.",
    ),
    "claude-code": ClientFormat(
        "claude-code", "Claude Code", "mcpServers", True, "{home}/.claude.json", ".mcp.json",
        "Start a new Claude Code session; `claude mcp list` shows it.",
    ),
}  # fmt: skip


def config_path(client: str, scope: Scope = "user", project: Path | None = None) -> Path:
    fmt = CLIENTS[client]
    if scope == "project":
        if fmt.project_file is None:
            raise InvalidInput(f"{fmt.title} has no project configuration; use --scope user")
        return (project or Path.cwd()) / fmt.project_file
    return Path(fmt.user_file.format(config=user_config_dir(), home=Path.home()))


def server_command() -> tuple[str, list[str]]:
    """How a client should start this very installation: the absolute path of the ``rlm-mcp`` script next to
    this Python (desktop apps start with a minimal PATH, and another ``rlm-mcp`` may come first on yours),
    or this Python with ``-m rlm_mcp``."""
    script = Path(sys.executable).parent / ("rlm-mcp.exe" if sys.platform == "win32" else "rlm-mcp")
    if script.is_file():
        return str(script), ["serve"]
    return sys.executable, ["-m", "rlm_mcp", "serve"]


def entry(client: str, command: str, args: list[str], env: dict[str, str]) -> dict[str, Any]:
    """The server's entry in ``client``'s format."""
    body: dict[str, Any] = {"type": "stdio"} if CLIENTS[client].typed else {}
    body.update({"command": command, "args": list(args)})
    if env:
        body["env"] = dict(env)
    return body


@dataclass
class Outcome:
    path: Path
    document: dict[str, Any]
    changed: bool
    existed: bool
    backup: Path | None = None


def merge(client: str, path: Path, name: str, server: dict[str, Any]) -> Outcome:
    """The file's content with the entry merged in (nothing is written)."""
    existed = path.exists()
    document: dict[str, Any] = {}
    if existed:
        text = path.read_text(encoding="utf-8")
        try:
            document = json.loads(text) if text.strip() else {}
        except ValueError as exc:
            raise InvalidInput(
                f"{path} is not valid JSON ({exc}); fix it (comments are not supported) or move it away, then "
                "run this again"
            ) from None
        if not isinstance(document, dict):
            raise InvalidInput(f"{path} does not hold a JSON object; fix it or move it away")
    key = CLIENTS[client].key
    servers = document.get(key)
    if servers is None:
        servers = {}
    elif not isinstance(servers, dict):
        raise InvalidInput(f"{path}: {key!r} is not an object; fix it or move it away")
    changed = servers.get(name) != server
    document = {**document, key: {**servers, name: server}}
    return Outcome(path=path, document=document, changed=changed, existed=existed)


def write(outcome: Outcome) -> Outcome:
    """Back up the old file (if any) and write the new one atomically; a no-op when nothing changed."""
    if not outcome.changed:
        return outcome
    path = outcome.path
    path.parent.mkdir(parents=True, exist_ok=True)
    if outcome.existed:
        outcome.backup = path.with_name(f"{path.name}.bak-{time.strftime('%Y%m%d-%H%M%S')}")
        shutil.copy2(path, outcome.backup)
    text = json.dumps(outcome.document, indent=2, ensure_ascii=False) + "\n"
    write_atomically(path, lambda f: f.write(text.encode("utf-8")), keep_mode=True)
    return outcome


def claude_mcp_add(name: str, server: dict[str, Any], scope: Scope) -> str:
    """The ``claude mcp add-json`` command that makes the same change through Claude Code's own CLI."""
    return f"claude mcp add-json --scope {scope} {name} '{json.dumps(server)}'"


EXAMPLE_COMMAND = "rlm-mcp"
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
        "mcpServers": {
            name: entry("claude-desktop", EXAMPLE_COMMAND, ["serve"], env) for name, env in EXAMPLE_ENTRIES.items()
        },
        "servers": {name: entry("vscode", EXAMPLE_COMMAND, ["serve"], env) for name, env in EXAMPLE_ENTRIES.items()},
    }
