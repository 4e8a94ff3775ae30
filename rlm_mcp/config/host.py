"""Where things live on this machine: the data directory, the desktop clients' settings folder, uv's and
pipx's environments, and which folders are too wide to share. These read the platform's own variables
(``XDG_*``, ``APPDATA``, ``CODEX_HOME``, ``UV_*``, ``PIPX_HOME``), not rlm-mcp's settings."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "rlm-mcp"


def user_config_dir() -> Path:
    """Where desktop applications keep their settings on this platform (for ``rlm-mcp install``)."""
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support"
    if sys.platform == "win32":
        return Path(os.environ.get("APPDATA") or Path.home() / "AppData" / "Roaming")
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")


SYSTEM_DIRECTORIES = frozenset(
    Path(p) for p in ("/etc", "/root", "/var", "/usr", "/home", "/Users", "/private", "/boot", "/opt", "/srv", "/mnt")
)
"""Top-level folders that hold the system's or every user's files: too wide to be an allowed root."""


def too_broad(root: Path) -> bool:
    """Whether an allowed root would open far more than anyone means to share: a file system's root, a
    system folder, or a home directory or a folder holding one (``~/.ssh``, ``~/.aws`` live there)."""
    home = Path.home().resolve()
    if root == Path(root.anchor) or root in SYSTEM_DIRECTORIES or home.is_relative_to(root):
        return True
    return root.parent in (Path("/home"), Path("/Users"))  # someone else's home


def codex_home() -> Path:
    """Where the Codex CLI keeps ``config.toml``: ``$CODEX_HOME``, else ``~/.codex``."""
    return Path(os.environ.get("CODEX_HOME") or Path.home() / ".codex")


@dataclass(frozen=True)
class ToolDirectories:
    """Where uv and pipx keep the environments they create (for ``rlm-mcp install``'s launcher choice).

    uv: tool runs (``uvx``) live in its cache (``$UV_CACHE_DIR``, ``$XDG_CACHE_HOME/uv``, ``~/.cache/uv``,
    ``%LOCALAPPDATA%\\uv\\cache``), which ``uv cache clean``/``prune`` may delete; ``uv tool install`` puts
    tools under ``$UV_TOOL_DIR`` or ``<data>/uv/tools``. pipx: ``pipx run`` environments live in
    ``$PIPX_HOME/.cache`` or the user cache's ``pipx`` folder and are removed after 14 days unused;
    ``pipx install`` puts them under ``$PIPX_HOME/venvs``.
    """

    uv_caches: tuple[Path, ...]
    uv_tools: tuple[Path, ...]
    pipx_caches: tuple[Path, ...]
    pipx_venvs: tuple[Path, ...]


def tool_directories() -> ToolDirectories:
    env = os.environ
    home = Path.home()

    def given(*names: str) -> list[Path]:
        return [Path(env[name]) for name in names if env.get(name)]

    cache = Path(env.get("XDG_CACHE_HOME") or home / ".cache")
    data = Path(env.get("XDG_DATA_HOME") or home / ".local" / "share")
    local_app = given("LOCALAPPDATA")
    pipx_homes = [*given("PIPX_HOME"), home / ".local" / "pipx", data / "pipx"]
    pipx_homes.append(home / "Library" / "Application Support" / "pipx")
    return ToolDirectories(
        uv_caches=(*given("UV_CACHE_DIR"), cache / "uv", *(p / "uv" / "cache" for p in local_app)),
        uv_tools=(
            *given("UV_TOOL_DIR"),
            data / "uv" / "tools",
            *(p / "uv" / "data" / "tools" for p in given("APPDATA")),
        ),
        pipx_caches=(
            *(h / ".cache" for h in pipx_homes),
            cache / "pipx",
            home / "Library" / "Caches" / "pipx",
            *(p / "pipx" / "pipx" / "Cache" for p in local_app),
        ),
        pipx_venvs=tuple(h / "venvs" for h in pipx_homes),
    )
