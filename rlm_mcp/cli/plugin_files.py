"""The Claude Code plugin: this server and a skill that teaches when and how to offload a corpus, as a marketplace.

Claude Code installs plugins from marketplaces only (a local directory counts),
so ``rlm-mcp install --client claude-code --plugin`` writes a one-plugin
marketplace::

    <dir>/.claude-plugin/marketplace.json          name, owner, plugins[{name, source, description, version}]
    <dir>/plugins/rlm/.claude-plugin/plugin.json   name, description, version, ...
    <dir>/plugins/rlm/.mcp.json                    {"mcpServers": {"rlm": <the entry install writes>}}
    <dir>/plugins/rlm/skills/offload-large-corpus/SKILL.md   front matter name/description, then the guide

and registers it with ``claude plugin marketplace add <dir>`` and ``claude
plugin install rlm@rlm-mcp``. The server entry is the one ``install`` writes for
Claude Code (the same launcher, absolute allowed roots, validated settings), and
the skill is rendered from :mod:`rlm_mcp.core.guide`, the source of the ``rlm_guide``
prompt, with the numbers of the settings the entry gives the server.

``claude-plugin/`` in this repository is the same marketplace rendered with the
example entry of ``mcp.json.example``; ``python3 -m rlm_mcp.cli.plugin_files claude-plugin``
regenerates it, and a test keeps it equal to what this module writes.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path
from typing import Any

from rlm_mcp import __version__
from rlm_mcp.cli import client_entries as install
from rlm_mcp.config import Settings, user_config_dir
from rlm_mcp.core import guide
from rlm_mcp.files import write_atomically

MARKETPLACE = "rlm-mcp"
PLUGIN = "rlm"
SERVER = "rlm"
DESCRIPTION = (
    "Recursive Language Model over MCP: offload corpora far larger than the context window to a sandboxed Python "
    "REPL, with sub-calls to a smaller model, and a skill that teaches when and how."
)
PLUGIN_DIR = f"plugins/{PLUGIN}"
FILES = (
    ".claude-plugin/marketplace.json",
    f"{PLUGIN_DIR}/.claude-plugin/plugin.json",
    f"{PLUGIN_DIR}/.mcp.json",
    f"{PLUGIN_DIR}/skills/{guide.SKILL_NAME}/SKILL.md",
)


def default_directory() -> Path:
    """Somewhere that lasts (not the data directory, whose retention rules clean it): beside the user's settings."""
    return user_config_dir() / "rlm-mcp" / "claude-code-plugin"


def _json(value: Any) -> str:
    return json.dumps(value, indent=2) + "\n"


def files(server: dict[str, Any], settings: Settings) -> dict[str, str]:
    """The marketplace's files, by path relative to its directory, for the server entry ``server``."""
    mcp = _json({"mcpServers": {SERVER: server}})
    skill = guide.skill_text(settings)
    # The version changes with the content, so `claude plugin update` picks up a re-install with new settings.
    digest = hashlib.sha256((mcp + skill).encode()).hexdigest()[:10]
    version = f"{__version__}+{digest}"
    manifest = {
        "name": PLUGIN,
        "description": DESCRIPTION,
        "version": version,
        "author": {"name": "rlm-mcp"},
        "license": "MIT",
        "keywords": ["rlm", "recursive-language-model", "long-context", "mcp"],
    }
    marketplace = {
        "name": MARKETPLACE,
        "description": "rlm-mcp for Claude Code: the server and its skill, as one plugin.",
        "owner": {"name": "rlm-mcp"},
        "plugins": [{"name": PLUGIN, "source": f"./{PLUGIN_DIR}", "description": DESCRIPTION, "version": version}],
    }
    texts = [_json(marketplace), _json(manifest), mcp, skill]
    return dict(zip(FILES, texts, strict=True))


def write(directory: Path, contents: dict[str, str]) -> list[Path]:
    """Write the marketplace into ``directory`` (each file atomically); returns the files that changed."""
    changed = []
    for relative, text in contents.items():
        path = directory / relative
        if path.is_file() and path.read_text(encoding="utf-8") == text:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        data = text.encode("utf-8")
        write_atomically(path, lambda f, data=data: f.write(data))
        changed.append(path)
    return changed


def remove(directory: Path) -> bool:
    """Delete a marketplace this module wrote (refusing any other directory); False when there is none."""
    marker = directory / FILES[0]
    if not marker.is_file():
        return False
    if json.loads(marker.read_text(encoding="utf-8")).get("name") != MARKETPLACE:
        raise ValueError(f"{directory} holds another marketplace; not removing it")
    shutil.rmtree(directory)
    return True


def claude_commands(directory: Path, scope: str) -> list[list[str]]:
    """What registers the marketplace and installs the plugin with Claude Code's own CLI."""
    return [
        ["claude", "plugin", "marketplace", "add", str(directory), "--scope", scope],
        ["claude", "plugin", "install", f"{PLUGIN}@{MARKETPLACE}", "--scope", scope],
    ]


def claude_update_commands(scope: str) -> list[list[str]]:
    """What refreshes an installed plugin after its files changed."""
    return [
        ["claude", "plugin", "marketplace", "update", MARKETPLACE],
        ["claude", "plugin", "update", f"{PLUGIN}@{MARKETPLACE}", "--scope", scope],
    ]


def claude_remove_commands(scope: str) -> list[list[str]]:
    return [
        ["claude", "plugin", "uninstall", f"{PLUGIN}@{MARKETPLACE}", "--scope", scope],
        ["claude", "plugin", "marketplace", "remove", MARKETPLACE],
    ]


def example_files() -> dict[str, str]:
    """``claude-plugin/`` in this repository: the example entry of ``mcp.json.example``, default settings."""
    env = install.EXAMPLE_ENTRIES["rlm"]
    return files(install.entry("claude-code", install.EXAMPLE_LAUNCHER, env), Settings.model_construct())


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "claude-plugin")
    for written in write(target, example_files()):
        print(written)
