"""load_context sources and the path rules that keep it inside the allowed roots."""

from __future__ import annotations

import itertools
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


@pytest.fixture(scope="module")
def mixed(corpus_dir: Path) -> Path:
    """A folder as real ones are: most files text, one in Latin-1, one binary."""
    folder = corpus_dir / "mixed"
    folder.mkdir()
    (folder / "a.txt").write_text("alpha\n")
    (folder / "latin.txt").write_bytes("caf\u00e9\n".encode("latin-1"))
    (folder / "z.txt").write_text("zulu\n")
    (folder / "blob.bin").write_bytes(b"\x00\x01\x02")
    (folder / "data.jsonl").write_bytes(b'{"a": 1}\n{"b": "\xff"}\n')
    only_bad = corpus_dir / "all-latin"
    only_bad.mkdir()
    for name in ("x.txt", "y.txt"):
        (only_bad / name).write_bytes("\u00e9t\u00e9\n".encode("latin-1"))
    return folder


async def test_a_folder_load_leaves_out_files_that_do_not_decode(client, mixed: Path) -> None:
    loaded = await call(client, "load_context", path="mixed")
    assert loaded["documents"] == 2
    skipped = loaded["skipped"]
    assert "mixed/blob.bin: binary" in skipped
    assert any(s.startswith("mixed/data.jsonl is not valid utf-8") for s in skipped), skipped
    latin = [s for s in skipped if s.startswith("mixed/latin.txt")]
    assert latin == [
        "mixed/latin.txt: not valid utf-8 (byte 3: invalid continuation byte); errors='replace' (or the right "
        "encoding) loads it"
    ]
    out = await call(client, "repl_exec", session_id=loaded["session_id"], code="[d.splitlines()[0] for d in context]")
    assert out["stdout"] == "['==> mixed/a.txt <==', '==> mixed/z.txt <==']\n"
    # Added to a session, the same: the session keeps its corpus and gains the files that decode.
    more = await call(client, "load_context", path="mixed", session_id=loaded["session_id"])
    assert more["added_documents"] == 2 and more["documents"] == 4 and latin[0] in more["skipped"]
    # A single file stays strict, and errors='replace' keeps every text file of the folder.
    assert "not valid utf-8" in await call_error(client, "load_context", path="mixed/latin.txt")
    replaced = await call(client, "load_context", path="mixed", errors="replace")
    assert replaced["documents"] == 5 and replaced["skipped"] == ["mixed/blob.bin: binary"]  # 2 JSONL records


async def test_a_folder_where_nothing_decodes_says_so(client, mixed: Path) -> None:
    error = await call_error(client, "load_context", path="all-latin")
    assert "no text files to load under 'all-latin': none of its 2 text files is valid utf-8" in error
    assert "all-latin/x.txt: not valid utf-8" in error


async def test_a_relative_path_error_says_what_it_was_read_against(client, tree: Path) -> None:
    note = "a relative path is read from the first allowed root, not a working directory"
    error = await call_error(client, "load_context", path="docs/nothing-here.txt")
    assert note in error and str(tree) not in error  # the root is not named: no server path leaves the server
    error = await call_error(client, "load_context", path="nothing-*.xyz")
    assert note in error and str(tree) not in error
    assert "allowed root" not in await call_error(client, "load_context", path=str(tree / "nothing-here.txt"))


async def test_loading_reports_files_and_bytes(client, corpus_dir: Path) -> None:
    many = corpus_dir / "many"
    if not many.exists():
        many.mkdir()
        for i in range(450):
            (many / f"f{i:03d}.txt").write_text(f"line {i:04d}\n")  # 10 bytes each
    reports: list[tuple[float, float | None, str]] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        reports.append((value, total, message or ""))

    result = await client.call_tool("load_context", {"path": "many"}, progress_callback=on_progress)
    assert result.structured_content["documents"] == 450
    messages = [m for _, _, m in reports]
    assert messages[0].startswith("looking at files: 1 so far")  # the first file is reported at once
    reading = [m for m in messages if m.startswith("reading")]
    assert reading == ["reading 200 of 450 files, 2.0 KB", "reading 400 of 450 files, 4.0 KB",
                       "reading 450 of 450 files, 4.5 KB"]  # fmt: skip
    values = [v for v, _, _ in reports]
    assert all(a < b for a, b in itertools.pairwise(values)), values  # MCP: progress only increases
    assert reports[-1][0] == reports[-1][1]  # done: value == total
