"""load_context sources and the path rules that keep it inside the allowed roots."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import call, call_error

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def tree(corpus_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    outside = tmp_path_factory.mktemp("outside")
    (outside / "secret.txt").write_text("TOP SECRET")
    docs = corpus_dir / "docs"
    (docs / "sub").mkdir(parents=True)
    (docs / ".git").mkdir()
    (docs / "a.md").write_text("# Alpha\nalpha text\n")
    (docs / "b.txt").write_text("bravo\n")
    (docs / "sub" / "c.txt").write_text("charlie\n")
    (docs / ".git" / "config").write_text("[core]\n")
    (docs / "image.bin").write_bytes(b"\x89PNG\x00\x00\x01")
    (docs / "empty.txt").write_text("")
    (docs / "escape.txt").symlink_to(outside / "secret.txt")
    (corpus_dir / "link-out.txt").symlink_to(outside / "secret.txt")
    (corpus_dir / "latin1.txt").write_bytes("café crème\n".encode("latin-1"))
    (corpus_dir / "binary.dat").write_bytes(b"abc\x00def")
    (corpus_dir / "empty.txt").write_text("")
    os.mkfifo(corpus_dir / "pipe")
    return corpus_dir


async def test_directory_becomes_documents_with_their_paths(client, tree: Path) -> None:
    loaded = await call(client, "load_context", path=str(tree / "docs"))
    assert loaded["type"] == "list[str]"
    assert loaded["documents"] == 3
    skipped = " | ".join(loaded["skipped"])
    assert "image.bin: binary" in skipped and "empty.txt: empty" in skipped and "outside the allowed roots" in skipped
    out = await call(client, "repl_exec", session_id=loaded["session_id"], code="[d.splitlines()[0] for d in context]")
    assert out["stdout"] == "['==> docs/a.md <==', '==> docs/b.txt <==', '==> docs/sub/c.txt <==']\n"
    everything = await call(client, "repl_exec", session_id=loaded["session_id"], code="'SECRET' in ''.join(context)")
    assert everything["stdout"] == "False\n"


async def test_glob_and_relative_paths(client, tree: Path) -> None:
    globbed = await call(client, "load_context", path="docs/**/*.txt")
    assert globbed["documents"] == 2  # b.txt and sub/c.txt (empty.txt and the escaping link are left out)
    relative = await call(client, "load_context", path="docs/b.txt")
    assert relative["type"] == "str" and relative["chars"] == len("bravo\n")


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("../outside/secret.txt", "may not contain '..'"),
        ("docs/../link-out.txt", "may not contain '..'"),
        ("link-out.txt", "outside the allowed roots"),
        ("/etc/passwd", "outside the allowed roots"),
        ("/dev/null", "never loaded"),
        ("/proc/self/environ", "never loaded"),
        ("pipe", "is a FIFO"),
        ("missing.txt", "does not exist"),
        ("binary.dat", "binary"),
        ("empty.txt", "empty"),
        ("nothing-matches-*.xyz", "no files match"),
    ],
)
async def test_refused_paths_get_clear_errors(client, tree: Path, path: str, message: str) -> None:
    assert message in await call_error(client, "load_context", path=path)


async def test_non_utf8_is_refused_then_loaded_with_replace(client, tree: Path) -> None:
    error = await call_error(client, "load_context", path="latin1.txt")
    assert "not valid utf-8" in error and "errors='replace'" in error
    replaced = await call(client, "load_context", path="latin1.txt", errors="replace")
    assert replaced["preview"].startswith("caf\ufffd")
    latin = await call(client, "load_context", path="latin1.txt", encoding="latin-1")
    assert latin["preview"] == "café crème\n"
    assert "unknown encoding" in await call_error(client, "load_context", path="latin1.txt", encoding="nope")


async def test_adding_to_a_session_makes_a_list(client, tree: Path) -> None:
    first = await call(client, "load_context", content="inline text", name="note")
    assert first["type"] == "str"
    second = await call(client, "load_context", path="docs/b.txt", session_id=first["session_id"])
    assert second["session_id"] == first["session_id"]
    assert second["type"] == "list[str]" and second["documents"] == 2 and second["added_documents"] == 1
    out = await call(client, "repl_exec", session_id=first["session_id"], code="context")
    assert out["stdout"] == "['==> note <==\\ninline text', '==> docs/b.txt <==\\nbravo\\n']\n"
