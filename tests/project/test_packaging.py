"""The package as it would be published: built, installed from the wheel into a clean environment, and run.

Offline by design: the wheel is built by hatchling (a dev dependency) without
build isolation, and installed with ``pip --no-index --no-deps`` into a virtual
environment made with ``--system-site-packages``, which sees the dependencies
already installed here but not this checkout (the server starts from another
working directory, and the test checks which files it imported). That venv sits
where ``uvx`` keeps its environments (uv's cache, by ``XDG_CACHE_HOME``), so
``install`` run from it must write ``uvx`` as the command, not its own path.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
from helpers import call
from mcp import Client, StdioServerParameters

import rlm_mcp

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "hatchling", "build", "-d", str(out)], cwd=ROOT, check=True, timeout=300,
                   capture_output=True)  # fmt: skip
    return {"wheel": next(out.glob("*.whl")), "sdist": next(out.glob("*.tar.gz"))}


@pytest.fixture(scope="module")
def cache_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def venv(built: dict[str, Path], cache_home: Path) -> Path:
    prefix = cache_home / "uv" / "archive-v0" / "Zq3xkPz1"  # where uvx puts a tool's environment
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(prefix)],
                   check=True, timeout=300)  # fmt: skip
    (prefix / "pyvenv.cfg").write_text((prefix / "pyvenv.cfg").read_text() + "uv = 0.9.0\n")  # as uv marks it
    python = prefix / "bin" / "python"
    pip = [str(python), "-m", "pip", "install", "--no-index", "--no-deps", "--ignore-installed", "--quiet"]
    subprocess.run([*pip, "--disable-pip-version-check", str(built["wheel"])], check=True, timeout=300)
    return prefix


def test_the_wheel_holds_the_package_its_assets_and_metadata(built: dict[str, Path]) -> None:
    names = zipfile.ZipFile(built["wheel"]).namelist()
    for needed in ("rlm_mcp/viewer/page.html", "rlm_mcp/viewer/viewer.js", "rlm_mcp/viewer/viewer.css",
                   "sandbox/worker/main.py", "rlm_mcp/testing/bedrock.py"):  # fmt: skip
        assert needed in names
    assert not [n for n in names if n.startswith(("tests/", "benchmarks/", "scripts/", "docs/")) or "__pycache__" in n]
    info = f"rlm_mcp-{rlm_mcp.__version__}.dist-info"
    assert f"{info}/licenses/LICENSE" in names
    meta = Parser().parsestr(zipfile.ZipFile(built["wheel"]).read(f"{info}/METADATA").decode())
    assert meta["Name"] == "rlm-mcp" and meta["Version"] == rlm_mcp.__version__
    assert meta["License-Expression"] == "MIT" and meta["Requires-Python"] == ">=3.11"
    assert any(r.startswith("tomlkit") for r in meta.get_all("Requires-Dist"))
    assert "Programming Language :: Python :: 3.11" in meta.get_all("Classifier") and "mcp" in meta["Keywords"]
    entry_points = zipfile.ZipFile(built["wheel"]).read(f"{info}/entry_points.txt").decode()
    assert "rlm-mcp = rlm_mcp.cli:main" in entry_points


def test_the_sdist_builds_the_wheel_and_leaves_tests_out(built: dict[str, Path]) -> None:
    with tarfile.open(built["sdist"]) as sdist:
        names = [n.split("/", 1)[1] for n in sdist.getnames() if "/" in n]
    assert {"pyproject.toml", "README.md", "LICENSE", "rlm_mcp/viewer/page.html", "sandbox/worker/main.py"} <= set(
        names
    )
    assert not [n for n in names if n.startswith(("tests/", "benchmarks/", ".ci/", "scripts/"))]


def test_the_installed_wheel_runs_from_its_own_files(venv: Path, tmp_path: Path) -> None:
    python = venv / "bin" / "python"
    code = "import rlm_mcp, sandbox; print(rlm_mcp.__file__); print(sandbox.__file__)"
    where = subprocess.run([str(python), "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    where = where.stdout.split()
    assert all(Path(p).is_relative_to(venv) for p in where), where
    version = subprocess.run([str(venv / "bin" / "rlm-mcp"), "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.strip() == f"rlm-mcp {rlm_mcp.__version__}"


@pytest.mark.anyio
async def test_a_client_starts_the_installed_server_over_stdio(venv: Path, tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "RLM_DATA_DIR": str(tmp_path / "data"),
           "RLM_LOG_LEVEL": "WARNING"}  # fmt: skip
    params = StdioServerParameters(command=str(venv / "bin" / "rlm-mcp"), args=["serve"], env=env, cwd=str(tmp_path))
    async with Client(params, read_timeout_seconds=60) as client:
        tools = {tool.name for tool in (await client.list_tools()).tools}
        assert {"load_context", "rlm_query", "repl_exec", "get_trajectory"} <= tools
        sid = (await call(client, "load_context", content="from the wheel"))["session_id"]
        out = await call(client, "repl_exec", session_id=sid, code="print(context.upper())")
    assert out["stdout"] == "FROM THE WHEEL\n", out


def test_install_from_uvs_cache_writes_uvx_rlm_mcp(venv: Path, cache_home: Path, tmp_path: Path,
                                                   built: dict[str, Path]) -> None:  # fmt: skip
    env = {"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / ".config"), "XDG_CACHE_HOME": str(cache_home),
           "PATH": f"{venv / 'bin'}:/usr/bin:/bin"}  # fmt: skip
    done = subprocess.run([str(venv / "bin" / "rlm-mcp"), "install", "--client", "cursor",
                           "--sub-model", "openai:llama3.1:8b", "--openai-base-url", "http://localhost:11434/v1",
                           "--allowed-roots", ""],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    entry = json.loads((tmp_path / ".cursor" / "mcp.json").read_text())["mcpServers"]["rlm"]
    # installed from a local wheel, so uvx is told where from (from PyPI it would be just `uvx rlm-mcp serve`)
    assert entry["command"] == "uvx"
    assert entry["args"][0] == "--from" and entry["args"][2:] == ["rlm-mcp", "serve"]
    # with the extras this environment has (pypdf, opentelemetry-sdk), and the wheel it came from
    assert re.fullmatch(rf"rlm-mcp(\[[a-z,]+\])? @ {re.escape(built['wheel'].as_uri())}", entry["args"][1])
    assert "uv's cache" in done.stderr and "uv cache clean" in done.stderr
    assert not [w for w in entry["args"] if str(cache_home) in w]  # nothing inside the cache that a prune deletes


def test_version_comes_from_one_place() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in pyproject and 'path = "rlm_mcp/__init__.py"' in pyproject
    assert "\nversion =" not in pyproject.split("[tool.")[0]
    done = subprocess.run([sys.executable, "-m", "rlm_mcp", "--version"], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ}, check=True)  # fmt: skip
    assert done.stdout.strip() == f"rlm-mcp {rlm_mcp.__version__}"
