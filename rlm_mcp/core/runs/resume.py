"""Resuming a run that stopped: its transcript and REPL variables back, a new budget, the same trajectory.

A run that ended on a limit (iterations, sub-calls, tokens, dollars, time), was
cancelled, failed, or was interrupted by a server that died, is continued by
``rlm_query(resume=<trajectory_id>)``. The root gets its transcript back exactly
as it was sent (:mod:`rlm_mcp.core.runs.journal`), repaired where the run stopped mid-turn
(a tool call never answered gets an answer saying so), followed by a note: why it
stopped, the new budget, which variables came back and which did not, and the
caller's words if any. The session's sandbox is replaced by a fresh worker (the
corpus reloaded as ``context``) into which the last snapshot's plain-data
variables are restored. The continuation appends its steps to the same
trajectory, after a ``resumes`` entry recording all of this.

A completed run can be resumed too, with a follow-up question (``query``): the
root answers it with everything it built for the first answer. Without a
question there is nothing to continue, and the call is refused. A run still
going, a nested run (resume its top-level run) and a repl_exec session (its
variables live in the session) cannot be resumed. Only the run's owner can.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rlm_mcp.core.runs.journal import read_state, read_transcript
from rlm_mcp.core.runs.replies import Protocol
from rlm_mcp.errors import InvalidInput, RLMError
from rlm_mcp.models import Message, TextBlock, ToolCall, ToolResult, Usage
from rlm_mcp.models.pricing import PriceTable, run_cost
from rlm_mcp.schemas import NotRestored, Resumption, Trajectory
from rlm_mcp.store import Store
from sandbox import Sandbox, SandboxError

if TYPE_CHECKING:
    from rlm_mcp.core.runs.contract import RunConfig, RunOutcome

RESUMABLE = frozenset({"limit_reached", "cancelled", "interrupted", "failed", "completed"})
LOST_RESULT = (
    "not answered: the run stopped before this call's result was recorded. The trajectory may show its step; "
    "the variables below are as last saved. Run it again if you need its output."
)


def check(trajectory: Trajectory, query: str | None, active: bool) -> None:
    """Refuse, with what to do instead, a trajectory that cannot be resumed as asked."""
    what = f"trajectory {trajectory.id!r}"
    if trajectory.kind != "run":
        raise InvalidInput(f"{what} is a repl_exec session, not an rlm_query run: keep using repl_exec on it")
    if trajectory.parent_id is not None:
        raise InvalidInput(f"{what} is a nested run; resume the run that started it ({trajectory.parent_id})")
    if active or trajectory.status == "running":
        raise InvalidInput(
            f"{what} is still running; follow it with get_trajectory, or close its session to stop it first"
        )
    if trajectory.status not in RESUMABLE:
        raise InvalidInput(f"{what} ended {trajectory.status}; it cannot be resumed")
    if trajectory.status == "completed" and not (query or "").strip():
        raise InvalidInput(
            f"{what} completed with an answer; to continue it, ask a follow-up question with query= "
            "(it is answered with the variables and the conversation of the first answer)"
        )


@dataclass(frozen=True)
class ResumePoint:
    """Where a resumed run starts: the transcript to send next, and what came before (for totals)."""

    messages: list[Message]
    protocol: Protocol
    first_turn: int
    steps: int
    record: Resumption
    prior_cost: float | None
    prior_saved: float | None
    prior_elapsed: float

    def totals(self, outcome: RunOutcome) -> dict[str, Any]:
        """The trajectory's cost and time over the whole run, this continuation included."""

        def add(before: float | None, now: float | None) -> float | None:
            return None if before is None or now is None else round(before + now, 6)

        return {
            "cost_usd": add(self.prior_cost, outcome.cost_usd),
            "cost_saved_usd": add(self.prior_saved or 0.0, outcome.cost_saved_usd),
            "elapsed_s": round(self.prior_elapsed + outcome.elapsed_s, 3),
        }


def answer_all(messages: list[Message], protocol: Protocol, text: str) -> list[Message]:
    """``messages`` followed by ``text`` from the user, keeping the roles alternating and every tool call answered.

    After an assistant turn whose tool calls were never answered (the run stopped mid-turn), each gets a result
    saying so, and ``text`` goes inside the last (some Converse models refuse text next to tool results). After a
    user message, ``text`` joins it.
    """
    out = list(messages)
    last = out[-1] if out else None
    if last is None or last.role == "assistant":
        calls = [b for b in last.content if isinstance(b, ToolCall)] if last and protocol == "tools" else []
        if calls:
            results = [ToolResult(c.id, LOST_RESULT, is_error=True) for c in calls]
            results[-1] = ToolResult(calls[-1].id, f"{LOST_RESULT}\n\n{text}", is_error=True)
            return [*out, Message("user", list(results))]
        return [*out, Message("user", [TextBlock(text)])]
    blocks = list(last.content)
    results = [i for i, b in enumerate(blocks) if isinstance(b, ToolResult)]
    if results:
        index = results[-1]
        old = blocks[index]
        assert isinstance(old, ToolResult)
        blocks[index] = ToolResult(old.tool_call_id, f"{old.text}\n\n{text}", old.is_error)
    else:
        blocks.append(TextBlock(text))
    return [*out[:-1], Message("user", blocks)]


def _cost_so_far(trajectory: Trajectory, prices: PriceTable) -> float | None:
    """What the run cost before: as recorded when it ended, or from its steps when the server died under it."""
    if trajectory.status != "interrupted" or trajectory.root_model is None:
        return trajectory.cost_usd
    root = Usage(trajectory.usage.root_input_tokens, trajectory.usage.root_output_tokens)
    return run_cost(prices, trajectory.root_model, root, [c for s in trajectory.steps for c in s.sub_calls])[0]


def budget_words(config: RunConfig) -> str:
    words = [f"{config.max_iterations} turns", f"{config.max_sub_calls} sub-calls"]
    if config.max_tokens is not None:
        words.append(f"{config.max_tokens:,} tokens")
    if config.max_cost_usd is not None:
        words.append(f"${config.max_cost_usd:.4f}")
    return ", ".join(words)


def note(record: Resumption, config: RunConfig, total_steps: int) -> str:
    """What the root is told when its run goes on."""
    stopped = record.from_status + (f": {record.from_message}" if record.from_message else "")
    lines = [f"[The run was resumed.] It had stopped ({stopped}). Its new budget: {budget_words(config)}."]
    repl = "The REPL was restarted: `context` holds the corpus as before."
    if record.snapshot_step is None:
        repl += " No variables had been saved, so none are back: rebuild what you need."
    else:
        when = f"as they were after step {record.snapshot_step + 1} of {total_steps}"
        names = ", ".join(record.restored) or "none"
        repl += f" Variables restored ({when}): {names}."
        if record.not_restored:
            lost = "; ".join(f"{n.name} ({n.reason})" for n in record.not_restored[:30])
            repl += f" Not restored: {lost}."
    lines.append(repl + "".join(f" Note: {n}." for n in record.notes))
    if record.from_status == "completed":
        lines.append(f"You answered above. The user asks a follow-up: {record.query}\nAnswer it the same way.")
    elif record.query:
        lines.append(f"The user adds: {record.query}\nContinue where you left off.")
    else:
        lines.append("Continue where you left off.")
    return "\n".join(lines)


async def prepare(
    trajectory: Trajectory,
    *,
    runs_store: Store,
    sandbox: Sandbox,
    session_id: str,
    config: RunConfig,
    query: str | None,
    snapshot_bytes: int,
    prices: PriceTable,
) -> ResumePoint:
    """Read the transcript, restart the sandbox with the saved variables, and build the continuation."""
    transcript = await read_transcript(runs_store, trajectory.id)
    if transcript is None:
        raise InvalidInput(
            f"run {trajectory.id!r} kept no transcript (it was recorded before runs could be resumed, or its "
            "transcript could not be written), so it cannot be resumed; start a new run"
        )
    state, damage = await read_state(runs_store, trajectory.id, snapshot_bytes)
    notes = [damage] if damage else []
    if transcript.damaged:
        notes.append(f"{transcript.damaged} damaged record(s) of the conversation were skipped")
    restored: list[str] = []
    lost: list[NotRestored] = []
    try:
        await sandbox.reset()
        if state is not None:
            done = await sandbox.restore(state.snapshot)
            restored = done.names
            lost = [NotRestored(name=n, reason=r) for n, r in [*state.snapshot.skipped, *done.failed]]
    except SandboxError as exc:
        raise RLMError(f"the run could not be resumed: the sandbox failed ({exc})") from None
    record = Resumption(
        at=time.time(),
        after_step=len(trajectory.steps),
        from_status=trajectory.status,
        from_message=trajectory.message,
        query=(query or "").strip() or None,
        session_id=session_id,
        restored=restored,
        not_restored=lost,
        snapshot_step=state.after_step if state is not None else None,
        notes=notes,
    )
    text = note(record, config, len(trajectory.steps))
    return ResumePoint(
        messages=answer_all(transcript.messages, transcript.protocol, text),
        protocol=transcript.protocol,
        first_turn=max((s.turn for s in trajectory.steps), default=-1) + 1,
        steps=len(trajectory.steps),
        record=record,
        prior_cost=_cost_so_far(trajectory, prices),
        prior_saved=trajectory.cost_saved_usd,
        prior_elapsed=trajectory.elapsed_s,
    )
