"""The store: both backends behave alike, and two server processes share one S3 store (moto on loopback)."""

from __future__ import annotations

import hashlib
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import boto3
import pytest
from conftest import ROOT_MODEL, HttpServer, server_env
from helpers import call, call_error, holding
from mcp import Client

from rlm_mcp.core.trajectories import TrajectoryStore
from rlm_mcp.errors import RLMError
from rlm_mcp.schemas import Step
from rlm_mcp.store import KeyNotFound, LocalStore, S3Store, Store
from rlm_mcp.testing.bedrock import code, scripted

BUCKET = "rlm-test-store"
LEASE_S = 5.0
"""Long enough that a lease just renewed is alive when read, however loaded the machine; short enough to wait out."""


@pytest.fixture(scope="module")
def s3(moto_s3: str) -> Iterator[object]:
    client = boto3.client(
        "s3",
        endpoint_url=moto_s3,
        region_name="us-east-1",
        aws_access_key_id="AKIAFAKEFAKEFAKE",
        aws_secret_access_key="fake-secret",
    )
    client.create_bucket(Bucket=BUCKET)
    yield client


def s3_env(moto_s3: str, prefix: str) -> dict[str, str]:
    return {"RLM_STORE": f"s3://{BUCKET}/{prefix}", "AWS_ENDPOINT_URL_S3": moto_s3}


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "local":
        return LocalStore(tmp_path / "store")
    client = request.getfixturevalue("s3")
    return S3Store(client, BUCKET, f"unit-{secrets.token_hex(4)}")


# -- the interface, on both backends ------------------------------------------------------------


def test_a_missing_key_is_an_rlm_error_that_callers_catching_key_error_still_see(store: Store) -> None:
    with pytest.raises(KeyError) as caught:
        store.read("sessions/s_missing.json")
    assert isinstance(caught.value, KeyNotFound) and isinstance(caught.value, RLMError)
    assert "sessions/s_missing.json" in str(caught.value)


def test_objects_round_trip(store: Store, tmp_path: Path) -> None:
    store.check()
    with pytest.raises(KeyNotFound):
        store.read("sessions/s_missing.json")
    assert not store.exists("sessions/s_1.json")
    store.write("sessions/s_1.json", b'{"a": 1}')
    store.write("sessions/s_1.json", b'{"a": 2}')  # replaced whole
    store.sub("sessions").write("s_2.json", b"{}")
    assert store.read("sessions/s_1.json") == b'{"a": 2}'
    assert store.sub("sessions").read("s_1.json") == b'{"a": 2}'
    assert [e.key for e in store.list("sessions/")] == ["sessions/s_1.json", "sessions/s_2.json"]
    assert [e.key for e in store.sub("sessions").list()] == ["s_1.json", "s_2.json"]
    assert store.list("sessions/")[0].size == 8 and store.list()[0].modified > time.time() - 600
    store.delete("sessions/s_1.json")
    store.delete("sessions/s_1.json")  # a missing key is fine
    assert not store.exists("sessions/s_1.json")

    big = tmp_path / "big.txt"
    big.write_bytes(os.urandom(3 * 1024 * 1024))
    store.upload("corpora/big.txt", big)
    target = tmp_path / "fetched" / "big.txt"
    store.download("corpora/big.txt", target)
    assert target.read_bytes() == big.read_bytes()
    with pytest.raises(KeyNotFound):
        store.download("corpora/none.txt", tmp_path / "none.txt")
    assert not (tmp_path / "none.txt").exists()
    with pytest.raises(ValueError):
        store.read("../escape")


def test_logs_keep_order_and_every_record(store: Store) -> None:
    logs = store.sub("trajectories")
    with pytest.raises(KeyNotFound):
        logs.read_log("t_nothing")
    for i in range(12):
        logs.append("t_abc", f'{{"n": {i}}}'.encode())
    assert [r.data for r in logs.read_log("t_abc")] == [f'{{"n": {i}}}'.encode() for i in range(12)]
    assert [e.key for e in logs.list()] == []  # records are not objects of their own
    # A second writer (another replica) adds to the same log: nothing is overwritten.
    other = LocalStore(store.root).sub("trajectories") if isinstance(store, LocalStore) else None
    if isinstance(store, S3Store):
        other = S3Store(store.client, store.bucket, store.prefix).sub("trajectories")
    assert other is not None
    other.append("t_abc", b'{"n": 12}')
    logs.append("t_abc", b'{"n": 13}')
    assert [int(r.data.decode().split()[-1].rstrip("}")) for r in logs.read_log("t_abc")] == list(range(14))


def test_local_log_survives_a_torn_record(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.append("t_x", b'{"n": 0}')
    with (tmp_path / "t_x.jsonl").open("ab") as f:
        f.write(b'{"n": 1, "tor')  # a crash mid-write
    store.append("t_x", b'{"n": 2}')  # the next record starts on a line of its own
    assert [r.data for r in store.read_log("t_x")] == [b'{"n": 0}', b'{"n": 1, "tor', b'{"n": 2}']
    assert store.read_log("t_x")[1].where == f"line 2 of {tmp_path / 't_x.jsonl'}"
    assert (tmp_path / "t_x.jsonl").read_text().splitlines()[-1] == '{"n": 2}'


def test_s3_store_errors_say_what_to_fix(s3: object) -> None:
    missing = S3Store(s3, "no-such-bucket-here", "x")
    with pytest.raises(Exception, match="does not exist"):
        missing.check()


# -- trajectories shared by replicas --------------------------------------------------------------


def _step(i: int) -> Step:
    return Step(index=i, turn=i, started_at=time.time(), elapsed_ms=1.0, code=f"x = {i}", stdout=f"{i}\n")


@pytest.mark.anyio
async def test_a_run_on_one_replica_reads_the_same_on_another(s3: object) -> None:
    prefix = f"traj-{secrets.token_hex(4)}"
    writer = TrajectoryStore(S3Store(s3, BUCKET, prefix).sub("trajectories"), lease_s=LEASE_S)
    reader = TrajectoryStore(S3Store(s3, BUCKET, prefix).sub("trajectories"), lease_s=LEASE_S)
    run = await writer.create(kind="run", session_id="s_" + "a" * 16, status="running", query="q", corpus_chars=1000)
    for i in range(3):
        await writer.add_step(run.id, _step(i))

    await writer.renew_leases()  # as the server does every lease_s / 3
    seen = await reader.get(run.id)
    assert seen.status == "running"  # the writer's lease is alive: not mistaken for a crash
    assert [s.stdout for s in seen.steps] == ["0\n", "1\n", "2\n"] and seen.query == "q"

    # The writer dies without finishing (no more renewals): once its lease lapses, readers say so.
    with anyio.fail_after(300):
        while (crashed := await reader.get(run.id)).status == "running":
            await anyio.sleep(0.2)
    assert crashed.status == "interrupted" and len(crashed.steps) == 3
    assert (await reader.get(run.id)).status == "interrupted"

    # A finished run reads the same everywhere, totals included.
    done = await writer.create(kind="run", session_id="s_" + "a" * 16, status="running", corpus_chars=1000)
    await writer.add_step(done.id, _step(0))
    await writer.update(done.id, status="completed", answer="42")
    final = await reader.get(done.id)
    assert (final.status, final.answer, final.iterations, final.corpus_chars) == ("completed", "42", 1, 1000)
    assert not s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{prefix}/trajectories/{done.id}.lease").get("KeyCount")


# -- two server processes, one S3 store -----------------------------------------------------------


def start_replica(tmp_path: Path, name: str, fake_url: str, moto_s3: str, prefix: str, **extra: str) -> HttpServer:
    env = server_env(tmp_path / name, tmp_path, fake_url, **s3_env(moto_s3, prefix), **extra)
    return HttpServer(env, "--stateless")


@pytest.fixture
def replicas(tmp_path: Path, fake, moto_s3: str, s3: object) -> Iterator[tuple[HttpServer, HttpServer, str]]:
    prefix = f"fleet-{secrets.token_hex(4)}"
    a = start_replica(tmp_path, "a", fake.url, moto_s3, prefix)
    b = start_replica(tmp_path, "b", fake.url, moto_s3, prefix)
    yield a, b, prefix
    a.stop()
    b.stop()


@pytest.mark.slow
@pytest.mark.anyio
async def test_two_replicas_share_trajectories_sessions_and_corpora(replicas, fake, s3, tmp_path: Path) -> None:
    a, b, prefix = replicas
    corpus = "".join(f"line {i} marker-{i % 7}\n" for i in range(2000))
    corpus_id = hashlib.sha256(corpus.encode()).hexdigest()
    fake.respond = scripted(ROOT_MODEL, [code("n = context.count('marker-3')\nFINAL(n)")])

    async with Client(a.url, read_timeout_seconds=120) as on_a:
        loaded = await call(on_a, "load_context", content=corpus, name="lines.txt")
        assert loaded["corpus_id"] == corpus_id
        sid, session_trajectory = loaded["session_id"], loaded["trajectory_id"]
        await call(on_a, "repl_exec", session_id=sid, code="x = 42\nprint(len(context))")
        run = await call(on_a, "rlm_query", session_id=sid, query="How many marker-3 lines?")
        assert run["status"] == "completed" and run["answer"] == str(corpus.count("marker-3"))

    async with Client(b.url, read_timeout_seconds=120) as on_b:
        # Trajectories written on A are readable on B, step by step.
        seen = await call(on_b, "get_trajectory", trajectory_id=run["trajectory_id"], detail="full")
        assert seen["status"] == "completed" and seen["answer"] == run["answer"]
        assert seen["steps"][0]["code"].startswith("n = context.count")
        assert seen["corpus_chars"] == len(corpus)
        session_steps = (await call(on_b, "get_trajectory", trajectory_id=session_trajectory))["steps"]
        assert [s["stdout"] for s in session_steps] == [f"{len(corpus)}\n"]

        # The corpus comes back by id, without being sent again; B fetches it into its own cache.
        assert not (tmp_path / "b" / "corpora" / f"{corpus_id}.txt").exists()
        again = await call(on_b, "load_context", corpus_id=corpus_id, name="lines.txt")
        assert again["session_id"] != sid and again["chars"] == len(corpus) and again["corpus_id"] == corpus_id
        out = await call(on_b, "repl_exec", session_id=again["session_id"], code="context == context[:0] + context")
        assert out["stdout"] == "True\n"
        assert (tmp_path / "b" / "corpora" / f"{corpus_id}.txt").read_text() == corpus

        # A session that lives on A can be picked up on B: corpus reloaded, variables gone, and it says so.
        revived = await call(on_b, "repl_exec", session_id=sid, code="print(context.count('marker-3'))\nx")
        assert revived["stdout"] == f"{corpus.count('marker-3')}\n"
        assert revived["error"]["type"] == "NameError"
        assert any("another replica" in note for note in revived["notes"])

        unknown = await call_error(on_b, "load_context", corpus_id="0" * 64)
        assert "no corpus" in unknown and "content=" in unknown
        assert "exactly one of" in await call_error(on_b, "load_context", corpus_id=corpus_id, content="x")

    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix + "/").get("Contents", [])]
    assert f"{prefix}/corpora/{corpus_id}.txt" in keys
    assert f"{prefix}/sessions/{sid}.json" in keys
    assert any(k.startswith(f"{prefix}/trajectories/{run['trajectory_id']}.log/") for k in keys)


@pytest.mark.slow
@pytest.mark.anyio
async def test_a_replica_killed_mid_run_keeps_every_finished_step(replicas, fake) -> None:
    a, b, _ = replicas
    hold = threading.Event()
    fake.respond = scripted(
        ROOT_MODEL,
        [code("print('step one')"), code("print('step two')"), code("llm_query('HOLD')")],
        sub=holding("HOLD", hold),
    )
    try:
        async with Client(a.url, read_timeout_seconds=120) as on_a:
            sid = (await call(on_a, "load_context", content="a corpus"))["session_id"]
            started = await call(on_a, "rlm_query", session_id=sid, query="q", wait=False)
            deadline = time.monotonic() + 300  # only a hang guard: the request reaching the fake is the sign
            while not any("HOLD" in r.last_user_text for r in fake.requests) and time.monotonic() < deadline:
                await anyio.sleep(0.1)
        os.kill(a.process.pid, signal.SIGKILL)  # no goodbye: the process is just gone
        a.process.wait(10)
        async with Client(b.url, read_timeout_seconds=120) as on_b:
            seen = await call(on_b, "get_trajectory", trajectory_id=started["trajectory_id"], detail="full")
        assert [s["stdout"] for s in seen["steps"]] == ["step one\n", "step two\n"]
        # A's lease has not expired, but its owner is a dead process on this machine: B can tell at once.
        # (A replica on another machine waits for the lease to lapse: see the lease test above.)
        assert seen["status"] == "interrupted"
    finally:
        hold.set()


def test_a_store_that_cannot_be_used_stops_the_server_with_the_reason(tmp_path: Path, fake, moto_s3: str) -> None:
    env = server_env(
        tmp_path, tmp_path, fake.url, RLM_STORE="s3://no-such-bucket-anywhere/rlm", AWS_ENDPOINT_URL_S3=moto_s3
    )
    done = subprocess.run([sys.executable, "-m", "rlm_mcp"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and done.stdout == ""
    assert (
        "RLM_STORE s3://no-such-bucket-anywhere/rlm/: the bucket 'no-such-bucket-anywhere' does not exist"
        in done.stderr
    )
    assert "Traceback" not in done.stderr

    bad = server_env(tmp_path, tmp_path, fake.url, RLM_STORE="/var/data")
    done = subprocess.run([sys.executable, "-m", "rlm_mcp"], env=bad, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "--store / RLM_STORE: give s3://bucket/prefix" in done.stderr
