"""One turn's code, run: the actions :mod:`rlm_mcp.core.runs.replies` found in a reply, and what goes back to the root.

Code runs in the order the reply gave it (tool calls, or fenced blocks). Once
one calls ``FINAL`` the rest is not run but recorded as skipped (and, for tool
calls, answered, as the APIs require of every call). A ``FINAL``/``FINAL_VAR``
written in the text is resolved after the code, and only if that code ran
cleanly: a model that wrote code and its answer in one reply has not seen the
output yet. Each execution is one trajectory step.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rlm_mcp.core.runs import prompts, replies
from rlm_mcp.core.runs.replies import Reading, Refuse
from rlm_mcp.core.steps import build_step
from rlm_mcp.core.subcalls.broker import SubcallLog
from rlm_mcp.models import Message, TextBlock, ToolResult
from rlm_mcp.telemetry import spans as telemetry
from sandbox import CodeTooLarge, ExecResult

if TYPE_CHECKING:
    from rlm_mcp.core.runs.loop import RLMRun

COMPILE_ERRORS = ("SyntaxError", "RestrictedCodeError")


def tool_result_text(result: ExecResult, sub_log: SubcallLog) -> str:
    """How one execution reads to the root: output, then the error, then what else it should know."""
    parts = [result.stdout.rstrip("\n")] if result.stdout else []
    if result.error is not None:
        parts.append(result.error.traceback or f"{result.error.type}: {result.error.message}")
    parts.extend(f"[note] {note}" for note in result.notes)
    if sub_log.records:
        failed = f", {sub_log.failed} failed" if sub_log.failed else ""
        parts.append(f"[{len(sub_log.records)} sub-calls{failed}]")
    return "\n".join(parts) or "(no output)"


@dataclass
class Feedback:
    """What one turn's code sends back: a result per tool call, or the output of fenced blocks, and notes."""

    results: list[ToolResult] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    final: str | None = None
    failed: bool = False

    def message(self) -> Message:
        if not self.results:
            return Message("user", [TextBlock(prompts.block_outputs(self.outputs, self.notes))])
        if self.notes:  # some Converse models refuse text next to tool results: the notes go inside the last one
            last = self.results[-1]
            self.results[-1] = ToolResult(last.tool_call_id, "\n\n".join([last.text, *self.notes]), last.is_error)
        return Message("user", list(self.results))


async def act(run: RLMRun, turn: int, reading: Reading) -> Feedback:
    """Run the reply's code in order, then a FINAL written in its text."""
    feedback = Feedback()
    what = "tool call" if reading.calls else "code block"
    for action in reading.actions:
        call_id = action.call_id
        if feedback.final is not None:
            skipped = prompts.SKIPPED_AFTER_FINAL.format(what=what)
            await run.record(turn, code=None if isinstance(action, Refuse) else action.code, notes=[skipped])
            if call_id is not None:
                feedback.results.append(ToolResult(call_id, skipped, is_error=True))
            continue
        if isinstance(action, Refuse):
            text = cut_off_text(run, what) if action.cut else prompts.refused_call(action.problem)
            feedback.results.append(ToolResult(action.call_id, text, is_error=True))
            feedback.failed = True
            await run.record(turn, error_text=text)
            continue
        result, text = await execute(run, turn, action.code, call_id=call_id)
        failed = result is None or result.error is not None
        if call_id is not None:
            feedback.results.append(ToolResult(call_id, text, is_error=failed))
        else:
            feedback.outputs.append(text)
        feedback.failed |= failed
        if result is not None and result.final is not None:
            feedback.final = result.final
    if feedback.final is None and reading.final is not None:
        if feedback.failed:
            feedback.notes.append(prompts.FINAL_NOT_USED.format(written=reading.final.written))
        else:
            feedback.final = await resolve_final(run, turn, reading.final, feedback)
    answered_cut = any(isinstance(a, Refuse) and a.cut for a in reading.actions)
    if feedback.final is None and reading.cut_off is not None and not answered_cut:
        cut = reading.cut_off
        feedback.notes.append(
            cut_off_text(run, cut) if cut in ("code block", "tool call")
            else prompts.CUT_OFF_REASONING if cut == "reasoning" else prompts.CUT_OFF_MESSAGE
        )  # fmt: skip
    if run.unrecorded is not None:  # nothing ran (a cut-off alone): the turn still gets its step
        await run.record(turn, notes=[f"cut off at the output limit ({reading.cut_off})"])
    return feedback


def cut_off_text(run: RLMRun, what: str) -> str:
    return prompts.CUT_OFF_CODE.format(what=what, max_tokens=run.config.root_max_tokens)


async def resolve_final(run: RLMRun, turn: int, final: replies.FinalCall, feedback: Feedback) -> str | None:
    """FINAL/FINAL_VAR written in the text, evaluated in the REPL (prose is taken as written); None if it failed,
    with the error in ``feedback``."""
    code = final.code()
    literal = final.argument.strip()
    if code is None:
        await run.record(turn, final=literal, notes=[f"{final.written} in the reply text, taken as written"])
        return literal
    result, text = await execute(run, turn, code, note=f"{final.written} in the reply text, resolved in the REPL")
    if result is not None and result.error is None and result.final is not None:
        # FINAL(max) meant the word, not the builtin
        return literal if final.is_bare_name() and replies.is_object_repr(result.final) else result.final
    compile_error = result is not None and result.error is not None and result.error.type in COMPILE_ERRORS
    if compile_error and final.kind == "FINAL":
        return literal  # the REPL refused to compile it as code: prose after all
    feedback.notes.extend([text, prompts.FINAL_FAILED.format(written=final.written)])
    return None


async def execute(
    run: RLMRun, turn: int, code: str, *, call_id: str | None = None, note: str | None = None
) -> tuple[ExecResult | None, str]:
    """Run ``code`` and record its step: the result (None if refused before running) and how it reads."""
    sub_log = SubcallLog()
    children: list[str] = []
    started = time.time()
    notes = [note] if note else []
    try:
        with telemetry.code_span(run.session_id, code, tool_call_id=call_id) as span:
            result = await run.sandbox.execute(
                code, on_subcall=run.subcall_handler(turn, sub_log), on_call=run.call_handler(turn, children)
            )
            span.result(result)
    except CodeTooLarge as exc:
        await run.record(turn, code=code[:2000], error_text=str(exc), notes=notes)
        return None, str(exc)
    run.outcome.sub_calls.extend(sub_log.records)
    run.outcome.sub_usage = run.outcome.sub_usage + sub_log.usage
    await run.record(turn, code=code, result=result, sub_log=sub_log, started=started, children=children, notes=notes)
    if run.journal is not None:  # the variables after this step, should the run stop and be resumed
        await run.journal.save_state(run.sandbox, run.step_count - 1)
    return result, tool_result_text(result, sub_log)


async def record(
    run: RLMRun,
    turn: int,
    *,
    code: str | None = None,
    result: ExecResult | None = None,
    sub_log: SubcallLog | None = None,
    started: float | None = None,
    final: str | None = None,
    error_text: str | None = None,
    notes: list[str] | None = None,
    children: list[str] | None = None,
) -> None:
    """One step of the trajectory; the first step of a turn carries the root's reply and pending notes."""
    root, run.unrecorded = run.unrecorded, None
    pending = run.take_notes()
    if run.journal is not None and run.journal.unsaved:
        pending.append(run.journal.unsaved)
        run.journal.unsaved = None
    step = build_step(
        index=run.step_count,
        turn=turn,
        started=started,
        code=code,
        result=result,
        sub_log=sub_log,
        final=final,
        notes=pending + (notes or []) + (result.notes if result else []) + ([error_text] if error_text else []),
        root=root,
        children=children,
    )
    run.step_count += 1
    await run.trajectories.add_step(run.trajectory_id, step)
