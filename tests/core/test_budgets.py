"""Budgets in tokens and dollars: checked before anything is sent, refused whole, visible to the client's model.

A sub-call's worst case is its prompt at 4 characters per token plus the full
output limit (RLM_SUB_MAX_TOKENS, 4,096 here); a root turn's is the whole
conversation plus RLM_ROOT_MAX_TOKENS (8,192).
"""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import pytest
from conftest import ROOT_MODEL, SUB_MODEL, HttpServer, connect, server_env
from helpers import call, call_error

from rlm_mcp.testing.bedrock import ConverseRequest, Reply, code, scripted

pytestmark = pytest.mark.anyio
PRICES = {ROOT_MODEL: [3.0, 15.0], SUB_MODEL: [1.0, 5.0]}


def small(request: ConverseRequest) -> Reply:
    return Reply(text="ok", input_tokens=10, output_tokens=2)


async def test_a_token_budget_refuses_a_batch_whole_and_says_what_is_left(client, fake) -> None:
    fake.respond = scripted(ROOT_MODEL, [
        code("try:\n    llm_query_batched(['x'] * 5)\nexcept SubcallBudgetExceeded as e:\n    print(e)",
             input_tokens=100, output_tokens=10),
        code("one = llm_query('x')\nFINAL(one)", input_tokens=100, output_tokens=10),
    ], sub=small)  # fmt: skip
    sid = (await call(client, "load_context", content="abc"))["session_id"]
    out = await call(client, "rlm_query", session_id=sid, query="?", max_tokens=20_000)
    assert (out["status"], out["answer"]) == ("completed", "ok")
    assert len(fake.requests_for(SUB_MODEL)) == 1  # the batch of 5 (20,485 tokens at worst) never went out
    refusal = fake.requests_for(ROOT_MODEL)[1].tool_results[0]
    assert "cannot cover this batch of 5 sub-calls: it may use up to 20,485 tokens" in refusal
    assert "Left: 50 of 50 sub-calls, 19,890 of 20,000 tokens" in refusal
    budget = out["budget"]
    assert budget["tokens_used"] == 110 + 110 + 12 and budget["tokens_limit"] == 20_000
    assert budget["tokens_remaining"] == 20_000 - 232 and budget["sub_calls_used"] == 1


async def test_a_root_turn_the_budget_cannot_cover_is_never_sent(client, fake) -> None:
    sid = (await call(client, "load_context", content="abc"))["session_id"]
    out = await call(client, "rlm_query", session_id=sid, query="?", max_tokens=5_000)
    assert out["status"] == "limit_reached" and out["iterations"] == 0
    assert "cannot cover another root turn" in out["message"] and "5,000 of 5,000 tokens" in out["message"]
    assert fake.requests_for(ROOT_MODEL) == []


@pytest.fixture(scope="module")
def priced_env(tmp_path_factory: pytest.TempPathFactory, corpus_dir: Path, fake) -> dict[str, str]:
    prices = tmp_path_factory.mktemp("prices") / "prices.json"
    prices.write_text(json.dumps(PRICES))
    data = tmp_path_factory.mktemp("data")
    return server_env(data, corpus_dir, fake.url, RLM_PRICES_FILE=str(prices), RLM_MAX_COST_USD="0.05")


@pytest.fixture(scope="module")
def priced_server(priced_env: dict[str, str]) -> Iterator[HttpServer]:
    server = HttpServer(priced_env)
    yield server
    server.stop()


@pytest.fixture
async def priced(transport: str, priced_env: dict[str, str], request: pytest.FixtureRequest) -> AsyncIterator:
    http = request.getfixturevalue("priced_server") if transport == "http" else None
    async with connect(transport, priced_env, http) as connected:
        yield connected


async def test_a_dollar_budget_per_run_and_per_session(priced, fake) -> None:
    fake.respond = scripted(ROOT_MODEL, [
        code("try:\n    llm_query_batched(['x'] * 10)\nexcept SubcallBudgetExceeded as e:\n    print(e)",
             input_tokens=1000, output_tokens=100),
        code("two = llm_query_batched(['x'] * 2)\nFINAL(len(two))", input_tokens=1000, output_tokens=100),
    ], sub=small)  # fmt: skip
    sid = (await call(priced, "load_context", content="abc"))["session_id"]
    out = await call(priced, "rlm_query", session_id=sid, query="?", max_cost_usd=0.2)
    assert (out["status"], out["answer"]) == ("completed", "2")
    refusal = fake.requests_for(ROOT_MODEL)[1].tool_results[0]
    # 10 x 4,097 tokens at most: $0.2048 with 1 $/M in and 5 $/M out; $0.0045 went on the first root turn.
    assert "cannot cover this batch of 10 sub-calls: it may use up to $0.2048" in refusal
    assert "$0.1955 of $0.2000" in refusal
    spent = 2 * (1000 * 3 + 100 * 15) / 1e6 + 2 * (10 * 1 + 2 * 5) / 1e6
    assert out["cost_usd"] == pytest.approx(spent)
    assert out["budget"]["cost_usd_spent"] == pytest.approx(spent)
    assert out["budget"]["cost_usd_remaining"] == pytest.approx(0.2 - spent)

    # repl_exec sessions: RLM_MAX_COST_USD=0.05 each; 3 sub-calls of 4,097 tokens are $0.061 at worst.
    sid = (await call(priced, "load_context", content="abc"))["session_id"]
    refused = await call(priced, "repl_exec", session_id=sid, code="llm_query_batched(['y'] * 3)")
    assert refused["error"]["type"] == "SubcallBudgetExceeded" and "$0.0500 of $0.0500" in refused["error"]["message"]
    await call(priced, "repl_exec", session_id=sid, code="llm_query_batched(['y'] * 2)")
    budget = await call(priced, "get_budget", session_id=sid)
    assert budget["session"]["cost_usd_spent"] == pytest.approx(2 * 20 / 1e6) and budget["run"] is None
    assert budget["session"]["cost_usd_limit"] == 0.05 and budget["session"]["sub_calls_used"] == 2


async def test_a_dollar_budget_needs_prices(priced, fake) -> None:
    sid = (await call(priced, "load_context", content="abc"))["session_id"]
    error = await call_error(priced, "rlm_query", session_id=sid, query="?", sub_model="fake.unpriced-v1")
    assert "max_cost_usd needs a price" in error and "'fake.unpriced-v1'" in error and "RLM_PRICES_FILE" in error
    assert fake.requests_for(ROOT_MODEL) == []


async def test_unpriced_sub_calls_are_refused_under_a_session_dollar_budget(tmp_path: Path, fake) -> None:
    env = server_env(tmp_path / "data", tmp_path, fake.url, RLM_MAX_COST_USD="1")
    async with connect("stdio", env) as client:
        sid = (await call(client, "load_context", content="abc"))["session_id"]
        out = await call(client, "repl_exec", session_id=sid, code="llm_query('x')")
    assert out["error"]["type"] == "LLMError" and "has no price in the price table" in out["error"]["message"]
    assert fake.requests_for(SUB_MODEL) == []


async def test_get_budget_and_list_sessions_show_what_is_left(client, fake) -> None:
    release = threading.Event()

    def root(request: ConverseRequest) -> Reply:
        if any(m["role"] == "assistant" for m in request.messages):
            release.wait(60)
            return code("FINAL('done')")
        return code("a = llm_query_batched(['p', 'q', 'r'])")

    fake.respond = scripted(ROOT_MODEL, [root], sub=small)
    sid = (await call(client, "load_context", content="abc"))["session_id"]
    await call(client, "repl_exec", session_id=sid, code="llm_query('x')")
    listed = next(s for s in (await call(client, "list_sessions"))["sessions"] if s["session_id"] == sid)
    assert listed["budget"]["sub_calls_used"] == 1 and listed["budget"]["tokens_used"] == 12
    assert listed["budget"]["sub_calls_remaining"] == 49 and listed["budget"]["tokens_limit"] is None

    started = await call(client, "rlm_query", session_id=sid, query="?", wait=False, max_sub_calls=7)
    try:
        with anyio.fail_after(300):
            while len(fake.requests_for(ROOT_MODEL)) < 2:
                await anyio.sleep(0.05)
        budget = await call(client, "get_budget", session_id=sid)
        assert budget["run_id"] == started["trajectory_id"]
        assert (budget["run"]["sub_calls_used"], budget["run"]["sub_calls_remaining"]) == (3, 4)
        assert budget["session"]["sub_calls_used"] == 1  # the run spends its own budget, not the session's
    finally:
        release.set()
    assert "no session" in await call_error(client, "get_budget", session_id="s_noSuchSession1")
