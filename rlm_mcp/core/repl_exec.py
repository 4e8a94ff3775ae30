"""``repl_exec``: the caller's own model is the root, running code in a session's sandbox one call at a time.

Each call runs its code with ``llm_query``/``llm_query_batched`` served by the
sub-call broker against the session's budget (nested runs are for ``rlm_query``
runs: here the caller splits the work itself), and becomes one step of the
session's trajectory. A step that cannot be stored does not cost the caller the
result of code that already ran: the result says so in its notes.
"""

from __future__ import annotations

import logging
import time

from rlm_mcp.config import Settings
from rlm_mcp.core.runs.recursion import refuse_in_repl_exec
from rlm_mcp.core.session_state import Session
from rlm_mcp.core.sessions import SessionManager
from rlm_mcp.core.steps import build_step
from rlm_mcp.core.subcalls.broker import SubcallBroker, SubcallLog
from rlm_mcp.core.trajectories import TrajectoryStore
from rlm_mcp.errors import InvalidInput, RLMError
from rlm_mcp.principals import LOCAL
from rlm_mcp.progress import Progress, ProgressReporter
from rlm_mcp.schemas import ReplExecResult, SubCallSummary, VariableInfo, code_error
from rlm_mcp.store import StoreError
from rlm_mcp.telemetry.spans import code_span
from sandbox import CodeTooLarge, ExecResult, SandboxError

log = logging.getLogger(__name__)


class ReplExec:
    def __init__(
        self, settings: Settings, sessions: SessionManager, trajectories: TrajectoryStore, broker: SubcallBroker
    ):
        self.settings = settings
        self.sessions = sessions
        self.trajectories = trajectories
        self.broker = broker

    async def run(
        self, session_id: str, code: str, *, progress: ProgressReporter | None = None, owner: str = LOCAL
    ) -> ReplExecResult:
        if not code.strip():
            raise InvalidInput("code is empty")
        async with self.sessions.use(session_id, owner) as session:
            sub_log = SubcallLog()
            finished = 0  # sub-calls of earlier batches in this call: progress must only increase

            async def on_progress(done: int, total: int) -> None:
                nonlocal finished
                if progress is not None:
                    done_all, total_all = finished + done, finished + total
                    message = f"{done_all}/{total_all} sub-calls"
                    await progress(
                        Progress(done_all, total_all, message, phase="exec", done=done, of=total, sub_calls=done_all)
                    )
                if done == total:
                    finished += total

            handler = self.broker.handler(
                budget=session.budget,
                log=sub_log,
                default_model=self.settings.sub_model,
                progress=on_progress,
                owner=session.owner,
                seen=session.seen,
            )
            started = time.time()
            try:
                with code_span(session.id, code) as span:
                    result = await session.sandbox.execute(code, on_subcall=handler, on_call=refuse_in_repl_exec)
                    span.result(result)
            except CodeTooLarge as exc:
                raise InvalidInput(str(exc)) from None
            except SandboxError as exc:
                raise RLMError(f"the sandbox failed: {exc}") from exc
            notes = session.take_notes() + result.notes
            try:
                await self._record(session, code, result, sub_log, started, notes)
            except StoreError as exc:  # the code ran: its result is worth more than the error
                log.warning("session %s: %s", session.id, exc)
                notes.append(f"this step is not in the trajectory yet: {exc}")
            await self.sessions.touch(session)
            return ReplExecResult(
                stdout=result.stdout,
                error=code_error(result),
                variables=[VariableInfo(name=v.name, type=v.type, size=v.size) for v in result.variables],
                elapsed_ms=round(result.elapsed_ms, 3),
                sub_calls=SubCallSummary(
                    count=len(sub_log.records),
                    failed=sub_log.failed,
                    cached=sub_log.cached,
                    input_tokens=sub_log.usage.input_tokens,
                    output_tokens=sub_log.usage.output_tokens,
                ),
                final=result.final,
                timed_out=result.timed_out,
                restarted=result.restarted,
                notes=notes,
            )

    async def _record(
        self, session: Session, code: str, result: ExecResult, sub_log: SubcallLog, started: float, notes: list[str]
    ) -> None:
        trajectory = await self.trajectories.get(session.trajectory_id)
        count = len(trajectory.steps)
        step = build_step(
            index=count, turn=count, started=started, code=code, result=result, sub_log=sub_log, notes=list(notes)
        )
        await self.trajectories.add_step(session.trajectory_id, step)
        if result.final is not None:
            await self.trajectories.update(session.trajectory_id, answer=result.final)
