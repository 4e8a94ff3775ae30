"""rlm_query end to end: a scripted root and an oracle sub-model, both behind the Converse fake."""

from __future__ import annotations

import itertools
import re
import threading

import anyio
import pytest
from conftest import ROOT_MODEL, SUB_MODEL
from helpers import call, call_error, holding, until_requested

from rlm_mcp.testing.bedrock import ConverseRequest, Fault, Reply, code, scripted, throttled

pytestmark = pytest.mark.anyio

LABELS = ["HUM", "LOC", "NUM", "DESC", "ENTY"]
CHUNK_LINES = 50


def question_corpus(n: int = 400) -> str:
    return "".join(f"q{i:04d} question number {i} about topic {i * 7 % 13} | {LABELS[i % 5]}\n" for i in range(n))


def count_people(request: ConverseRequest) -> Reply:
    """The oracle sub-model: counts lines labelled HUM in the text it was given."""
    return Reply(text=str(request.last_user_text.count("| HUM")), input_tokens=50, output_tokens=5)


MAP_REDUCE = f"""
lines = context.splitlines()
chunks = ['\\n'.join(lines[i:i + {CHUNK_LINES}]) for i in range(0, len(lines), {CHUNK_LINES})]
answers = llm_query_batched(['How many questions are about people? Answer with a number.\\n' + c for c in chunks])
total = sum(int(a) for a in answers)
print(len(chunks), total)
"""


async def test_map_reduce_run_end_to_end(client, fake) -> None:
    corpus = question_corpus()
    fake.respond = scripted(
        ROOT_MODEL,
        [
            code("print(type(context), len(context))", input_tokens=100, output_tokens=10),
            code("print(len(context), context[:80])", input_tokens=100, output_tokens=10),
            code(MAP_REDUCE, text="Counting per chunk.", input_tokens=100, output_tokens=10),
            code("FINAL(total)", input_tokens=100, output_tokens=10),
        ],
        sub=count_people,
    )
    sid = (await call(client, "load_context", content=corpus))["session_id"]
    steps: list[str] = []
    values: list[float] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        steps.append(message or "")
        values.append(done)

    result = await client.call_tool("rlm_query", {"session_id": sid, "query": "How many questions are about people?"},
                                    progress_callback=on_progress)  # fmt: skip
    out = result.structured_content
    assert out["status"] == "completed", out
    assert out["answer"] == str(corpus.count("| HUM")) == "80"
    assert out["iterations"] == 4
    assert out["sub_calls"] == 8
    assert out["usage"] == {"root_input_tokens": 400, "root_output_tokens": 40, "sub_input_tokens": 400,
                            "sub_output_tokens": 40}  # fmt: skip
    assert out["cost_usd"] is None  # fake models are not in the price table
    assert steps[:5] == [
        "step 1: the root model is writing",
        "step 1 done: 0 sub-calls so far",
        "step 2: the root model is writing",
        "step 2 done: 0 sub-calls so far",
        "step 3: the root model is writing",
    ]
    assert "step 3: 1/8 sub-calls" in steps and "step 3 done: 8 sub-calls so far" in steps
    assert all(a < b for a, b in itertools.pairwise(values)), values  # MCP: progress only increases
    assert values[-1] <= 4

    # The root saw metadata and tool results, never the corpus.
    root_requests = fake.requests_for(ROOT_MODEL)
    assert len(root_requests) == 4
    first = root_requests[0]
    assert "400 lines" in first.last_user_text and "How many questions are about people?" in first.last_user_text
    assert "sub-model, which can read about 400,000 characters" in first.system
    assert [t["toolSpec"]["name"] for t in first.tools] == ["python"]
    for request in root_requests:  # a line far past the preview, which no code printed
        assert "q0300 question number 300" not in request.all_text

    # Every chunk went to the sub-model exactly once.
    lines = corpus.splitlines()
    expected = {"\n".join(lines[i : i + CHUNK_LINES]) for i in range(0, len(lines), CHUNK_LINES)}
    sent = [r.last_user_text.split("\n", 1)[1] for r in fake.requests_for(SUB_MODEL)]
    assert sorted(sent) == sorted(expected)

    trajectory = await call(client, "get_trajectory", trajectory_id=out["trajectory_id"], detail="full")
    assert trajectory["kind"] == "run" and trajectory["status"] == "completed" and trajectory["answer"] == "80"
    assert trajectory["query"] == "How many questions are about people?"
    assert [s["turn"] for s in trajectory["steps"]] == [0, 1, 2, 3]
    assert trajectory["steps"][2]["root_text"] == "Counting per chunk."
    assert trajectory["steps"][2]["stdout"] == "8 80\n" and trajectory["steps"][2]["sub_call_count"] == 8
    assert len(trajectory["steps"][2]["sub_calls"]) == 8
    assert trajectory["usage"] == out["usage"] and trajectory["iterations"] == 4


async def test_plain_text_answer_ends_the_run(client, fake) -> None:
    fake.respond = scripted(ROOT_MODEL, [code("print(len(context))"), Reply(text="There are 12 characters.")])
    sid = (await call(client, "load_context", content="twelve chars"))["session_id"]
    out = await call(client, "rlm_query", session_id=sid, query="How long?")
    assert (out["status"], out["answer"], out["iterations"]) == ("completed", "There are 12 characters.", 2)
    tool_result = fake.requests_for(ROOT_MODEL)[1].tool_results
    assert tool_result == ["12"]


async def test_syntax_error_is_shown_and_fixed(client, fake) -> None:
    fake.respond = scripted(ROOT_MODEL, [code("print(len(context)"), code("FINAL(len(context))")])
    sid = (await call(client, "load_context", content="abc"))["session_id"]
    out = await call(client, "rlm_query", session_id=sid, query="length?")
    assert out["status"] == "completed" and out["answer"] == "3"
    shown = fake.requests_for(ROOT_MODEL)[1].tool_results[0]
    assert "SyntaxError" in shown and "print(len(context)" in shown


async def test_runaway_code_times_out_and_the_run_goes_on(short_client, fake) -> None:
    fake.respond = scripted(ROOT_MODEL, [code("x = 5\nwhile True:\n    pass"), code("FINAL(x * 2)")])
    sid = (await call(short_client, "load_context", content="abc"))["session_id"]
    out = await call(short_client, "rlm_query", session_id=sid, query="?")
    assert out["status"] == "completed" and out["answer"] == "10"
    assert "TimeoutError" in fake.requests_for(ROOT_MODEL)[1].tool_results[0]


async def test_sub_call_budget_is_shared_by_the_run(client, fake) -> None:
    fake.respond = scripted(ROOT_MODEL, [
        code("a = llm_query_batched(['x'] * 3)"),
        code("try:\n    llm_query_batched(['y'] * 3)\nexcept SubcallBudgetExceeded as e:\n    print('budget:', e)"),
        code("FINAL(len(a))"),
    ])  # fmt: skip
    sid = (await call(client, "load_context", content="abc"))["session_id"]
    out = await call(client, "rlm_query", session_id=sid, query="?", max_sub_calls=4)
    assert out["status"] == "completed" and out["answer"] == "3" and out["sub_calls"] == 3
    assert "budget: the sub-call budget is used up: 3 of 4 made" in fake.requests_for(ROOT_MODEL)[2].tool_results[0]


async def test_iteration_limit_gives_one_last_turn(client, fake) -> None:
    def root(request: ConverseRequest) -> Reply:
        if "You have used all 3 tool calls" in request.last_user_text:
            return Reply(text="Best guess: 42.")
        return code("print('still looking')")

    fake.respond = scripted(ROOT_MODEL, [root])
    sid = (await call(client, "load_context", content="abc"))["session_id"]
    out = await call(client, "rlm_query", session_id=sid, query="?", max_iterations=3)
    assert out["status"] == "limit_reached" and out["answer"] == "Best guess: 42."
    assert "iteration limit (3)" in out["message"]
    assert len(fake.requests_for(ROOT_MODEL)) == 4


async def test_wait_false_then_poll_to_completion(client, fake) -> None:
    release = threading.Event()
    fake.respond = scripted(
        ROOT_MODEL, [code("n = len(context)\nllm_query('HOLD')"), code("FINAL(n)")], sub=holding("HOLD", release)
    )
    sid = (await call(client, "load_context", content="four"))["session_id"]
    try:
        started = await call(client, "rlm_query", session_id=sid, query="?", wait=False)
        assert started["status"] == "running" and started["answer"] is None
        assert "already has a run in progress" in await call_error(client, "rlm_query", session_id=sid, query="again")
        view = await call(client, "get_trajectory", trajectory_id=started["trajectory_id"])
        assert view["status"] == "running"  # its first step is held at the fake until released
    finally:
        release.set()
    with anyio.fail_after(60):
        while view["status"] == "running":
            await anyio.sleep(0.1)
            view = await call(client, "get_trajectory", trajectory_id=started["trajectory_id"])
    assert view["status"] == "completed" and view["answer"] == "4"
    assert view["iterations"] == 2


async def test_cancelled_request_stops_the_run_and_its_code(client, fake) -> None:
    spinning = "kept = 7\nllm_query('SPINNING')\nwhile True:\n    x = 1"
    fake.respond = scripted(ROOT_MODEL, [code(spinning), code("FINAL(1)")])
    sid = (await call(client, "load_context", content="abc"))["session_id"]
    async with anyio.create_task_group() as tg:  # cancel the request once its code is in its endless loop

        async def ask() -> None:
            await client.call_tool("rlm_query", {"session_id": sid, "query": "?"})

        tg.start_soon(ask)
        await until_requested(fake, "SPINNING")
        tg.cancel_scope.cancel()
    with anyio.fail_after(60):
        while True:
            session = next(s for s in (await call(client, "list_sessions"))["sessions"] if s["session_id"] == sid)
            if not session["busy"]:
                break
            await anyio.sleep(0.1)
    out = await call(client, "repl_exec", session_id=sid, code="kept")
    assert out["stdout"] == "7\n" and not out["restarted"]  # interrupted, not killed
    trajectory = await call(client, "get_trajectory", trajectory_id=session["runs"][-1])
    assert trajectory["status"] == "cancelled" and trajectory["message"] == "the run was cancelled"
    assert len(fake.requests_for(ROOT_MODEL)) == 1  # the second turn never happened


async def test_robustness_of_the_loop(client, fake) -> None:
    attempts = 0
    lock = threading.Lock()

    def throttled_once(request: ConverseRequest) -> Reply | Fault:
        nonlocal attempts
        with lock:
            attempts += 1
            if attempts == 1:
                return throttled()
        return Reply(tool_calls=[("shell", {"cmd": "ls"})])

    fake.respond = scripted(ROOT_MODEL, [
        throttled_once,                                  # throttled, then a call to a tool that does not exist
        Reply(tool_calls=[("python", {"cmd": "1"})]),     # the right tool with the wrong input
        Reply(text="", stop_reason="max_tokens"),         # cut off
        Reply(text=""),                                   # neither code nor answer
        code("FINAL('recovered')"),
    ])  # fmt: skip
    sid = (await call(client, "load_context", content="abc"))["session_id"]
    out = await call(client, "rlm_query", session_id=sid, query="?")
    assert out["status"] == "completed" and out["answer"] == "recovered"
    requests = fake.requests_for(ROOT_MODEL)
    assert "unknown tool 'shell'" in requests[2].tool_results[0]
    assert "the input has no code" in requests[3].tool_results[0]
    assert "cut off" in requests[4].last_user_text
    assert "neither code nor an answer" in requests[5].last_user_text


async def test_validation_error_fails_the_run_clearly(client, fake) -> None:
    fake.respond = scripted(ROOT_MODEL, [
        code("print(1)"),
        Fault(400, "ValidationException", "Input is too long for requested model."),
    ])  # fmt: skip
    sid = (await call(client, "load_context", content="abc"))["session_id"]
    out = await call(client, "rlm_query", session_id=sid, query="?")
    assert out["status"] == "failed"
    assert re.search(r"input is too long for .*root-model", out["message"])
    trajectory = await call(client, "get_trajectory", trajectory_id=out["trajectory_id"])
    assert trajectory["status"] == "failed" and len(trajectory["steps"]) == 1


async def test_restarted_sandbox_is_reported_to_the_root(short_client, fake) -> None:
    fake.respond = scripted(ROOT_MODEL, [code("v = 1\nsum(range(10**15))"), code("FINAL(len(context))")])
    sid = (await call(short_client, "load_context", content="abcd"))["session_id"]
    out = await call(short_client, "rlm_query", session_id=sid, query="?")
    assert out["status"] == "completed" and out["answer"] == "4"
    shown = fake.requests_for(ROOT_MODEL)[1].tool_results[0]
    assert "variables from earlier calls were lost" in shown


async def test_missing_root_model_is_a_clear_error(client, fake) -> None:
    sid = (await call(client, "load_context", content="abc"))["session_id"]
    assert "empty" in await call_error(client, "rlm_query", session_id=sid, query="  ")
    error = await call_error(client, "rlm_query", session_id="s_unknownSess1", query="?")
    assert "no session" in error
