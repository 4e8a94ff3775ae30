"""load_context beyond plain files: PDF pages, gzip, JSON and JSONL records, include/exclude globs, S3."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import boto3
import pytest
from conftest import connect, server_env
from helpers import call, call_error
from pdfgen import pdf_bytes

pytestmark = pytest.mark.anyio

RECORDS = [{"id": i, "label": ["HUM", "LOC"][i % 2], "text": f"question {i} \u00e9\u4e2d"} for i in range(5)]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, corpus_dir: Path, fake, moto_s3: str) -> dict[str, str]:
    return server_env(
        tmp_path_factory.mktemp("data"),
        corpus_dir,
        fake.url,
        AWS_ENDPOINT_URL_S3=moto_s3,
        RLM_ALLOWED_S3="s3://corpus/,s3://no-such-bucket",
    )


@pytest.fixture(scope="module")
def files(corpus_dir: Path) -> Path:
    (corpus_dir / "report.pdf").write_bytes(
        pdf_bytes([["Annual report", "Revenue grew 12%"], ["Risks (see note 4)"], [], ["The end"]])
    )
    (corpus_dir / "broken.pdf").write_bytes(b"%PDF-1.4\nthis is not really a pdf")
    (corpus_dir / "log.txt.gz").write_bytes(gzip.compress(b"line one\nline two\n" * 1000))
    (corpus_dir / "fake.gz").write_bytes(b"not gzip at all")
    (corpus_dir / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in RECORDS) + "\n")
    (corpus_dir / "records.jsonl.gz").write_bytes(gzip.compress((corpus_dir / "records.jsonl").read_bytes()))
    (corpus_dir / "array.json").write_text(json.dumps(RECORDS, indent=2, ensure_ascii=False))
    (corpus_dir / "object.json").write_text('{"name": "one record", "sep": "a\\u001eb"}')
    (corpus_dir / "bad.jsonl").write_text('{"ok": 1}\n{"broken": \n')
    code = corpus_dir / "repo"
    (code / "src" / "pkg").mkdir(parents=True)
    (code / "tests").mkdir()
    (code / ".git").mkdir()
    (code / "src" / "pkg" / "core.py").write_text("def core():\n    return 1\n")
    (code / "src" / "pkg" / "util.py").write_text("def util():\n    return 2\n")
    (code / "src" / "pkg" / "data.min.js").write_text("var x=1;")
    (code / "tests" / "test_core.py").write_text("def test_core():\n    assert True\n")
    (code / ".git" / "HEAD.py").write_text("ref: refs/heads/main\n")
    (code / "README.md").write_text("# Repo\n")
    (code / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    return corpus_dir


async def test_pdf_pages_are_documents_named_by_page(client, files: Path) -> None:
    loaded = await call(client, "load_context", path="report.pdf")
    assert loaded["type"] == "list[str]" and loaded["documents"] == 4 and loaded["added_documents"] == 4
    assert loaded["preview"].startswith("==> report.pdf#page=1 <==\nAnnual report\nRevenue grew 12%")
    sid = loaded["session_id"]
    out = await call(client, "repl_exec", session_id=sid, code="[d.splitlines()[0] for d in context]")
    assert out["stdout"] == (
        "['==> report.pdf#page=1 <==', '==> report.pdf#page=2 <==', '==> report.pdf#page=3 <==', "
        "'==> report.pdf#page=4 <==']\n"
    )
    out = await call(client, "repl_exec", session_id=sid, code="print(context[1].split(chr(10))[1]); context[2]")
    assert out["stdout"] == "Risks (see note 4)\n'==> report.pdf#page=3 <==\\n'\n"  # an empty page keeps its place


async def test_unreadable_pdf_is_refused_clearly(client, files: Path) -> None:
    assert "broken.pdf is not a readable PDF" in await call_error(client, "load_context", path="broken.pdf")


async def test_gzip_is_decompressed(client, files: Path) -> None:
    loaded = await call(client, "load_context", path="log.txt.gz")
    assert loaded["type"] == "str" and loaded["chars"] == len("line one\nline two\n") * 1000
    assert loaded["lines"] == 2000
    assert "fake.gz is not a valid gzip file" in await call_error(client, "load_context", path="fake.gz")


async def test_jsonl_and_json_become_records(client, files: Path) -> None:
    decode = "[json.loads(d.partition(chr(10))[2]) == r for d, r in zip(context, expected)]"
    for path, first in [
        ("records.jsonl", "records.jsonl:1"),
        ("records.jsonl.gz", "records.jsonl.gz:1"),
        ("array.json", "array.json[0]"),
    ]:
        loaded = await call(client, "load_context", path=path)
        assert loaded["type"] == "list[str]" and loaded["documents"] == 5, path
        assert loaded["preview"].startswith(f"==> {first} <==\n{{"), loaded["preview"]
        code = f"import json\nexpected = {json.dumps(RECORDS)}\n{decode}"
        out = await call(client, "repl_exec", session_id=loaded["session_id"], code=code)
        assert out["stdout"] == "[True, True, True, True, True]\n", (path, out)
    obj = await call(client, "load_context", path="object.json")
    assert obj["documents"] == 1
    assert obj["preview"] == '==> object.json <==\n{"name":"one record","sep":"a\\u001eb"}'
    as_text = await call(client, "load_context", path="records.jsonl", format="text")
    assert as_text["type"] == "str" and as_text["lines"] == 6
    error = await call_error(client, "load_context", path="bad.jsonl")
    assert "bad.jsonl line 2 is not valid JSON" in error and "format='text'" in error


async def test_directory_include_exclude(client, files: Path) -> None:
    loaded = await call(client, "load_context", path="repo", include=["*.py", "*.md"], exclude=["tests/*"])
    sid = loaded["session_id"]
    out = await call(client, "repl_exec", session_id=sid, code="[d.splitlines()[0] for d in context]")
    assert (
        out["stdout"] == "['==> repo/README.md <==', '==> repo/src/pkg/core.py <==', '==> repo/src/pkg/util.py <==']\n"
    )
    everything = await call(client, "load_context", path="repo")
    assert everything["documents"] == 5  # .git is skipped, the PNG is binary
    assert "repo/logo.png: binary" in everything["skipped"]
    error = await call_error(client, "load_context", path="repo", include=["*.rs"])
    assert "no text files to load" in error
    assert "do not apply to content" in await call_error(client, "load_context", content="x", include=["*.py"])


async def test_adding_pages_to_a_text_session(client, files: Path) -> None:
    first = await call(client, "load_context", content="notes", name="notes.txt")
    added = await call(client, "load_context", path="report.pdf", session_id=first["session_id"])
    assert added["documents"] == 5 and added["added_documents"] == 4
    out = await call(client, "repl_exec", session_id=first["session_id"], code="[d[:20] for d in context[:2]]")
    assert out["stdout"] == "['==> notes.txt <==\\nno', '==> report.pdf#page=']\n"


@pytest.fixture(scope="module")
def bucket(moto_s3: str) -> str:
    s3 = boto3.client(
        "s3",
        endpoint_url=moto_s3,
        region_name="us-east-1",
        aws_access_key_id="AKIAFAKEFAKEFAKE",
        aws_secret_access_key="fake-secret",
    )
    s3.create_bucket(Bucket="corpus")
    s3.put_object(Bucket="corpus", Key="single.txt", Body=b"hello from s3\n")
    s3.put_object(Bucket="corpus", Key="reports/2024/q1.txt", Body=b"q1 revenue 10\n")
    s3.put_object(Bucket="corpus", Key="reports/2024/q2.txt.gz", Body=gzip.compress(b"q2 revenue 12\n"))
    s3.put_object(Bucket="corpus", Key="reports/2024/q3.pdf", Body=pdf_bytes([["q3 revenue 15"]]))
    s3.put_object(Bucket="corpus", Key="reports/2024/image.bin", Body=b"\x00\x01\x02")
    s3.put_object(Bucket="corpus", Key="reports/drafts/q4.txt", Body=b"draft\n")
    return "corpus"


async def test_s3_object_and_prefix(client, bucket: str, env: dict[str, str]) -> None:
    single = await call(client, "load_context", path=f"s3://{bucket}/single.txt")
    assert single["type"] == "str" and single["preview"] == "hello from s3\n"
    prefix = await call(client, "load_context", path=f"s3://{bucket}/reports/", exclude=["drafts/*"])
    assert "s3://corpus/reports/2024/image.bin: binary" in prefix["skipped"]
    out = await call(client, "repl_exec", session_id=prefix["session_id"], code="print(chr(10).join(context))")
    assert out["stdout"] == (
        "==> s3://corpus/reports/2024/q1.txt <==\nq1 revenue 10\n\n"
        "==> s3://corpus/reports/2024/q2.txt.gz <==\nq2 revenue 12\n\n"
        "==> s3://corpus/reports/2024/q3.pdf#page=1 <==\nq3 revenue 15\n\n"
    )
    # A second load of the same objects downloads and converts nothing new.
    derived = Path(env["RLM_DATA_DIR"]) / "corpora" / "derived"
    before = sorted(p.name for p in derived.iterdir())
    again = await call(client, "load_context", path=f"s3://{bucket}/reports/2024/", include=["*.txt*", "*.pdf"])
    assert again["documents"] == 3
    assert sorted(p.name for p in derived.iterdir()) == before


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("s3://corpus/missing.txt", "does not exist; for every object under a prefix, end the URL with '/'"),
        ("s3://no-such-bucket/x/", "the bucket 'no-such-bucket' does not exist"),
        ("s3://corpus/nothing-here/", "no objects under s3://corpus/nothing-here/"),
        ("s3:///key", "is not an s3://bucket/key URL"),
        # The allowed locations are the operator's business: never listed to the client.
        ("s3://someone-elses-bucket/data/", "'s3://someone-elses-bucket/data/' is outside RLM_ALLOWED_S3; give"),
    ],
)
async def test_s3_errors_say_what_to_do(client, bucket: str, url: str, message: str) -> None:
    assert message in await call_error(client, "load_context", path=url)


async def test_s3_is_off_until_allowed(tmp_path: Path, fake, moto_s3: str, bucket: str) -> None:
    env = server_env(tmp_path / "data", tmp_path, fake.url, AWS_ENDPOINT_URL_S3=moto_s3)
    async with connect("stdio", env) as client:
        error = await call_error(client, "load_context", path=f"s3://{bucket}/single.txt")
    assert "loading from S3 is off: set RLM_ALLOWED_S3" in error
