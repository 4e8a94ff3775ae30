"""The RLM loop in this process: a real sandbox worker, scripted in-process root and sub-models, no server.

Each test builds an :class:`~rlm_mcp.core.runs.loop.RLMRun` from its real parts
(sandbox, sub-call broker, trajectory store) with
:class:`~rlm_mcp.testing.mock_model.MockModel` in place of a backend, so what is
checked is the loop's behaviour: what ends a run, what the root is shown, what
reaches the sub-model. The same behaviours over each wire protocol are in
tests/core/test_rlm_query.py and tests/core/test_reply_shapes.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from rlm_mcp.config import Settings
from rlm_mcp.core.runs.contract import RunConfig, RunOutcome
from rlm_mcp.core.runs.loop import RLMRun
from rlm_mcp.core.subcalls.broker import SubcallBroker
from rlm_mcp.core.trajectories import TrajectoryStore
from rlm_mcp.models import ToolResult
from rlm_mcp.models.pricing import PriceTable
from rlm_mcp.schemas import Trajectory
from rlm_mcp.testing.base import Reply, code
from rlm_mcp.testing.mock_model import MockModel, MockRouter, Scripted
from sandbox import Document, LoadInfo, Sandbox, SandboxLimits

pytestmark = pytest.mark.anyio

CORPUS = "alpha beta gamma delta"
ROOT, SUB = "mock-root", "mock-sub"


@dataclass
class Ran:
    outcome: RunOutcome
    trajectory: Trajectory
    root: MockModel
    sub: MockModel


@dataclass
class Loaded:
    sandbox: Loaded
    corpus: LoadInfo


@pytest.fixture
async def sandbox(tmp_path: Path) -> AsyncIterator[Loaded]:
    """A real, confined worker holding CORPUS as ``context``."""
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(CORPUS)
    limits = SandboxLimits(exec_timeout_s=30, memory_bytes=512 * 1024 * 1024)
    (tmp_path / "work").mkdir()
    async with Sandbox(limits, workdir_parent=tmp_path / "work") as box:
        yield Loaded(box, await box.load([Document(name="corpus.txt", path=corpus)], shape="str"))


async def run_loop(
    tmp_path: Path,
    sandbox: Loaded,
    script: list[Scripted],
    *,
    sub: MockModel | None = None,
    root_tools: bool | None = True,
    max_iterations: int = 5,
) -> Ran:
    root = MockModel(script, tools=root_tools)
    sub = sub or MockModel()
    settings = Settings(data_dir=tmp_path / "data", root_model=ROOT, sub_model=SUB, allowed_models=[])
    prices = PriceTable()
    trajectories = TrajectoryStore(tmp_path / "trajectories")
    record = await trajectories.create(kind="run", session_id="s_inprocess01", status="running", query="q")
    config = RunConfig(
        query="What is the second word?",
        root_model=ROOT,
        sub_model=SUB,
        max_iterations=max_iterations,
        max_sub_calls=20,
        timeout_s=120,
        root_max_tokens=1000,
        sub_context_tokens=10_000,
    )
    run = RLMRun(
        config=config,
        trajectory_id=record.id,
        session_id="s_inprocess01",
        sandbox=sandbox.sandbox,
        corpus=sandbox.corpus,
        root=root,
        broker=SubcallBroker(settings, MockRouter({SUB: sub}), prices),
        trajectories=trajectories,
        prices=prices,
    )
    outcome = await run.run()
    return Ran(outcome, await trajectories.get(record.id), root, sub)


async def test_final_from_code_ends_the_run_with_what_the_code_computed(tmp_path: Path, sandbox: Loaded) -> None:
    ran = await run_loop(tmp_path, sandbox, [code("FINAL(context.split()[1].upper() + str(len(context)))")])
    assert (ran.outcome.status, ran.outcome.answer) == ("completed", f"BETA{len(CORPUS)}")
    assert ran.outcome.iterations == 1 and len(ran.root.chats) == 1
    assert ran.trajectory.status == "completed" and ran.trajectory.steps[0].final == f"BETA{len(CORPUS)}"
    first = ran.root.chats[0]
    assert first.tools == ("python",) and "What is the second word?" in first.last_user_text


async def test_final_var_in_the_reply_text_reads_the_variable_the_code_set(tmp_path: Path, sandbox: Loaded) -> None:
    script: list[Scripted] = [code("answer = context.split()[3]"), Reply(text="Done.\nFINAL_VAR(answer)")]
    ran = await run_loop(tmp_path, sandbox, script)
    assert (ran.outcome.status, ran.outcome.answer) == ("completed", "delta")
    assert ran.outcome.iterations == 2


async def test_a_batch_of_sub_calls_reaches_the_sub_model_and_its_answers_the_root(
    tmp_path: Path, sandbox: Loaded
) -> None:
    sub = MockModel(answer=lambda prompt: f"<{prompt[::-1]}>")
    script: list[Scripted] = [
        code("answers = llm_query_batched([f'word: {w}' for w in context.split()])\nprint(answers)"),
        code("FINAL(' '.join(answers))"),
    ]
    ran = await run_loop(tmp_path, sandbox, script, sub=sub)
    assert sorted(sub.prompts) == sorted(f"word: {w}" for w in CORPUS.split())
    assert all(s.model == SUB for s in sub.sent)
    assert ran.outcome.answer == " ".join(f"<{f'word: {w}'[::-1]}>" for w in CORPUS.split())
    assert len(ran.outcome.sub_calls) == 4 and ran.trajectory.steps[0].sub_call_count == 4
    shown = ran.root.chats[1].last_user_text
    assert "<ahpla :drow>" in shown and "[4 sub-calls]" in shown


async def test_at_the_iteration_limit_the_root_gets_one_last_turn_without_code(tmp_path: Path, sandbox: Loaded) -> None:
    script: list[Scripted] = [code("x = 1"), code("x = 2"), code("x = 3", text="My best answer: beta.")]
    ran = await run_loop(tmp_path, sandbox, script, max_iterations=2)
    assert ran.outcome.status == "limit_reached" and ran.outcome.answer == "My best answer: beta."
    assert "iteration limit (2)" in (ran.outcome.message or "")
    assert ran.outcome.iterations == 2 and len(ran.root.chats) == 3  # two turns, then the last one
    assert "x = 3" not in [s.code for s in ran.trajectory.steps]  # nothing after the limit runs
    assert [s.code for s in ran.trajectory.steps][:2] == ["x = 1", "x = 2"]


async def test_a_code_error_is_shown_to_the_root_which_fixes_it(tmp_path: Path, sandbox: Loaded) -> None:
    script: list[Scripted] = [code("words = context.split()\nwords[10]"), code("FINAL(words[-1])")]
    ran = await run_loop(tmp_path, sandbox, script)
    assert (ran.outcome.status, ran.outcome.answer) == ("completed", "delta")
    results = [b for b in ran.root.chats[1].messages[-1].content if isinstance(b, ToolResult)]
    assert len(results) == 1 and results[0].is_error and "IndexError" in results[0].text
    assert ran.trajectory.steps[0].error is not None and ran.trajectory.steps[0].error.type == "IndexError"


async def test_a_root_without_tool_calling_writes_repl_blocks(tmp_path: Path, sandbox: Loaded) -> None:
    script: list[Scripted] = ["Let me look.\n```repl\nFINAL(context[:5])\n```"]
    ran = await run_loop(tmp_path, sandbox, script, root_tools=False)
    assert (ran.outcome.status, ran.outcome.answer) == ("completed", "alpha")
    assert ran.root.chats[0].tools == ()


async def test_a_script_that_runs_out_fails_the_run_and_says_so(tmp_path: Path, sandbox: Loaded) -> None:
    ran = await run_loop(tmp_path, sandbox, [code("x = 1")])
    assert ran.outcome.status == "failed" and "script has 1 replies" in (ran.outcome.message or "")
