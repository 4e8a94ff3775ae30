"""llm_query / llm_query_batched through the real boto3 Converse path, against the local fake."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from conftest import SUB_MODEL, connect, server_env
from helpers import call

from rlm_mcp.testing.bedrock import ConverseRequest, Fault, Reply, throttled

pytestmark = pytest.mark.anyio


async def test_batch_of_50_runs_concurrently_and_in_order(client, fake) -> None:
    arrived: list[str] = []
    second = threading.Event()
    lock = threading.Lock()

    def slow_echo(request: ConverseRequest) -> Reply:
        # The first answer waits for a second request to arrive: only calls made concurrently get past it at once.
        with lock:
            arrived.append(request.last_user_text)
            if len(arrived) >= 2:
                second.set()
        second.wait(60)
        return Reply(text=f"seen:{request.last_user_text}")

    fake.respond = slow_echo
    sid = (await call(client, "load_context", content="\n".join(f"item {i}" for i in range(50))))["session_id"]
    progress: list[tuple[float, float | None]] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append((done, total))

    result = await client.call_tool(
        "repl_exec",
        {"session_id": sid, "code": "outs = llm_query_batched(context.splitlines())\nprint(outs[0], outs[49])"},
        progress_callback=on_progress,
    )
    out = result.structured_content
    assert out["error"] is None, out["error"]
    assert out["stdout"] == "seen:item 0 seen:item 49\n"
    assert out["sub_calls"]["count"] == 50 and out["sub_calls"]["failed"] == 0
    assert out["sub_calls"]["input_tokens"] > 0
    sub_requests = fake.requests_for(SUB_MODEL)
    assert len(sub_requests) == 50
    assert 1 < fake.max_in_flight <= 8  # RLM_SUBCALL_CONCURRENCY defaults to 8
    assert progress and progress[-1] == (50, 50)


async def test_throttled_call_is_retried(client, fake) -> None:
    attempts = 0
    lock = threading.Lock()

    def throttle_once(request: ConverseRequest) -> Reply | Fault:
        nonlocal attempts
        with lock:
            attempts += 1
            first = attempts == 1
        return throttled() if first else Reply(text="finally")

    fake.respond = throttle_once
    sid = (await call(client, "load_context", content="x"))["session_id"]
    out = await call(client, "repl_exec", session_id=sid, code="print(llm_query('hello'))")
    assert out["error"] is None
    assert out["stdout"] == "finally\n"
    assert attempts == 2


async def test_failed_item_does_not_lose_the_others(client, fake) -> None:
    def reject_bad(request: ConverseRequest) -> Reply | Fault:
        if "BAD" in request.last_user_text:
            return Fault(400, "ValidationException", "Input is malformed")
        return Reply(text="ok:" + request.last_user_text)

    fake.respond = reject_bad
    sid = (await call(client, "load_context", content="x"))["session_id"]
    out = await call(
        client,
        "repl_exec",
        session_id=sid,
        code=(
            "try:\n"
            "    llm_query_batched(['a', 'BAD', 'c'])\n"
            "except LLMBatchError as e:\n"
            "    print(e.failed, e.results)\n"
            "    print(str(e).split(':')[0])\n"
            "try:\n"
            "    llm_query('BAD')\n"
            "except LLMError as e:\n"
            "    print('single:', 'Input is malformed' in str(e))"
        ),
    )
    assert out["error"] is None, out["error"]
    assert out["stdout"].splitlines() == [
        "[1] ['ok:a', None, 'ok:c']",
        "1 of 3 prompts failed (indices 1)",
        "single: True",
    ]
    assert out["sub_calls"] == {
        "count": 4,
        "failed": 2,
        "cached": 0,
        "input_tokens": out["sub_calls"]["input_tokens"],
        "output_tokens": out["sub_calls"]["output_tokens"],
    }


async def test_budget_stops_a_flood_with_a_catchable_error(client, fake) -> None:
    sid = (await call(client, "load_context", content="x"))["session_id"]
    out = await call(
        client,
        "repl_exec",
        session_id=sid,
        code=(
            "outs = llm_query_batched(['p'] * 45)\n"
            "try:\n"
            "    llm_query_batched(['q'] * 10)\n"
            "except SubcallBudgetExceeded as e:\n"
            "    print('refused:', e)\n"
            "n = 0\n"
            "while True:\n"
            "    try:\n"
            "        llm_query('more')\n"
            "        n += 1\n"
            "    except LLMError:\n"
            "        break\n"
            "print(n)"
        ),
    )
    assert out["error"] is None, out["error"]
    lines = out["stdout"].splitlines()
    assert lines[0].startswith("refused: the sub-call budget is used up: 45 of 50 made, 10 more requested")
    assert lines[1] == "5"
    assert len(fake.requests_for(SUB_MODEL)) == 50
    sessions = (await call(client, "list_sessions"))["sessions"]
    assert next(s for s in sessions if s["session_id"] == sid)["sub_calls_used"] == 50


async def test_trajectory_records_sub_calls(client, fake) -> None:
    loaded = await call(client, "load_context", content="abc")
    await call(client, "repl_exec", session_id=loaded["session_id"], code="llm_query_batched(['one', 'two'])")
    full = await call(client, "get_trajectory", trajectory_id=loaded["trajectory_id"], detail="full")
    calls = full["steps"][0]["sub_calls"]
    assert sorted(c["prompt_preview"] for c in calls) == ["one", "two"]
    assert {c["response_preview"] for c in calls} == {"ONE", "TWO"}
    assert all(c["model"] == SUB_MODEL and c["latency_ms"] > 0 and c["output_tokens"] > 0 for c in calls)
    summary = await call(client, "get_trajectory", trajectory_id=loaded["trajectory_id"])
    assert summary["detail"] == "summary" and summary["steps"][0]["sub_calls"] == []
    assert summary["sub_calls"] == 2 and summary["usage"]["sub_output_tokens"] > 0


@pytest.mark.parametrize(
    ("drop", "expected"),
    [
        (("RLM_SUB_MODEL",), "set RLM_SUB_MODEL"),
        (("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"), "no AWS credentials were found"),
        (("AWS_DEFAULT_REGION",), "no AWS region is configured"),
    ],
)
async def test_missing_configuration_says_what_to_set(tmp_path: Path, fake, drop, expected) -> None:
    env = server_env(
        tmp_path / "data",
        tmp_path / "docs",  # not the home directory below: that is too broad a root
        fake.url,
        HOME=str(tmp_path),
        AWS_CONFIG_FILE=str(tmp_path / "none"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
        AWS_EC2_METADATA_DISABLED="true",
    )
    for key in drop:
        env.pop(key)
    async with connect("stdio", env) as client:
        sid = (await call(client, "load_context", content="text"))["session_id"]
        out = await call(
            client,
            "repl_exec",
            session_id=sid,
            code=("try:\n    llm_query('hi')\nexcept LLMError as e:\n    print(e)\nprint(len(context))"),
        )
    assert out["error"] is None
    message, length = out["stdout"].splitlines()
    assert expected in message
    assert length == "4"  # everything else keeps working
    assert not fake.requests


async def test_code_can_only_pick_allowed_models(client, fake) -> None:
    sid = (await call(client, "load_context", content="x"))["session_id"]
    out = await call(client, "repl_exec", session_id=sid, code=(
        "try:\n"
        "    llm_query('hi', model='anthropic.claude-opus-4-5-20251101-v1:0')\n"
        "except LLMError as e:\n"
        "    print(e)\n"
        f"print(llm_query('hi', model={SUB_MODEL!r}))"
    ))  # fmt: skip
    refused, answered = out["stdout"].splitlines()
    assert "model 'anthropic.claude-opus-4-5-20251101-v1:0' is not allowed for sub-calls here" in refused
    assert "RLM_ALLOWED_MODELS" in refused and answered == "HI"
    assert [r.model_id for r in fake.requests] == [SUB_MODEL]  # nothing reached the other model
