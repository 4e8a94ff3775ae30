"""The RLM loop: a root model writes code against the session's sandbox until it has an answer.

The root gets a system prompt, the query and metadata about the corpus (never
the corpus), and exactly one tool whose input is ``{"code": string}``. Each tool
call runs in the sandbox and its output (errors included) goes back as the
tool result, so the root can look, fix and go on. The run ends when code calls
``FINAL``/``FINAL_VAR``, when the root answers in plain text, or at a limit:
iterations (then the root gets one last turn to answer without tools), the
run's sub-call budget (the code sees a catchable error), or wall-clock time.
Every turn is written to the trajectory as it finishes.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio

from rlm_mcp import prompts, telemetry
from rlm_mcp.errors import ModelError
from rlm_mcp.models import Completion, Message, ModelClient, TextBlock, ToolCall, ToolResult, Usage
from rlm_mcp.pricing import PriceTable
from rlm_mcp.progress import Progress, ProgressReporter, StepProgress
from rlm_mcp.schemas import RunStatus, Step, SubCallRecord, code_error
from rlm_mcp.subcalls import Budget, SubcallBroker, SubcallLog
from rlm_mcp.trajectories import TrajectoryStore
from sandbox import CallHandler, CodeTooLarge, ExecResult, LoadInfo, Sandbox, SandboxError

if TYPE_CHECKING:
    from rlm_mcp.recursion import Recursion

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunConfig:
    query: str
    root_model: str
    sub_model: str | None
    max_iterations: int
    max_sub_calls: int
    timeout_s: float
    root_max_tokens: int
    sub_context_tokens: int
    max_depth: int = 1
    """Nesting allowed for rlm_query inside the REPL: 1 means the code cannot start nested runs."""


@dataclass
class RunOutcome:
    status: RunStatus
    answer: str | None = None
    message: str | None = None
    iterations: int = 0
    root_usage: Usage = field(default_factory=Usage)
    sub_usage: Usage = field(default_factory=Usage)
    sub_calls: list[SubCallRecord] = field(default_factory=list)
    elapsed_s: float = 0.0
    cost_usd: float | None = None


class _RunEnded(Exception):
    def __init__(self, status: RunStatus, answer: str | None = None, message: str | None = None):
        super().__init__(message or status)
        self.status, self.answer, self.message = status, answer, message


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


class RLMRun:
    def __init__(
        self,
        *,
        config: RunConfig,
        trajectory_id: str,
        session_id: str,
        sandbox: Sandbox,
        corpus: LoadInfo,
        root: ModelClient,
        broker: SubcallBroker,
        trajectories: TrajectoryStore,
        prices: PriceTable,
        progress: ProgressReporter | None = None,
        depth: int = 1,
        recursion: Recursion | None = None,
        budget: Budget | None = None,
    ):
        self.config = config
        self.trajectory_id = trajectory_id
        self.session_id = session_id
        self.sandbox = sandbox
        self.corpus = corpus
        self.root = root
        self.broker = broker
        self.trajectories = trajectories
        self.prices = prices
        self.progress = progress
        self.depth = depth
        self.recursion = recursion
        self.budget = budget if budget is not None else Budget(config.max_sub_calls)
        """Shared with nested runs, so the whole tree of runs stays within one budget."""
        self.outcome = RunOutcome(status="running")
        self.messages: list[Message] = []
        self._started = time.monotonic()
        self._steps = 0
        self.step_progress = StepProgress(0)
        """Where the progress value stands inside the current step (sub-calls and nested runs move it)."""
        self._scope: anyio.CancelScope | None = None
        self._cancel_status: tuple[RunStatus, str] = ("cancelled", "the run was cancelled")

    def on_cancel(self, status: RunStatus, message: str) -> None:
        """How a coming cancellation should be recorded (e.g. interrupted by a shutdown)."""
        self._cancel_status = (status, message)

    def cancel(self, status: RunStatus, message: str) -> None:
        self.on_cancel(status, message)
        if self._scope is not None:
            self._scope.cancel()

    # -- entry point ---------------------------------------------------------------------

    async def run(self) -> RunOutcome:
        """Run to the end; whatever happens, the trajectory says how it ended."""
        try:
            with anyio.CancelScope() as self._scope, anyio.fail_after(self.config.timeout_s):
                await self._loop()
            if self._scope.cancelled_caught:
                self._end(self._cancel_status[0], message=self._cancel_status[1])
        except _RunEnded as ended:
            self._end(ended.status, ended.answer, ended.message)
        except TimeoutError:
            self._end("limit_reached", message=f"the run exceeded its time limit of {self.config.timeout_s:g} s")
        except anyio.get_cancelled_exc_class():
            self._end(self._cancel_status[0], message=self._cancel_status[1])
            with anyio.CancelScope(shield=True):
                await self._finish()
            raise
        except ModelError as exc:
            self._end("failed", message=f"the root model failed: {exc}")
        except SandboxError as exc:
            self._end("failed", message=f"the sandbox failed: {exc}")
        except Exception as exc:
            log.exception("run %s failed", self.trajectory_id)
            self._end("failed", message=f"internal error: {exc!r}")
        await self._finish()
        return self.outcome

    @property
    def can_recurse(self) -> bool:
        return self.recursion is not None and self.depth < self.config.max_depth

    def remaining_s(self) -> float:
        return max(self.config.timeout_s - (time.monotonic() - self._started), 0.0)

    def absorb(self, child: RunOutcome) -> None:
        """A nested run's spending counts towards this run's usage and cost."""
        self.outcome.root_usage = self.outcome.root_usage + child.root_usage
        self.outcome.sub_usage = self.outcome.sub_usage + child.sub_usage
        self.outcome.sub_calls.extend(child.sub_calls)

    def _end(self, status: RunStatus, answer: str | None = None, message: str | None = None) -> None:
        self.outcome.status = status
        self.outcome.answer = answer
        self.outcome.message = message

    async def _finish(self) -> None:
        outcome = self.outcome
        outcome.elapsed_s = round(time.monotonic() - self._started, 3)
        outcome.cost_usd = self._cost()
        await self.trajectories.update(
            self.trajectory_id,
            status=outcome.status,
            answer=outcome.answer,
            message=outcome.message,
            cost_usd=outcome.cost_usd,
            elapsed_s=outcome.elapsed_s,
        )

    def _cost(self) -> float | None:
        root = self.prices.cost(
            self.config.root_model, self.outcome.root_usage.input_tokens, self.outcome.root_usage.output_tokens
        )
        if root is None:
            return None
        total = root
        for call in self.outcome.sub_calls:
            sub = self.prices.cost(call.model, call.input_tokens, call.output_tokens)
            if sub is None:
                return None
            total += sub
        return round(total, 6)

    # -- the loop --------------------------------------------------------------------------

    async def _loop(self) -> None:
        self.messages.append(Message("user", [TextBlock(prompts.first_message(self.config.query, self.corpus))]))
        system = prompts.system_prompt(
            sub_context_tokens=self.config.sub_context_tokens,
            max_iterations=self.config.max_iterations,
            max_sub_calls=self.config.max_sub_calls,
            can_recurse=self.can_recurse,
        )
        for turn in range(self.config.max_iterations):
            with telemetry.iteration_span(turn + 1):
                self.step_progress = StepProgress(turn)
                await self.report(self.step_progress.begin(), f"step {turn + 1}: the root model is writing")
                reply = await self._ask_root(system)
                self.outcome.iterations = turn + 1
                if reply.tool_calls:
                    await self._run_tool_calls(turn, reply)
                elif reply.stop_reason == "max_tokens":
                    await self._record(turn, reply, notes=["cut off at the output limit; asked to continue"])
                    self._say(prompts.CUT_OFF_MESSAGE)
                elif reply.stop_reason == "model_context_window_exceeded":
                    await self._record(turn, reply)
                    raise _RunEnded("failed", message="the root's conversation outgrew its context window")
                elif reply.stop_reason in ("guardrail_intervened", "content_filtered"):
                    await self._record(turn, reply)
                    raise _RunEnded("failed", message=f"the root's reply was blocked ({reply.stop_reason})")
                elif reply.text.strip():
                    await self._record(turn, reply, final=reply.text)
                    raise _RunEnded("completed", answer=reply.text.strip())
                else:
                    await self._record(turn, reply, notes=["empty reply; asked again"])
                    self._say(prompts.EMPTY_REPLY_MESSAGE)
                await self._report(turn)
        await self._last_turn(system)

    async def _ask_root(self, system: str) -> Completion:
        with telemetry.model_span(self.config.root_model, role="root", max_tokens=self.config.root_max_tokens) as span:
            reply = await self.root.chat(
                self.config.root_model,
                system=system,
                messages=self.messages,
                tools=[prompts.CODE_TOOL],
                max_tokens=self.config.root_max_tokens,
            )
            span.completed(reply)
        self.outcome.root_usage = self.outcome.root_usage + reply.usage
        self.messages.append(reply.as_message())
        return reply

    def _say(self, text: str) -> None:
        self.messages.append(Message("user", [TextBlock(text)]))

    async def _run_tool_calls(self, turn: int, reply: Completion) -> None:
        results: list[ToolResult] = []
        final: str | None = None
        for position, call in enumerate(reply.tool_calls):
            code = _code_of(call)
            if call.name != prompts.CODE_TOOL.name or code is None:
                problem = (
                    f"unknown tool {call.name!r}" if call.name != prompts.CODE_TOOL.name else "the input has no code"
                )
                text = f'{problem}: the only tool is `python`, with input {{"code": "<python source>"}}'
                results.append(ToolResult(call.id, text, is_error=True))
                await self._record(turn, reply if position == 0 else None, code=None, error_text=text)
                continue
            sub_log = SubcallLog()
            children: list[str] = []
            started = time.time()
            try:
                with telemetry.code_span(self.session_id, code, tool_call_id=call.id) as span:
                    result = await self.sandbox.execute(
                        code, on_subcall=self._handler(turn, sub_log), on_call=self._call_handler(turn, children)
                    )
                    span.result(result)
            except CodeTooLarge as exc:
                results.append(ToolResult(call.id, str(exc), is_error=True))
                await self._record(turn, reply if position == 0 else None, code=code[:2000], error_text=str(exc))
                continue
            self.outcome.sub_calls.extend(sub_log.records)
            self.outcome.sub_usage = self.outcome.sub_usage + sub_log.usage
            text = tool_result_text(result, sub_log)
            results.append(ToolResult(call.id, text, is_error=result.error is not None))
            await self._record(
                turn,
                reply if position == 0 else None,
                code=code,
                result=result,
                sub_log=sub_log,
                started=started,
                children=children,
            )
            if result.final is not None:
                final = result.final
                break
        if final is not None:
            raise _RunEnded("completed", answer=final)
        # Every tool call needs a result, even those after an early FINAL (none here, since we broke out).
        self.messages.append(Message("user", list(results)))

    def _handler(self, turn: int, sub_log: SubcallLog) -> Any:
        async def on_progress(done: int, total: int) -> None:
            if self.progress is not None:
                value = self.step_progress.batch(done, total)
                message = f"step {turn + 1}: {done}/{total} sub-calls"
                await self.report(value, message, done=done, of=total, running=len(sub_log.records))

        return self.broker.handler(
            budget=self.budget, log=sub_log, default_model=self.config.sub_model, progress=on_progress
        )

    def _call_handler(self, turn: int, children: list[str]) -> CallHandler | None:
        """Serves rlm_query from the code: a nested run, recorded in ``children``."""
        if self.recursion is None:
            return None
        return self.recursion.handler(self, turn, children)

    async def report(
        self, value: float, message: str, *, done: int = 0, of: int | None = None, running: int = 0
    ) -> None:
        """A progress report for the current step; ``running`` counts sub-calls not yet in the outcome."""
        if self.progress is not None:
            await self.progress(
                Progress(
                    value=value,
                    total=self.config.max_iterations,
                    message=message,
                    step=self.step_progress.step + 1,
                    max_steps=self.config.max_iterations,
                    done=done,
                    of=of,
                    sub_calls=len(self.outcome.sub_calls) + running,
                )
            )

    async def _report(self, turn: int) -> None:
        calls = len(self.outcome.sub_calls)
        await self.report(turn + 1, f"step {turn + 1} done: {calls} sub-calls so far")

    async def _last_turn(self, system: str) -> None:
        """Out of iterations: one more turn, without running code, for the best answer so far."""
        self._say(prompts.final_turn_message(self.config.max_iterations))
        reply = await self._ask_root(system)
        await self._record(
            self.config.max_iterations, reply, final=reply.text or None, notes=["final turn after the iteration limit"]
        )
        message = f"the iteration limit ({self.config.max_iterations}) was reached"
        raise _RunEnded("limit_reached", answer=reply.text.strip() or None, message=message)

    async def _record(
        self,
        turn: int,
        reply: Completion | None,
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
        sub_log = sub_log or SubcallLog()
        step = Step(
            index=self._steps,
            turn=turn,
            started_at=started or time.time(),
            elapsed_ms=result.elapsed_ms if result else 0.0,
            root_text=reply.text if reply else None,
            root_input_tokens=reply.usage.input_tokens if reply else 0,
            root_output_tokens=reply.usage.output_tokens if reply else 0,
            root_latency_ms=reply.latency_ms if reply else 0.0,
            code=code,
            stdout=result.stdout if result else "",
            error=code_error(result) if result else None,
            final=result.final if result else final,
            sub_call_count=len(sub_log.records),
            sub_input_tokens=sub_log.usage.input_tokens,
            sub_output_tokens=sub_log.usage.output_tokens,
            sub_calls=sorted(sub_log.records, key=lambda r: r.started_at),
            child_runs=list(children or []),
            notes=(notes or []) + (result.notes if result else []) + ([error_text] if error_text else []),
        )
        self._steps += 1
        await self.trajectories.add_step(self.trajectory_id, step)


def _code_of(call: ToolCall) -> str | None:
    value = call.input.get("code") if isinstance(call.input, dict) else None
    return value if isinstance(value, str) and value.strip() else None
