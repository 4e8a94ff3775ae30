"""The sub-call cache: a repeated analysis pays only for what is new, and nobody sees another's answers.

The fake counts what it is sent: a hit is a request that never reaches it.
"""

from __future__ import annotations

import itertools
import json
import os
import secrets
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx2
import pytest
from conftest import ROOT_MODEL, SUB_MODEL, HttpServer, connect, server_env
from helpers import bearer_client, call

from rlm_mcp.core.subcalls.cache import Answer, Occurrences, Request, SubcallCache
from rlm_mcp.store import LocalStore
from rlm_mcp.testing.bedrock import ConverseRequest, Reply, code, scripted

pytestmark = pytest.mark.anyio
PRICES = {ROOT_MODEL: [3.0, 15.0], SUB_MODEL: [1.0, 5.0]}
MAP = """
tag = context.split()[0]
chunks = [context[i:i + 40] for i in range(0, len(context), 40)]
answers = llm_query_batched([tag + ' Count the vowels:\\n' + c for c in chunks])
first = llm_query(tag + ' Summarise:\\n' + chunks[0])
FINAL(sum(int(a) for a in answers))
"""


def vowels(request: ConverseRequest) -> Reply:
    text = request.last_user_text.split("\n", 1)[-1]
    return Reply(text=str(sum(text.count(v) for v in "aeiou")), input_tokens=40, output_tokens=2)


@pytest.fixture(scope="module")
def cache_env(tmp_path_factory: pytest.TempPathFactory, corpus_dir: Path, fake) -> dict[str, str]:
    prices = tmp_path_factory.mktemp("prices") / "prices.json"
    prices.write_text(json.dumps(PRICES))
    data = tmp_path_factory.mktemp("data")
    return server_env(data, corpus_dir, fake.url, RLM_SUBCALL_CACHE="on", RLM_PRICES_FILE=str(prices))


@pytest.fixture(scope="module")
def cache_server(cache_env: dict[str, str]) -> Iterator[HttpServer]:
    server = HttpServer(cache_env)
    yield server
    server.stop()


@pytest.fixture
async def cached(transport: str, cache_env: dict[str, str], request: pytest.FixtureRequest) -> AsyncIterator:
    http = request.getfixturevalue("cache_server") if transport == "http" else None
    async with connect(transport, cache_env, http) as connected:
        yield connected


async def test_a_second_identical_run_sends_no_sub_calls(cached, fake, transport: str) -> None:
    corpus = f"{secrets.token_hex(8)} " + "the quick brown fox jumps over a lazy dog " * 8
    fake.respond = scripted(ROOT_MODEL, [code(MAP, input_tokens=100, output_tokens=10)], sub=vowels)
    sid = (await call(cached, "load_context", content=corpus))["session_id"]
    first = await call(cached, "rlm_query", session_id=sid, query="How many vowels?")
    sent = len(fake.requests_for(SUB_MODEL))
    assert first["status"] == "completed" and first["sub_calls"] == sent == 10 and first["cached_sub_calls"] == 0
    assert first["cost_saved_usd"] == 0.0

    sid = (await call(cached, "load_context", content=corpus))["session_id"]  # another session, same analysis
    second = await call(cached, "rlm_query", session_id=sid, query="How many vowels?")
    assert len(fake.requests_for(SUB_MODEL)) == sent  # not one more request
    assert second["answer"] == first["answer"]
    assert (second["sub_calls"], second["cached_sub_calls"]) == (10, 10)
    assert second["usage"]["sub_input_tokens"] == second["usage"]["sub_output_tokens"] == 0
    root_cost = (100 * 3.0 + 10 * 15.0) / 1e6
    sub_cost = 10 * (40 * 1.0 + 2 * 5.0) / 1e6
    assert first["cost_usd"] == pytest.approx(root_cost + sub_cost)
    assert second["cost_usd"] == pytest.approx(root_cost) and second["cost_saved_usd"] == pytest.approx(sub_cost)
    assert second["budget"]["sub_calls_used"] == 0  # hits are charged to no budget

    trajectory = await call(cached, "get_trajectory", trajectory_id=second["trajectory_id"], detail="full")
    step = trajectory["steps"][0]
    assert step["cached_sub_calls"] == 10 and all(c["cached"] for c in step["sub_calls"])
    assert {c["input_tokens"] for c in step["sub_calls"]} == {40}  # what each answer cost when it was paid for
    assert trajectory["cached_sub_calls"] == 10 and trajectory["cost_saved_usd"] == pytest.approx(sub_cost)
    if transport == "http":
        page = httpx2.get(trajectory["viewer_url"], timeout=60).text
        assert '"cached":true' in page and '"cached_sub_calls":10' in page


async def test_repeats_are_separate_samples_and_cache_false_asks_again(cached, fake) -> None:
    counter = itertools.count()
    lock = threading.Lock()

    def sample(request: ConverseRequest) -> Reply:
        with lock:
            return Reply(text=f"sample {next(counter)}")

    fake.respond = scripted(ROOT_MODEL, [code("FINAL(1)")], sub=sample)
    nonce = secrets.token_hex(8)
    votes = f"v = llm_query_batched(['vote {nonce}'] * 3) + [llm_query('vote {nonce}'), llm_query('vote {nonce}')]\nv"
    sid = (await call(cached, "load_context", content="abc"))["session_id"]
    first = await call(cached, "repl_exec", session_id=sid, code=votes)
    assert len(fake.requests_for(SUB_MODEL)) == 5  # a repeat is another sample, never the first answer again
    assert len(set(eval(first["stdout"]))) == 5
    assert first["sub_calls"]["cached"] == 0

    sid = (await call(cached, "load_context", content="abc"))["session_id"]
    again = await call(cached, "repl_exec", session_id=sid, code=votes)
    assert again["stdout"] == first["stdout"] and again["sub_calls"]["cached"] == 5  # replayed, in order
    assert len(fake.requests_for(SUB_MODEL)) == 5

    fresh = f"[llm_query('vote {nonce}', cache=False), llm_query_batched(['vote {nonce}'], cache=False)[0]]"
    out = await call(cached, "repl_exec", session_id=sid, code=fresh)
    assert out["sub_calls"] == {"count": 2, "failed": 0, "cached": 0, "input_tokens": out["sub_calls"]["input_tokens"],
                                "output_tokens": out["sub_calls"]["output_tokens"]}  # fmt: skip
    assert len(fake.requests_for(SUB_MODEL)) == 7
    wrong = await call(cached, "repl_exec", session_id=sid, code="llm_query('x', cache='no')")
    assert wrong["error"]["type"] == "TypeError" and "cache must be True" in wrong["error"]["message"]


async def test_a_resumed_run_pays_only_for_what_is_new(cached, fake) -> None:
    corpus = f"{secrets.token_hex(8)} " + "abcdefghij" * 32
    chunked = "chunks = [context[i:i + 40] for i in range(0, len(context), 40)]\ntag = context.split()[0]\n"
    half = chunked + "part = llm_query_batched([tag + ' Count the vowels:\\n' + c for c in chunks[:4]])"
    whole = chunked + "allv = llm_query_batched([tag + ' Count the vowels:\\n' + c for c in chunks])\nFINAL(len(allv))"
    fake.respond = scripted(
        ROOT_MODEL, [code(half), Reply(text="out of turns"), code(whole)], sub=vowels
    )  # fmt: skip
    sid = (await call(cached, "load_context", content=corpus))["session_id"]
    stopped = await call(cached, "rlm_query", session_id=sid, query="?", max_iterations=1)
    assert stopped["status"] == "limit_reached" and len(fake.requests_for(SUB_MODEL)) == 4
    out = await call(cached, "rlm_query", resume=stopped["trajectory_id"], max_iterations=3)
    assert out["status"] == "completed" and out["answer"] == "9"
    assert (out["sub_calls"], out["cached_sub_calls"]) == (9, 4)
    assert len(fake.requests_for(SUB_MODEL)) == 9  # 4 before the stop, and only the 5 new ones after it


async def test_each_principal_has_its_own_cache_unless_it_is_shared(tmp_path: Path, fake, corpus_dir: Path) -> None:
    alice, bob = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    code_ = f"llm_query('what does the memo say? {secrets.token_hex(8)}')"
    for mode, bob_sends in (("on", 1), ("shared", 0)):
        env = server_env(tmp_path / mode, corpus_dir, fake.url, RLM_AUTH_TOKENS=f"alice:{alice},bob:{bob}",
                         RLM_SUBCALL_CACHE=mode)  # fmt: skip
        server = HttpServer(env)
        try:
            for name, token in (("alice", alice), ("bob", bob)):
                before = len(fake.requests_for(SUB_MODEL))
                async with bearer_client(server.url, token) as client:
                    sid = (await call(client, "load_context", content="abc"))["session_id"]
                    out = await call(client, "repl_exec", session_id=sid, code=code_)
                sent = len(fake.requests_for(SUB_MODEL)) - before
                assert sent == (1 if name == "alice" else bob_sends), (mode, name)
                assert out["sub_calls"]["cached"] == 1 - sent
        finally:
            server.stop()


def test_prune_keeps_the_cache_within_its_age_and_size(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "subcalls")
    cache = SubcallCache(store, mode="on", max_mb=1, max_age_days=1)
    request = Request(backend="bedrock", model="m", max_tokens=10)
    keys, counts = cache.keys("local", request, [f"p{i}" for i in range(6)], Occurrences())
    now = time.time()
    for age, key in enumerate(keys):
        store.write(key, json.dumps({"text": "x" * 400_000, "input_tokens": 1, "output_tokens": 1}).encode())
        stamp = now - age * 3600 * 10  # 0, 10, 20, 30, 40, 50 hours old
        os.utime(store.local_path(key), (stamp, stamp))
    planned = cache.prune(now, dry_run=True)
    assert len(store.list()) == 6  # a dry run only says what would go
    pruned = cache.prune(now)
    # Past a day: the three oldest go; of the rest, the newest that fit in 1 MB stay (two of 400 KB).
    assert {e.key for e in store.list()} == set(keys[:2])
    assert {e.key for e in pruned.removed} == {e.key for e in planned.removed} == set(keys[2:])
    assert (pruned.kept, pruned.failed) == (2, [])
    assert len(keys) == len(set(keys)) and sum(counts.values()) == 6


async def test_a_damaged_entry_is_a_miss(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "subcalls")
    cache = SubcallCache(store, mode="on", max_mb=1, max_age_days=0)
    keys, _ = cache.keys("local", Request(backend="bedrock", model="m", max_tokens=10), ["a", "b"], Occurrences())
    store.write(keys[0], b"{not json")
    await cache.put(keys[1], Answer("fine", 3, 4), "m")
    assert await cache.get_many(keys) == [None, Answer("fine", 3, 4)]
