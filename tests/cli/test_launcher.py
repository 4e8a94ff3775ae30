"""Which command install writes: the environment's own launcher, or uvx/pipx run when it is throwaway.

Each layout is a real directory tree shaped as uv and pipx make them (the
``uv = ...`` line of ``pyvenv.cfg``, uv's ``uv-receipt.toml``, the cache and
tools folders they use); ``tests/project/test_packaging.py`` runs the real command from
a real environment in uv's cache.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rlm_mcp.cli.launcher import Launcher, detect
from rlm_mcp.config import ToolDirectories


def environment(root: Path, *, made_by_uv: bool = False, receipt: bool = False) -> Path:
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "python").write_text("")
    (root / "bin" / "rlm-mcp").write_text("#!/bin/sh\n")
    (root / "pyvenv.cfg").write_text("home = /usr/bin\n" + ("uv = 0.9.0\n" if made_by_uv else ""))
    if receipt:
        (root / "uv-receipt.toml").write_text('[tool]\nrequirements = [{ name = "rlm-mcp" }]\n')
    return root


@pytest.fixture
def dirs(tmp_path: Path) -> ToolDirectories:
    return ToolDirectories(
        uv_caches=(tmp_path / "cache" / "uv",),
        uv_tools=(tmp_path / "data" / "uv" / "tools",),
        pipx_caches=(tmp_path / "cache" / "pipx",),
        pipx_venvs=(tmp_path / "pipx" / "venvs",),
    )


def launch(prefix: Path, dirs: ToolDirectories, **found: str | None) -> Launcher:
    return detect(prefix, prefix / "bin" / "python", dirs, {"uvx": None, "pipx": None, **found})


def test_uvx_from_the_cache_becomes_uvx_rlm_mcp(tmp_path: Path, dirs: ToolDirectories) -> None:
    prefix = environment(tmp_path / "cache" / "uv" / "archive-v0" / "a1b2c3", made_by_uv=True)
    chosen = launch(prefix, dirs, uvx="/home/me/.local/bin/uvx")
    assert chosen.command == "/home/me/.local/bin/uvx" and chosen.args[-1] == "rlm-mcp" and chosen.kind == "uvx"
    assert "uv cache clean" in chosen.reason
    assert launch(prefix, dirs).command == "uvx"  # not on PATH here: the bare name, and the reason says so
    assert "was not found on PATH" in launch(prefix, dirs).reason


def test_a_moved_uv_cache_is_recognised_by_its_shape(tmp_path: Path, dirs: ToolDirectories) -> None:
    prefix = environment(tmp_path / "elsewhere" / "archive-v0" / "x9", made_by_uv=True)
    assert launch(prefix, dirs).kind == "uvx"
    # the same folder names, made by something else, are not uv's cache
    other = environment(tmp_path / "mine" / "archive-v0" / "x9")
    assert launch(other, dirs).kind == "script"


def test_uv_tool_install_keeps_its_own_launcher(tmp_path: Path, dirs: ToolDirectories) -> None:
    prefix = environment(tmp_path / "data" / "uv" / "tools" / "rlm-mcp", made_by_uv=True, receipt=True)
    chosen = launch(prefix, dirs, uvx="/usr/bin/uvx")
    assert chosen == Launcher(str(prefix / "bin" / "rlm-mcp"), (), "script", chosen.reason)
    assert "uv tool install" in chosen.reason


def test_pipx_run_and_pipx_install(tmp_path: Path, dirs: ToolDirectories) -> None:
    ephemeral = environment(tmp_path / "cache" / "pipx" / "0123abcd")
    chosen = launch(ephemeral, dirs, pipx="/usr/bin/pipx")
    assert (chosen.command, chosen.args[0], chosen.args[-1], chosen.kind) == (
        "/usr/bin/pipx",
        "run",
        "rlm-mcp",
        "pipx-run",
    )
    assert "14 days" in chosen.reason
    installed = environment(tmp_path / "pipx" / "venvs" / "rlm-mcp")
    chosen = launch(installed, dirs, pipx="/usr/bin/pipx")
    assert chosen.command == str(installed / "bin" / "rlm-mcp") and "pipx uninstall" in chosen.reason


def test_a_plain_virtual_environment_and_a_checkout_without_the_script(tmp_path: Path, dirs: ToolDirectories) -> None:
    venv = environment(tmp_path / "project" / ".venv")
    assert launch(venv, dirs).command == str(venv / "bin" / "rlm-mcp")
    (venv / "bin" / "rlm-mcp").unlink()
    chosen = launch(venv, dirs)
    assert (chosen.command, chosen.args, chosen.kind) == (str(venv / "bin" / "python"), ("-m", "rlm_mcp"), "python")
