"""The worker's chunked loader and the streaming JSON reader, at chunk sizes small enough to cut everything."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from rlm_mcp.errors import InvalidInput
from rlm_mcp.sources import derived, records
from sandbox.worker import loader


def spec(**kwargs: object) -> loader.DocumentSpec:
    return loader.DocumentSpec(**{"name": "doc", "header": "", "encoding": "utf-8", "errors": "strict", **kwargs})


def fd_of(tmp_path: Path, data: bytes) -> int:
    path = tmp_path / "doc"
    path.write_bytes(data)
    return os.open(path, os.O_RDONLY)


@pytest.fixture(params=[1, 3, 7, 4096])
def chunk(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(loader, "READ_CHUNK", request.param)
    return request.param


TEXT = (
    "ascii first, then Latin-1 caf\u00e9, then Cyrillic \u043f\u0440\u0438\u0432\u0435\u0442, "
    "CJK \u4e2d\u6587, emoji \U0001f600.\n"
) * 3


def test_multibyte_characters_cut_by_chunks_decode_whole(tmp_path: Path, chunk: int) -> None:
    text = loader.read_document(fd_of(tmp_path, TEXT.encode()), spec(header="==> doc <==\n"))
    assert text == "==> doc <==\n" + TEXT


def test_decode_error_names_the_byte(tmp_path: Path, chunk: int) -> None:
    data = "caf\u00e9 ".encode() * 5 + b"\xff rest"
    with pytest.raises(loader.DocumentDecodeError, match=r"doc is not valid utf-8 \(byte 30: invalid start byte\)"):
        loader.read_document(fd_of(tmp_path, data), spec())
    replaced = loader.read_document(fd_of(tmp_path, data), spec(errors="replace"))
    assert replaced == "caf\u00e9 " * 5 + "\ufffd rest"


def test_parts_split_on_the_record_separator(tmp_path: Path, chunk: int) -> None:
    parts = ["==> a#1 <==\nfirst \u4e2d", "==> a#2 <==\n", "==> a#3 <==\nthird"]
    data = "".join(p + "\x1e" for p in parts).encode()
    assert loader.read_parts(fd_of(tmp_path, data), spec(parts=True)) == parts


def test_file_descriptor_is_closed(tmp_path: Path) -> None:
    fd = fd_of(tmp_path, b"abc")
    loader.read_document(fd, spec())
    with pytest.raises(OSError):
        os.fstat(fd)


def write_records(tmp_path: Path, source: Path, kind: str) -> list[str]:
    out_path = tmp_path / "out"
    with out_path.open("wb") as out:
        writer = derived.PartsWriter(derived.LimitedWriter(out, 10**9, source.name))
        write = records.write_json if kind == "json" else records.write_jsonl
        write(source, source.name, writer, encoding="utf-8", errors="strict")
    return [p for p in out_path.read_text("utf-8").split("\x1e") if p]


@pytest.mark.parametrize("read_chunk", [1, 2, 5, 1024])
def test_json_array_streams_across_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, read_chunk: int) -> None:
    monkeypatch.setattr(records, "READ_CHUNK", read_chunk)
    values = [12345, -1.5e10, "s\u00e9p\x1e", {"a": [1, {"b": None}]}, [], True, "x" * 50]
    source = tmp_path / "a.json"
    source.write_text(" [\n" + " ,\n ".join(json.dumps(v) for v in values) + "\n] \n")
    parts = write_records(tmp_path, source, "json")
    assert [p.split("\n", 1)[0] for p in parts] == [f"==> a.json[{i}] <==" for i in range(len(values))]
    assert [json.loads(p.split("\n", 1)[1]) for p in parts] == values


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[1, 2", "ends before its closing ']' (after 2 elements)"),
        ("[1, ", "element 1 is not valid JSON"),
        ("[1 2]", "expected ',' or ']' after element 0"),
        ("[1] x", "unexpected text after the closing ']'"),
        ('{"a": ', "a.json is not valid JSON"),
    ],
)
def test_bad_json_is_refused(tmp_path: Path, text: str, message: str) -> None:
    source = tmp_path / "a.json"
    source.write_text(text)
    with pytest.raises(InvalidInput, match=re.escape(message)):
        write_records(tmp_path, source, "json")


def test_limit_stops_a_conversion(tmp_path: Path) -> None:
    with (tmp_path / "out").open("wb") as out, pytest.raises(derived.TooLarge, match="corpus limit"):
        derived.LimitedWriter(out, 10, "big.gz").write(b"x" * 11)


@pytest.mark.anyio
async def test_more_files_than_the_worker_may_open_at_once(tmp_path: Path) -> None:
    """The worker may hold 512 descriptors: 1,100 files go over in acknowledged batches."""
    from sandbox import Document, Sandbox

    docs = []
    for i in range(1100):
        path = tmp_path / f"f{i:04d}.txt"
        path.write_text(f"doc {i}\n")
        docs.append(Document(name=path.name, path=path, header=f"==> {path.name} <==\n"))
    async with Sandbox() as box:
        info = await box.load(docs, shape="list")
        assert info.documents == 1100
        result = await box.execute("print(len(context), context[0].split()[-1], context[-1].split()[-1])")
    assert result.stdout == "1100 0 1099\n"


@pytest.mark.anyio
async def test_a_bad_file_in_a_later_batch_leaves_the_sandbox_usable(tmp_path: Path) -> None:
    from sandbox import Document, LoadError, Sandbox

    docs = []
    for i in range(450):
        path = tmp_path / f"f{i:04d}.txt"
        path.write_bytes(b"\xff bad" if i == 300 else f"doc {i}\n".encode())
        docs.append(Document(name=path.name, path=path, header=f"==> {path.name} <==\n"))
    async with Sandbox() as box:
        await box.load(docs[:2], shape="list")
        with pytest.raises(LoadError, match=r"f0300.txt is not valid utf-8 \(byte 0"):
            await box.load(docs, shape="list", append=True)
        result = await box.execute("print(len(context))")
        assert result.stdout == "2\n"  # the corpus from before the failed load
        info = await box.load(docs[301:], shape="list", append=True)
        assert info.documents == 151
