"""Faults of the data directory: a full disk, a read-only one, damaged records. Nothing is lost or silent.

The disk is a real 2 MB tmpfs mounted for the test (root only; skipped with the
reason otherwise), filled by a file the test writes, so every write the server
makes meets the kernel's own ENOSPC, short writes included. The server runs as
a subprocess over streamable HTTP and is spoken to by a real MCP client.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import anyio
import pytest
from conftest import ROOT_MODEL, HttpServer, connect, server_env
from helpers import call, call_error, holding

from rlm_mcp.core.trajectories import TrajectoryStore
from rlm_mcp.schemas import Step
from rlm_mcp.store import S3Store
from rlm_mcp.store.failures import describe_os_error
from rlm_mcp.testing.bedrock import ConverseFake, Reply, code, scripted

pytestmark = pytest.mark.anyio
STEP_TWO = "8\n" + "z" * 9000 + "\n"
"""What the second step of the run prints: more than fits in what a full tmpfs leaves of a file's last page."""
DURING = "during 2\n" + "w" * 9000 + "\n"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB tmpfs: a disk the test can fill, free and make read-only."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs to fill needs root")
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip() or done.returncode}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture
def s3_client(moto_s3: str) -> tuple[SimpleNamespace, str]:
    """A bucket in moto's S3 on loopback, and a fresh prefix in it."""
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=moto_s3,
        region_name="us-east-1",
        aws_access_key_id="AKIAFAKEFAKEFAKE",
        aws_secret_access_key="fake-secret",
    )
    name = "rlm-test-damage"
    client.create_bucket(Bucket=name)
    return SimpleNamespace(client=client, name=name), f"p-{secrets.token_hex(4)}"


def fill(disk: Path) -> Path:
    """Take every free byte of ``disk`` with one file (again, if the server freed some); delete it to free them."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for size in (1 << 16, 512, 1):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
    finally:
        os.close(fd)
    return filler


def snapshot(directory: Path) -> dict[str, bytes]:
    """Every file under ``directory`` but leases (rewritten as they are renewed) and their content."""
    return {
        str(path.relative_to(directory)): path.read_bytes()
        for path in sorted(directory.rglob("*"))
        if path.is_file() and not path.name.endswith(".lease")
    }


def unharmed(before: dict[str, bytes], after: dict[str, bytes]) -> list[str]:
    """Files of ``before`` that are gone or changed in ``after``; a log may only have grown by whole records."""
    harmed = []
    for name, content in before.items():
        now = after.get(name)
        if name.endswith(".jsonl"):
            ok = now is not None and now.startswith(content) and now.endswith(b"\n")
        else:
            ok = now == content
        if not ok:
            harmed.append(name)
    return harmed


async def test_a_full_disk_is_reported_damages_nothing_and_the_server_recovers(
    small_disk: Path, tmp_path: Path, fake: ConverseFake
) -> None:
    data = small_disk / "data"
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("a local corpus\n")
    env = server_env(data, tmp_path, fake.url, RLM_SESSION_EVICT_IDLE_S="0")
    release = threading.Event()
    server = HttpServer(env)
    try:
        async with connect("http", env, server) as client:
            # Before the disk fills: a session with a step, and a finished run.
            sid = (await call(client, "load_context", content="the corpus " * 20))["session_id"]
            first = await call(client, "repl_exec", session_id=sid, code="x = 1\nprint('before')")
            assert first["stdout"] == "before\n"
            fake.respond = scripted(ROOT_MODEL, [Reply(text="an early answer")])
            early = await call(client, "rlm_query", session_id=sid, query="early?")
            assert early["status"] == "completed"
            before = snapshot(data)

            # A run is mid-step when the disk fills: the step it finishes cannot be written.
            fake.respond = scripted(
                ROOT_MODEL,
                [code("print('step one')"), code("print(len(llm_query('HOLD now')))\nprint('z' * 9000)"), Reply("no")],
                sub=holding("HOLD", release),
            )
            run = await call(client, "rlm_query", session_id=sid, query="late?", wait=False)
            with anyio.fail_after(60):
                while not any("HOLD" in r.last_user_text for r in fake.requests):
                    await anyio.sleep(0.05)
            filler = fill(small_disk)
            release.set()
            with anyio.fail_after(60):
                while (view := await call(client, "get_trajectory", trajectory_id=run["trajectory_id"]))[
                    "status"
                ] == "running":
                    await anyio.sleep(0.1)
            view = await call(client, "get_trajectory", trajectory_id=run["trajectory_id"], detail="full")
            assert view["status"] == "failed"
            assert view["message"].startswith("the run stopped because its trajectory could not be written")
            assert "is full" in view["message"] and "RLM_DATA_DIR" in view["message"], view["message"]
            assert [s["stdout"] for s in view["steps"]] == ["step one\n", STEP_TWO]

            # While it is full: every write fails with the cause and the setting, nothing else.
            for arguments, what in (
                ({"content": "new text " * 1000}, "storing the inline content"),
                ({"path": str(corpus)}, "could not start a trajectory for this session"),
            ):
                fill(small_disk)
                error = await call_error(client, "load_context", **arguments)
                assert what in error and "is full" in error and "RLM_DATA_DIR" in error, error
                assert "Error executing tool" not in error.split(":", 1)[1], error
            fill(small_disk)
            error = await call_error(client, "rlm_query", session_id=sid, query="now?")
            assert "could not start a trajectory for this run" in error and "is full" in error, error
            fill(small_disk)
            ran = await call(client, "repl_exec", session_id=sid, code="x += 1\nprint('during', x)\nprint('w' * 9000)")
            assert ran["stdout"] == DURING
            assert any("not in the trajectory yet" in n and "is full" in n for n in ran["notes"]), ran["notes"]
            # Nothing that existed was damaged: every file is still there, logs grew by whole records only.
            after = snapshot(data)
            assert not unharmed(before, after), unharmed(before, after)
            assert not [name for name in after if ".incoming-" in name]
            for name, content in after.items():
                if name.endswith(".jsonl"):
                    for line in content.splitlines():
                        json.loads(line)
            early_view = await call(client, "get_trajectory", trajectory_id=early["trajectory_id"], detail="full")
            assert early_view["status"] == "completed" and not early_view["damaged"]

            # Space comes back: the server carries on by itself, and what waited in memory is written.
            filler.unlink()
            again = await call(client, "load_context", content="after the disk was freed")
            fake.respond = scripted(ROOT_MODEL, [Reply(text="fine again")])
            assert (await call(client, "rlm_query", session_id=again["session_id"], query="ok?"))["answer"] == (
                "fine again"
            )
            log = data / "trajectories" / f"{run['trajectory_id']}.jsonl"
            with anyio.fail_after(60):  # the records that waited in memory reach the disk
                while '"status": "failed"' not in log.read_text():
                    await anyio.sleep(0.1)
    finally:
        release.set()
        server.stop()

    # A new server reads the same data: the failed run with its steps, the session with every step.
    second = HttpServer(env)
    try:
        async with connect("http", env, second) as client:
            view = await call(client, "get_trajectory", trajectory_id=run["trajectory_id"], detail="full")
            assert view["status"] == "failed" and "is full" in view["message"] and not view["damaged"]
            assert [s["stdout"] for s in view["steps"]] == ["step one\n", STEP_TWO]
            mine = await call(client, "get_trajectory", trajectory_id=session_trajectory_id(data, sid), detail="full")
            assert [s["stdout"] for s in mine["steps"]] == ["before\n", DURING] and not mine["damaged"]
            revived = await call(client, "repl_exec", session_id=sid, code="context[:10]")
            assert revived["stdout"] == "'the corpus'\n"
    finally:
        second.stop()


def session_trajectory_id(data: Path, session_id: str) -> str:
    return json.loads((data / "sessions" / f"{session_id}.json").read_text())["trajectory_id"]


async def test_a_read_only_data_directory_is_reported_with_the_setting(
    small_disk: Path, tmp_path: Path, fake: ConverseFake
) -> None:
    data = small_disk / "data"
    env = server_env(data, tmp_path, fake.url)
    server = HttpServer(env)
    try:
        async with connect("http", env, server) as client:
            sid = (await call(client, "load_context", content="writable for now"))["session_id"]
            subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
            try:
                error = await call_error(client, "load_context", content="something new")
                assert "read-only file system" in error and "RLM_DATA_DIR" in error, error
                assert (await call(client, "repl_exec", session_id=sid, code="context"))["stdout"] == (
                    "'writable for now'\n"
                )
            finally:
                subprocess.run(["mount", "-o", "remount,rw", str(small_disk)], check=True)
            assert (await call(client, "load_context", content="something new"))["chars"] == 13
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("code_", "words"),
    [
        (errno.ENOSPC, ["the disk holding /d is full", "ENOSPC", "set RLM_DATA_DIR", "recovers by itself"]),
        (errno.EDQUOT, ["disk quota", "EDQUOT", "set RLM_DATA_DIR"]),
        (errno.EROFS, ["read-only file system", "EROFS", "set RLM_DATA_DIR"]),
        (errno.EACCES, ["may not write to /d", "EACCES", "set RLM_DATA_DIR"]),
        (errno.EIO, ["input/output error", "EIO"]),
    ],
)
def test_each_storage_error_says_what_to_do(code_: int, words: list[str]) -> None:
    text = describe_os_error(OSError(code_, os.strerror(code_)), "/d", "RLM_DATA_DIR")
    for word in words:
        assert word in text, text


# -- damaged records --------------------------------------------------------------------------------------


def replace_line(path: Path, containing: str, with_: bytes) -> int:
    """Put ``with_`` in place of the line of ``path`` that contains ``containing``; returns its number."""
    lines = path.read_bytes().split(b"\n")
    number = next(i for i, line in enumerate(lines) if containing.encode() in line)
    lines[number] = with_
    path.write_bytes(b"\n".join(lines))
    return number + 1


async def test_damaged_records_are_reported_where_they_are_and_hide_nothing_else(
    tmp_path: Path, fake: ConverseFake
) -> None:
    data = tmp_path / "data"
    env = server_env(data, tmp_path, fake.url)
    fake.respond = scripted(ROOT_MODEL, [code("print('run one')"), code("print('run two')"), Reply(text="ran")])
    async with connect("stdio", env) as client:
        good = (await call(client, "load_context", content="good corpus"))["session_id"]
        for word in ("one", "two", "three"):
            await call(client, "repl_exec", session_id=good, code=f"print('{word}')")
        run = await call(client, "rlm_query", session_id=good, query="?")
        garbled = (await call(client, "load_context", content="garbled record"))["session_id"]
        emptied = (await call(client, "load_context", content="empty record"))["session_id"]
        other = (await call(client, "load_context", content="untouched"))["session_id"]
        await call(client, "repl_exec", session_id=other, code="print('other')")
    trajectories, sessions = data / "trajectories", data / "sessions"
    mine = json.loads((sessions / f"{good}.json").read_text())["trajectory_id"]
    line = replace_line(trajectories / f"{mine}.jsonl", "print('two')", b'{"event": "step", "step": {"index": 1, "co')
    run_log = trajectories / f"{run['trajectory_id']}.jsonl"
    run_line = replace_line(run_log, "run one", b"{}")
    end_line = replace_line(run_log, '"event": "update"', b'{"event": "update", "fields": {"status": "no such"}}')
    (sessions / f"{garbled}.json").write_bytes(b'{"id": "' + garbled.encode() + b'", "traj\xff')
    (sessions / f"{emptied}.json").write_text("{}")

    async with connect("stdio", env) as client:
        view = await call(client, "get_trajectory", trajectory_id=mine, detail="full")
        assert [s["stdout"] for s in view["steps"]] == ["one\n", "", "three\n"]
        gap = view["steps"][1]["error"]
        assert gap["type"] == "DamagedRecord" and f"line {line} of {trajectories / mine}.jsonl" in gap["message"]
        (damage,) = view["damaged"]
        assert damage["where"] == f"line {line} of <store>/trajectories/{mine}.jsonl" and damage["after_step"] == 0
        assert "not valid JSON" in damage["problem"]

        ran = await call(client, "get_trajectory", trajectory_id=run["trajectory_id"], detail="full")
        assert [s["stdout"] for s in ran["steps"]] == ["", "run two\n", ""] and ran["steps"][2]["final"] == "ran"
        assert ran["steps"][0]["error"]["type"] == "DamagedRecord"
        assert [d["where"].split(" of ")[0] for d in ran["damaged"]] == [f"line {run_line}", f"line {end_line}"]
        assert "a record with no event" in ran["damaged"][0]["problem"]
        assert "status: Input should be" in ran["damaged"][1]["problem"]
        assert ran["status"] == "interrupted" and "this run's end could not be read (see damaged)" in ran["message"]

        missing = "required fields are missing: id, trajectory_id, created_at"
        for sid, problem in ((garbled, "not valid"), (emptied, missing)):
            error = await call_error(client, "repl_exec", session_id=sid, code="1")
            assert f"the record of session '{sid}' (<store>/sessions/{sid}.json) is damaged" in error, error
            assert problem in error and "load_context" in error and "never existed" not in error, error

        # The rest reads as before: the damaged session's neighbours, and new steps after the gap.
        assert (await call(client, "repl_exec", session_id=other, code="context"))["stdout"] == "'untouched'\n"
        assert (await call(client, "repl_exec", session_id=good, code="print('four')"))["stdout"] == "four\n"
        view = await call(client, "get_trajectory", trajectory_id=mine, detail="full")
        assert [s["stdout"] for s in view["steps"]] == ["one\n", "", "three\n", "four\n"]

    listed = subprocess.run(
        [sys.executable, "-m", "rlm_mcp", "sessions"], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert f"{garbled}" in listed and f"{emptied}" in listed and listed.count("DAMAGED") == 2, listed
    assert other in listed and good in listed
    shown = subprocess.run(
        [sys.executable, "-m", "rlm_mcp", "trajectory", mine], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert f"DAMAGED: line {line} of" in shown and "print('three')" in shown


async def test_a_damaged_record_in_the_s3_store_hides_nothing_else(s3_client: object) -> None:
    bucket, prefix = s3_client
    store = TrajectoryStore(S3Store(bucket.client, bucket.name, prefix).sub("trajectories"))
    run = await store.create(kind="run", session_id="s_" + "a" * 16, status="running", query="q")
    for i in range(3):
        await store.add_step(run.id, Step(index=i, started_at=1.0, elapsed_ms=1.0, stdout=f"{i}\n"))
    await store.update(run.id, status="completed", answer="done")
    key = f"{prefix}/trajectories/{run.id}.log/0000000002.json"  # the second step
    bucket.client.put_object(Bucket=bucket.name, Key=key, Body=b"\x00garbage")
    seen = await TrajectoryStore(S3Store(bucket.client, bucket.name, prefix).sub("trajectories")).read(run.id)
    assert [s.stdout for s in seen.steps] == ["0\n", "", "2\n"] and seen.status == "completed"
    assert [d.where for d in seen.damaged] == [f"s3://{bucket.name}/{key}"]
    assert seen.steps[1].error is not None and seen.steps[1].error.type == "DamagedRecord"


async def test_a_failing_s3_store_is_reported_with_the_setting_and_recovers(
    s3_client: tuple[SimpleNamespace, str], moto_s3: str, tmp_path: Path, fake: ConverseFake
) -> None:
    bucket, prefix = s3_client
    name = f"rlm-vanishing-{secrets.token_hex(3)}"
    bucket.client.create_bucket(Bucket=name)
    store = {"RLM_STORE": f"s3://{name}/{prefix}", "AWS_ENDPOINT_URL_S3": moto_s3}
    env = server_env(tmp_path / "data", tmp_path, fake.url, **store)
    fake.respond = scripted(ROOT_MODEL, [Reply(text="fine")])
    server = HttpServer(env)
    try:
        async with connect("http", env, server) as client:
            sid = (await call(client, "load_context", content="kept in S3"))["session_id"]
            # The bucket goes away (deleted, or the role lost its rights): every write says so, and names RLM_STORE.
            for item in bucket.client.list_objects_v2(Bucket=name).get("Contents", []):
                bucket.client.delete_object(Bucket=name, Key=item["Key"])
            bucket.client.delete_bucket(Bucket=name)
            error = await call_error(client, "load_context", content="new text for the store")
            assert "RLM_STORE" in error and "NoSuchBucket" in error, error
            error = await call_error(client, "rlm_query", session_id=sid, query="?")
            assert "could not start a trajectory for this run" in error and "RLM_STORE" in error, error
            ran = await call(client, "repl_exec", session_id=sid, code="context")
            assert ran["stdout"] == "'kept in S3'\n"
            assert any("not in the trajectory yet" in n and "RLM_STORE" in n for n in ran["notes"]), ran["notes"]
            # It comes back: the server carries on without a restart.
            bucket.client.create_bucket(Bucket=name)
            assert (await call(client, "load_context", content="new text for the store"))["chars"] == 22
            assert (await call(client, "rlm_query", session_id=sid, query="?"))["answer"] == "fine"
    finally:
        server.stop()
