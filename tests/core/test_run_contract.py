"""The loop and nested runs meet only through :mod:`rlm_mcp.core.runs.contract`; telemetry takes plain values."""

from __future__ import annotations

import ast
from pathlib import Path

from rlm_mcp.core.backends import backend_of
from rlm_mcp.models import OpenAIClient, SamplingClient
from rlm_mcp.telemetry.spans import provider_name

ROOT = Path(__file__).resolve().parents[2]


def imports_of(relative: str) -> set[str]:
    """Every module a file imports, TYPE_CHECKING blocks included (a type-only circle is still a circle to read)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse((ROOT / relative).read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_nested_runs_know_the_loop_only_through_its_contract() -> None:
    assert "rlm_mcp.core.runs.loop" not in imports_of("rlm_mcp/core/runs/recursion.py")
    assert "rlm_mcp.core.runs.contract" in imports_of("rlm_mcp/core/runs/recursion.py")
    assert "rlm_mcp.core.runs.recursion" not in imports_of("rlm_mcp/core/runs/loop.py")
    contract = imports_of("rlm_mcp/core/runs/contract.py")
    assert not contract & {"rlm_mcp.core.runs.loop", "rlm_mcp.core.runs.recursion"}


def test_telemetry_imports_nothing_of_the_core() -> None:
    for path in (ROOT / "rlm_mcp" / "telemetry").glob("*.py"):
        core = {m for m in imports_of(str(path.relative_to(ROOT))) if m.startswith("rlm_mcp.core")}
        assert not core, f"{path.name} imports {core}"


def test_each_backend_has_its_own_provider_label() -> None:
    assert provider_name("bedrock") == "aws.bedrock"
    openai = OpenAIClient(base_url="http://127.0.0.1:9/v1", api_key=None, max_attempts=1, read_timeout_s=1, pool_size=1)
    assert provider_name(backend_of(openai)) == "openai"
    assert provider_name(backend_of(SamplingClient())) == "mcp.sampling"

    class Scripted:
        backend = "mock"

    assert provider_name(backend_of(Scripted())) == "mock"  # type: ignore[arg-type]
