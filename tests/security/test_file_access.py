"""File access is never implied, and errors never show the server's own paths.

- With no ``RLM_ALLOWED_ROOTS`` (the default), ``load_context`` reads no file at all
  and says how to allow a folder; the working directory (``/`` under Claude Desktop)
  is not a root. ``/``, a home directory and folders holding one need an explicit
  override, and the server warns when given it.
- ``rlm-mcp query --context PATH`` still reads what it names: naming is the permission.
- The server's data directory (every principal's corpora and trajectories) is never
  loaded, even from inside an allowed root.
- Messages name paths as the client gave them (or documents relative to their
  root), never a resolved path, the allowed roots or the data directory.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT_MODEL, connect, server_env
from helpers import call, call_error

from rlm_mcp.errors import Redactor
from rlm_mcp.testing.bedrock import code, scripted

pytestmark = pytest.mark.anyio
HOW_TO = ("RLM_ALLOWED_ROOTS", "--allowed-roots")


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, fake) -> dict[str, str]:
    """A server configured as `rlm-mcp install` used to leave it: no allowed roots at all."""
    return server_env(tmp_path_factory.mktemp("data"), Path("unused"), fake.url, RLM_ALLOWED_ROOTS="")


@pytest.fixture(scope="module")
def somewhere(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("somewhere")
    (folder / "notes.txt").write_text("private notes\n")
    return folder


async def test_without_roots_no_path_is_read(client, somewhere: Path) -> None:
    # The server's working directory is this checkout, the old implied root: it is not one any more.
    for path in ("README.md", "./rlm_mcp/config.py", str(somewhere / "notes.txt"), str(somewhere), "*.md",
                 str(somewhere / "*.txt"), "~/.aws/credentials"):  # fmt: skip
        error = await call_error(client, "load_context", path=path)
        assert all(words in error for words in HOW_TO), (path, error)
        assert "may read no folder" in error and str(Path.cwd()) not in error
    # Inline content needs no folder.
    loaded = await call(client, "load_context", content="still works")
    assert loaded["chars"] == len("still works")


def _serve_stdio(env: dict[str, str]) -> subprocess.CompletedProcess:
    """Start the stdio server with nothing to read on stdin: it starts (or refuses), then stops at EOF."""
    return subprocess.run(
        [sys.executable, "-m", "rlm_mcp", "serve"],
        env={**env, "RLM_LOG_LEVEL": "WARNING"},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_broad_roots_need_an_explicit_override(tmp_path: Path, fake) -> None:
    home = tmp_path / "home" / "someone"
    (home / "Documents").mkdir(parents=True)
    base = server_env(tmp_path / "data", tmp_path, fake.url, HOME=str(home))
    for root in ("/", str(home), str(home.parent), f"{home}/", "~", "/etc", "/home/another-user"):
        refused = _serve_stdio({**base, "RLM_ALLOWED_ROOTS": f"{home / 'Documents'}{os.pathsep}{root}"})
        assert refused.returncode == 2, (root, refused.stderr)
        assert "invalid setting: --allowed-roots / RLM_ALLOWED_ROOTS: " in refused.stderr
        assert "RLM_ALLOW_BROAD_ROOTS=true" in refused.stderr
    fine = _serve_stdio({**base, "RLM_ALLOWED_ROOTS": str(home / "Documents")})
    assert fine.returncode == 0 and "RLM_ALLOWED_ROOTS includes" not in fine.stderr, fine.stderr
    overridden = _serve_stdio({**base, "RLM_ALLOWED_ROOTS": "/", "RLM_ALLOW_BROAD_ROOTS": "true"})
    assert overridden.returncode == 0, overridden.stderr
    assert "RLM_ALLOWED_ROOTS includes / (allowed by RLM_ALLOW_BROAD_ROOTS)" in overridden.stderr


def test_query_reads_what_the_command_line_names(tmp_path: Path, fake) -> None:
    """No roots configured at all: `rlm-mcp query --context PATH` reads PATH because it was named."""
    fake.respond = scripted(ROOT_MODEL, [code("FINAL(context.strip())")])
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "answer.txt").write_text("forty-two\n")
    env = server_env(tmp_path / "data", tmp_path, fake.url, RLM_ALLOWED_ROOTS="")
    done = subprocess.run(
        [sys.executable, "-m", "rlm_mcp", "query", "--context", "answer.txt", "What is it?"],
        env=env,
        cwd=tmp_path / "work",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (done.returncode, done.stdout) == (0, "forty-two\n"), done.stderr


async def test_the_data_directory_is_never_loaded(tmp_path: Path, fake) -> None:
    """An allowed root that holds the data directory still cannot reach the corpora and trajectories in it."""
    root = tmp_path / "projects"
    (root / "docs").mkdir(parents=True)
    (root / "docs" / "readme.txt").write_text("public\n")
    data = root / "rlm-data"
    env = server_env(data, root, fake.url)
    async with connect("stdio", env) as client:
        secret = await call(client, "load_context", content="ANOTHER CLIENT'S CANARY")
        await call(client, "repl_exec", session_id=secret["session_id"], code="x = 1")
        stored = data / "corpora" / f"{secret['corpus_id']}.txt"
        assert stored.is_file()
        for path in (str(stored), "rlm-data/corpora", "rlm-data", f"rlm-data/trajectories/{secret['trajectory_id']}"):
            error = await call_error(client, "load_context", path=path)
            assert "outside the allowed roots" in error and str(data) not in error.replace(path, ""), error
        assert "starts outside" in await call_error(client, "load_context", path="rlm-data/**/*.txt")
        everything = await call(client, "load_context", path=str(root))
        out = await call(client, "repl_exec", session_id=everything["session_id"], code="'CANARY' in str(context)")
        assert out["stdout"] == "False\n"
        assert everything["documents"] == 1  # docs/readme.txt; every file under rlm-data is left out
        assert all(not entry.startswith("/") for entry in everything["skipped"]), everything["skipped"]


async def test_errors_name_only_what_the_client_gave(tmp_path: Path, fake) -> None:
    root = tmp_path / "allowed"
    outside = tmp_path / "elsewhere"
    (root / "docs").mkdir(parents=True)
    outside.mkdir()
    (outside / "secret.txt").write_text("s\n")
    (root / "docs" / "ok.txt").write_text("ok\n")
    (root / "docs" / "escape.txt").symlink_to(outside / "secret.txt")
    (root / "linked").symlink_to(outside)
    data = tmp_path / "data"
    env = server_env(data, root, fake.url, RLM_ALLOWED_S3="s3://private-bucket/reports/")
    errors: list[str] = []
    async with connect("stdio", env) as client:
        for path in ("docs/escape.txt", "linked/secret.txt", "linked", "linked/*", "missing.txt", "docs/nope/*.txt",
                     "s3://someone-else/x.txt"):  # fmt: skip
            errors.append(await call_error(client, "load_context", path=path))
        loaded = await call(client, "load_context", path="docs")
        errors.extend(loaded["skipped"])
        errors.append(await call_error(client, "load_context", corpus_id="0" * 64))
        errors.append(await call_error(client, "repl_exec", session_id="s_neverWasThere1", code="1"))
    assert "docs/escape.txt is outside the allowed roots" in " ".join(loaded["skipped"])
    missing = "Error executing tool load_context: 'missing.txt' does not exist"
    assert any(text.startswith(missing) for text in errors), errors  # with a note on relative paths, no root named
    for text in errors:
        for private in (str(root), str(outside), str(data), "s3://private-bucket"):
            assert private not in text, (private, text)


async def test_a_vanished_document_is_named_without_its_path(tmp_path: Path, fake) -> None:
    root = tmp_path / "allowed"
    root.mkdir()
    (root / "doc.txt").write_text("soon gone\n")
    env = server_env(tmp_path / "data", root, fake.url)
    async with connect("stdio", env) as client:
        sid = (await call(client, "load_context", path="doc.txt"))["session_id"]
    (root / "doc.txt").unlink()
    async with connect("stdio", env) as client:  # a restarted server revives the session from its record
        error = await call_error(client, "repl_exec", session_id=sid, code="context")
    assert "the session's document 'doc.txt' is not on this server" in error
    assert str(root) not in error and str(tmp_path) not in error


def test_the_redactor_takes_out_server_locations() -> None:
    home = str(Path.home())
    scrub = Redactor({home: "~", f"{home}/.local/share/rlm-mcp": "<data dir>", "/": "<root>", "": "x"})
    assert scrub(f"cannot open {home}/.local/share/rlm-mcp/corpora/a.txt") == "cannot open <data dir>/corpora/a.txt"
    assert scrub(f"{home}/docs/a.txt does not exist") == "~/docs/a.txt does not exist"
    assert scrub("/etc/passwd") == "/etc/passwd"  # '/' itself is never a place to hide
