"""Deeper recursion: rlm_query(prompt, context=None) inside the REPL starts a nested run.

The root is scripted per conversation (a nested run starts a conversation of
its own, recognised by its question), behind the Converse fake.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from conftest import ROOT_MODEL, SUB_MODEL
from helpers import call, call_error, until_requested

from rlm_mcp.testing.bedrock import ConverseRequest, Reply, Responder, code, echo
from sandbox import Sandbox, SandboxLimits, SubcallRefused

pytestmark = pytest.mark.anyio
Script = list[Reply | Callable[[ConverseRequest], Reply]]


def by_question(scripts: dict[str, Script], sub: Responder = echo) -> Responder:
    """A root that plays one script per conversation, chosen by the question the conversation is about."""

    def respond(request: ConverseRequest) -> Reply:
        if request.model_id != ROOT_MODEL:
            return sub(request)
        question = request.messages[0]["content"][0]["text"].rsplit("Question: ", 1)[1]
        steps = scripts[question]
        step = steps[min(sum(1 for m in request.messages if m["role"] == "assistant"), len(steps) - 1)]
        return step(request) if callable(step) else step

    return respond


async def run(client, corpus: str, query: str, **arguments: Any) -> tuple[dict, dict]:
    sid = (await call(client, "load_context", content=corpus))["session_id"]
    out = await call(client, "rlm_query", session_id=sid, query=query, **arguments)
    trajectory = await call(client, "get_trajectory", trajectory_id=out["trajectory_id"], detail="full")
    return out, trajectory


async def test_nested_run_on_a_slice_of_the_corpus(client, fake) -> None:
    fake.respond = by_question({
        "top": [
            code("part = rlm_query('How long is it?', context=context[:10])\nprint(part)"),
            code("FINAL('the first ten: ' + part)"),
        ],
        "How long is it?": [code("FINAL(len(context))")],
    })  # fmt: skip
    out, parent = await run(client, "0123456789" * 50, "top", max_depth=2)
    assert (out["status"], out["answer"]) == ("completed", "the first ten: 10")
    children = parent["steps"][0]["child_runs"]
    assert len(children) == 1 and parent["steps"][0]["stdout"] == "10\n"
    child = await call(client, "get_trajectory", trajectory_id=children[0], detail="full")
    assert child["parent_id"] == parent["id"] and child["depth"] == 2 and child["corpus_chars"] == 10
    assert (child["status"], child["answer"], child["query"]) == ("completed", "10", "How long is it?")
    assert parent["depth"] == 1 and parent["corpus_chars"] == 500
    # The parent is told about rlm_query; the child, at the deepest level allowed, is not.
    systems = {
        r.messages[0]["content"][0]["text"].rsplit("Question: ")[1]: r.system for r in fake.requests_for(ROOT_MODEL)
    }
    assert "rlm_query(prompt, context=None)" in systems["top"]
    assert "rlm_query" not in systems["How long is it?"]


async def test_nested_run_shares_the_budget_and_its_costs_count(client, fake) -> None:
    fake.respond = by_question({
        "top": [code("a = rlm_query('label the corpus')\nFINAL(a)")],
        "label the corpus": [code(
            "try:\n    FINAL(llm_query_batched(['x', 'y']))\n"
            "except SubcallBudgetExceeded as e:\n    FINAL('budget: ' + str(e)[:38])"
        )],
    })  # fmt: skip
    out, _ = await run(client, "whole corpus", "top", max_depth=2, max_sub_calls=2)
    assert out["status"] == "completed"
    assert out["answer"] == "budget: the sub-call budget is used up: 1 of 2"  # the nested run itself cost one
    fake.respond = by_question({
        "top": [code("a = rlm_query('read it')\nFINAL(a)")],
        "read it": [code("FINAL(llm_query('context: ' + context))")],
    })  # fmt: skip
    out, parent = await run(client, "whole corpus", "top", max_depth=2)
    assert out["answer"] == "CONTEXT: WHOLE CORPUS"  # context=None: the nested run sees the parent's corpus
    assert out["sub_calls"] == 1 and out["usage"]["sub_input_tokens"] > 0  # the nested run's sub-call counts
    # The result counts the nested run's root turn too; the parent's trajectory holds its own steps only.
    assert out["usage"]["root_input_tokens"] > parent["usage"]["root_input_tokens"] > 0
    assert len(fake.requests_for(SUB_MODEL)) == 1


async def test_depth_is_limited(client, fake) -> None:
    fake.respond = by_question({
        "top": [code("try:\n    rlm_query('again')\nexcept LLMError as e:\n    FINAL(str(e))")],
    })  # fmt: skip
    out, _ = await run(client, "abc", "top")
    assert "this run is at depth 1 and max_depth is 1" in out["answer"]
    fake.respond = by_question({
        "top": [code("FINAL(rlm_query('middle', context=['a', 'bb']))")],
        "middle": [code("try:\n    rlm_query('deeper')\nexcept LLMError as e:\n    FINAL(str(e))")],
    })  # fmt: skip
    out, parent = await run(client, "abc", "top", max_depth=2)
    assert "at depth 2 and max_depth is 2" in out["answer"]
    child = await call(client, "get_trajectory", trajectory_id=parent["steps"][0]["child_runs"][0])
    assert child["corpus_chars"] == 3  # a list of two documents, 'a' and 'bb'


async def test_client_driven_sessions_explain_rlm_query(client) -> None:
    sid = (await call(client, "load_context", content="abc"))["session_id"]
    out = await call(client, "repl_exec", session_id=sid, code="rlm_query('hi')")
    assert out["error"]["type"] == "LLMError" and "in repl_exec you are the root" in out["error"]["message"]
    out = await call(client, "repl_exec", session_id=sid, code="rlm_query(3)")
    assert out["error"]["type"] == "TypeError"
    assert "max_depth" in await call_error(client, "rlm_query", session_id=sid, query="?", max_depth=9)


async def test_cancelling_stops_the_nested_run_too(client, fake, env) -> None:
    fake.respond = by_question({
        "top": [code("kept = 1\nFINAL(rlm_query('spin'))")],
        "spin": [code("import time\nllm_query('SPINNING')\nwhile True:\n    time.monotonic()")],
    })  # fmt: skip
    sid = (await call(client, "load_context", content="abc"))["session_id"]
    async with anyio.create_task_group() as tg:  # cancel once the nested run's code is in its endless loop

        async def ask() -> None:
            await client.call_tool("rlm_query", {"session_id": sid, "query": "top", "max_depth": 2})

        tg.start_soon(ask)
        await until_requested(fake, "SPINNING")
        tg.cancel_scope.cancel()
    with anyio.fail_after(300):
        while any(s["busy"] for s in (await call(client, "list_sessions"))["sessions"] if s["session_id"] == sid):
            await anyio.sleep(0.1)
    out = await call(client, "repl_exec", session_id=sid, code="kept")
    assert out["stdout"] == "1\n" and not out["restarted"]
    parent_id = next(s for s in (await call(client, "list_sessions"))["sessions"] if s["session_id"] == sid)["runs"][-1]
    parent = await call(client, "get_trajectory", trajectory_id=parent_id)
    assert parent["status"] == "cancelled"
    children = [
        json.loads(p.read_text().splitlines()[0]) for p in (Path(env["RLM_DATA_DIR"]) / "trajectories").glob("*")
    ]
    nested = [
        await call(client, "get_trajectory", trajectory_id=c["trajectory"]["id"])
        for c in children
        if c["trajectory"]["query"] == "spin"
    ]
    assert [c["status"] for c in nested if c["parent_id"] == parent_id] == ["cancelled"]


async def test_the_sandbox_serves_named_requests_through_its_parent(tmp_path: Path) -> None:
    """The generic request kind: the worker sends a name and JSON arguments, the parent answers."""
    seen: list[tuple[str, dict]] = []

    async def on_call(name: str, args: dict[str, Any]) -> Any:
        seen.append((name, args))
        if args["prompt"] == "refuse":
            raise SubcallRefused("not today", error_type="SubcallBudgetExceeded")
        if args["prompt"] == "bug":
            raise KeyError("oops")
        return f"answer to {args['prompt']}"

    async with Sandbox(SandboxLimits(exec_timeout_s=600), workdir_parent=tmp_path) as box:
        result = await box.execute("print(rlm_query('p', context=['a', 'b']))", on_call=on_call)
        assert result.error is None and result.stdout == "answer to p\n"
        result = await box.execute(
            "try:\n    rlm_query('refuse')\nexcept SubcallBudgetExceeded as e:\n    print('refused:', e)",
            on_call=on_call,
        )
        assert result.stdout == "refused: not today\n"
        result = await box.execute("try:\n    rlm_query('bug')\nexcept LLMError as e:\n    print(e)", on_call=on_call)
        assert result.stdout == "rlm_query failed: KeyError('oops')\n"  # and the channel is still in step:
        result = await box.execute("rlm_query('p', context={'a': 1})", on_call=on_call)
        assert result.error is not None and result.error.type == "TypeError"
        result = await box.execute("rlm_query('p')")
        assert result.error is not None and "rlm_query is not available here" in result.error.message
    assert seen == [
        ("rlm_query", {"prompt": "p", "context": ["a", "b"]}),
        ("rlm_query", {"prompt": "refuse", "context": None}),
        ("rlm_query", {"prompt": "bug", "context": None}),
    ]
