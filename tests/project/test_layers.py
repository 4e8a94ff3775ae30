"""House rules that keep the layers apart, and the command line."""

from __future__ import annotations

import ast
import contextlib
import os
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

ROOT = Path(__file__).resolve().parents[2]


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


GROUND_FLOOR = ("config", "setting_names", "auth_tokens", "errors", "principals", "schemas", "files", "progress", "aws")
"""Modules every layer may use, which use no other part of rlm_mcp (``rlm_mcp.__version__`` aside)."""


def _rlm_imports(path: Path) -> set[str]:
    return {m for m in imported_modules(path) if m.split(".")[0] == "rlm_mcp" and m != "rlm_mcp"}


def test_the_ground_floor_imports_nothing_above_it() -> None:
    for name in GROUND_FLOOR:
        paths = [ROOT / "rlm_mcp" / f"{name}.py"] if (ROOT / "rlm_mcp" / f"{name}.py").exists() else []
        paths += sorted((ROOT / "rlm_mcp" / name).rglob("*.py")) if (ROOT / "rlm_mcp" / name).is_dir() else []
        assert paths, name
        for path in paths:
            above = {m for m in _rlm_imports(path) if m.split(".")[1] not in GROUND_FLOOR}
            assert not above, f"{path.relative_to(ROOT)} imports {above}"


@pytest.mark.parametrize("layer", ["models", "sources", "store", "viewer"])
def test_the_lower_layers_import_no_core_server_or_cli(layer: str) -> None:
    for path in (ROOT / "rlm_mcp" / layer).rglob("*.py"):
        above = {m for m in _rlm_imports(path) if m.split(".")[1] in ("core", "server", "cli")}
        assert not above, f"{path.relative_to(ROOT)} imports {above}"


def test_only_config_reads_the_environment() -> None:
    readers = [
        path.relative_to(ROOT)
        for package in ("rlm_mcp", "sandbox")
        for path in (ROOT / package).rglob("*.py")
        if "os.environ" in path.read_text() or "os.getenv" in path.read_text()
    ]
    assert readers == [Path("rlm_mcp/config.py")]


SUBCOMMANDS = ("serve", "query", "trajectory", "sessions", "install", "uninstall", "doctor")


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_each_subcommand_help_is_short_and_its_own_options_come_first(command: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "rlm_mcp", command, "--help"], capture_output=True, text=True, check=True, cwd=ROOT,
        env={**os.environ, "COLUMNS": "100"},
    ).stdout  # fmt: skip
    assert len(out.splitlines()) <= 60, f"{command} --help has {len(out.splitlines())} lines"
    options = out.index("options:")
    if command != "uninstall":  # uninstall takes no settings
        assert out.index("\nsettings:") > options and "--help-settings" in out
        assert "--exec-timeout-s" not in out  # the rarely used ones are behind --help-settings
    assert "example" in out and f"rlm-mcp {command} " in out.split("options:")[0].split("example")[1]
    assert "(default" in out


def test_help_settings_lists_every_setting_with_its_variable_and_default() -> None:
    from rlm_mcp.config import Settings, env_name, flag_name

    out = subprocess.run(
        [sys.executable, "-m", "rlm_mcp", "serve", "--help-settings"], capture_output=True, text=True, check=True,
        cwd=ROOT, env={**os.environ, "COLUMNS": "200"},
    ).stdout  # fmt: skip
    for name in Settings.model_fields:
        assert flag_name(name) in out and f"[{env_name(name)}]" in out, name
    assert "(default: 20)" in out and "--transport" not in out
    assert "--help-settings" in subprocess.run([sys.executable, "-m", "rlm_mcp", "install", "--help"],
                                               capture_output=True, text=True, check=True, cwd=ROOT).stdout  # fmt: skip


def test_the_flag_rule_is_in_one_place() -> None:
    """Flags and variables are derived by config.flag_name/env_name only; nothing else spells the rule out."""
    rule = ('f"RLM_{', "f'RLM_{", '"RLM_" +', "replace('_', '-')", 'replace("_", "-")', '"setting_"')
    offenders = [
        path.relative_to(ROOT)
        for package in ("rlm_mcp", "tests")
        for path in (ROOT / package).rglob("*.py")
        if path != ROOT / "rlm_mcp" / "setting_names.py"
        and path != Path(__file__)
        and any(spelling in path.read_text() for spelling in rule)
    ]
    assert offenders == []


def test_bad_setting_is_a_clear_error() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "rlm_mcp", "--max-iterations", "0"], capture_output=True, text=True, timeout=300
    )
    assert done.returncode != 0
    assert "invalid setting: --max-iterations / RLM_MAX_ITERATIONS:" in done.stderr
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
    from rlm_mcp.config import Settings, env_name, flag_name

    readme = (ROOT / "README.md").read_text()
    for name in Settings.model_fields:
        env = env_name(name)
        assert f"| `{env}` | `{flag_name(name)}` |" in readme, f"{env} is missing from the README"


def test_every_text_that_lists_the_repl_modules_lists_the_sandboxes_own() -> None:
    """The guide, the skill and repl_exec's description are rendered from sandbox.SAFE_MODULES, not copied."""
    from rlm_mcp.config import Settings
    from rlm_mcp.core.guide import guide_text, skill_text
    from rlm_mcp.server.app import REPL_EXEC_DESCRIPTION
    from sandbox import SAFE_MODULES

    settings = Settings()
    for text in (guide_text(settings), skill_text(settings), REPL_EXEC_DESCRIPTION):
        listed = text.split("modules", 1)[1].split(".")[0].replace(":", "")
        assert {name.strip() for name in listed.split(",")} == {m for m in SAFE_MODULES if "." not in m}, listed


def test_the_root_is_shown_no_more_of_the_corpus_than_the_worker_sends() -> None:
    from rlm_mcp.core.runs.prompts import CORPUS_PREVIEW_CHARS
    from sandbox.worker.loader import PREVIEW_CHARS

    assert CORPUS_PREVIEW_CHARS <= PREVIEW_CHARS
