"""The RLM loop: a root model writes code against the session's sandbox until it has an answer.

The root gets a system prompt, the query and metadata about the corpus (never
the corpus). It runs code in one of two ways (:data:`~rlm_mcp.core.runs.replies.Protocol`):
by calling the one tool, ``python``, whose input is ``{"code": string}``, or,
for backends without tool calling, by writing ```` ```repl ```` blocks in its
reply; ``RLM_ROOT_PROTOCOL`` picks one, or ``auto`` follows what the backend
can do. Every reply is read by :mod:`rlm_mcp.core.runs.replies`, whatever shape it has;
the code runs in the sandbox and its output (errors included) goes back, so
the root can look, fix and go on. The run ends when code (or the reply's text)
calls ``FINAL``/``FINAL_VAR``, when the root answers in plain text, or at a
limit: iterations (then the root gets one last turn to answer without code),
the run's sub-call budget (the code sees a catchable error), or wall-clock
time. Every turn is written to the trajectory as it finishes.
"""

from __future__ import annotations

import logging
import time
from dataclasses import astuple
from typing import TYPE_CHECKING, Any

import anyio

from rlm_mcp.core.backends import backend_of
from rlm_mcp.core.runs import prompts, replies, turns
from rlm_mcp.core.runs.contract import NestedRun, Nesting, RunConfig, RunOutcome
from rlm_mcp.core.runs.replies import Protocol, Reading
from rlm_mcp.core.subcalls import budget as budgets
from rlm_mcp.core.subcalls.broker import Budget, SubcallBroker, SubcallLog
from rlm_mcp.core.subcalls.cache import Occurrences
from rlm_mcp.core.trajectories import TrajectoryStore
from rlm_mcp.errors import ModelError, ModelErrorKind
from rlm_mcp.models import Block, Completion, Message, ModelClient, TextBlock, ToolCall, ToolResult
from rlm_mcp.models.pricing import PriceTable, run_cost
from rlm_mcp.principals import LOCAL
from rlm_mcp.progress import Progress, ProgressReporter, StepProgress
from rlm_mcp.schemas import RunStatus
from rlm_mcp.store import StoreError
from rlm_mcp.telemetry import spans as telemetry
from sandbox import CallHandler, LoadInfo, Sandbox, SandboxError

if TYPE_CHECKING:
    from rlm_mcp.core.runs.journal import RunJournal
    from rlm_mcp.core.runs.resume import ResumePoint

log = logging.getLogger(__name__)


class _RunEnded(Exception):
    def __init__(self, status: RunStatus, answer: str | None = None, message: str | None = None):
        super().__init__(message or status)
        self.status, self.answer, self.message = status, answer, message


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
        recursion: Nesting | None = None,
        budget: Budget | None = None,
        owner: str = LOCAL,
        journal: RunJournal | None = None,
        resumed: ResumePoint | None = None,
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
        self.budget = budget or Budget(config.max_sub_calls, max_tokens=config.max_tokens,
                                       max_cost_usd=config.max_cost_usd)  # fmt: skip
        """Shared with nested runs, so the whole tree of runs stays within one budget."""
        self.owner = owner
        self.seen = Occurrences()
        """Repeats of each sub-call request in this run, for the cache (:mod:`rlm_mcp.core.subcalls.cache`)."""
        self.journal = journal
        """Where the transcript and REPL state are kept for a resume (None for nested runs)."""
        self.resumed = resumed
        self.first_turn = resumed.first_turn if resumed else 0
        self.outcome = RunOutcome(status="running")
        self.messages: list[Message] = []
        self._started = time.monotonic()
        self.step_count = resumed.steps if resumed else 0
        self.step_progress = StepProgress(0)
        """Where the progress value stands inside the current step (sub-calls and nested runs move it).

        Counted from this run's first turn, so a resumed run's value goes from 0 to its own
        ``max_iterations`` as MCP's ``total`` says, while its messages name the turn of the whole run."""
        self._scope: anyio.CancelScope | None = None
        self._cancel_status: tuple[RunStatus, str] = ("cancelled", "the run was cancelled")
        self.protocol: Protocol = "tools"
        self.unrecorded: tuple[Completion, Reading] | None = None
        """The current turn's reply, until its first step is recorded."""
        self._notes: list[str] = []
        """Notes for the next recorded step (e.g. a switch to the text protocol)."""
        self._asked_for_final = False
        """In the text protocol, a plain-text reply is asked once for FINAL before it counts as the answer."""

    def take_notes(self) -> list[str]:
        """Notes waiting for the next recorded step (and clears them)."""
        notes, self._notes = self._notes, []
        return notes

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
        except StoreError as exc:
            self._end("failed", message=f"the run stopped because its trajectory could not be written: {exc}")
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
        costs = run_cost(self.prices, self.config.root_model, outcome.root_usage, outcome.sub_calls)
        outcome.cost_usd, outcome.cost_saved_usd = costs
        if self.journal is not None:
            await self.journal.sync(self.messages, self.protocol)
        totals = {
            "cost_usd": outcome.cost_usd,
            "cost_saved_usd": outcome.cost_saved_usd,
            "elapsed_s": outcome.elapsed_s,
        }
        if self.resumed is not None:  # the trajectory's totals are the whole run's
            totals = self.resumed.totals(outcome)
        try:
            await self.trajectories.update(
                self.trajectory_id, status=outcome.status, answer=outcome.answer, message=outcome.message, **totals
            )
        except StoreError as exc:  # kept in memory and written once there is room; the caller hears it now
            log.warning("run %s: %s", self.trajectory_id, exc)
            if outcome.status != "failed" or not (outcome.message or "").startswith("the run stopped because"):
                outcome.message = f"{outcome.message + '; ' if outcome.message else ''}{exc}"

    # -- the loop --------------------------------------------------------------------------

    async def _loop(self) -> None:
        if self.resumed is None:
            self.messages.append(Message("user", [TextBlock(prompts.first_message(self.config.query, self.corpus))]))
            self.protocol = self._choose_protocol()
        else:
            self.messages, self.protocol = list(self.resumed.messages), self.resumed.protocol
        await self._keep()
        for index in range(self.config.max_iterations):
            turn = self.first_turn + index
            with telemetry.iteration_span(turn + 1):
                self.step_progress = StepProgress(index)
                await self.report(self.step_progress.begin(), f"step {turn + 1}: the root model is writing")
                reply = await self._ask_root()
                self.outcome.iterations = index + 1
                await self._turn(turn, reply)
                await self._keep()
                await self._report(turn)
        await self._last_turn()

    async def _keep(self) -> None:
        """The transcript so far, for a resume."""
        if self.journal is not None:
            await self.journal.sync(self.messages, self.protocol)

    def _choose_protocol(self) -> Protocol:
        setting = self.config.root_protocol
        if setting != "auto":
            return setting
        return "text" if self.root.tool_support(self.config.root_model) is False else "tools"

    def _system(self) -> str:
        return prompts.system_prompt(
            sub_context_tokens=self.config.sub_context_tokens,
            max_iterations=self.config.max_iterations,
            max_sub_calls=self.config.max_sub_calls,
            can_recurse=self.can_recurse,
            protocol=self.protocol,
        )

    async def _ask_root(self) -> Completion:
        model, max_tokens = self.config.root_model, self.config.root_max_tokens
        chars = budgets.conversation_chars(self._system(), self.messages)
        over = self.budget.overrun(budgets.estimate(self.prices, model, [chars], max_tokens))
        if over is not None:
            message = f"the run's budget cannot cover another root turn ({over}); {self.budget.left().lower()}"
            raise _RunEnded("limit_reached", message=message)
        with telemetry.model_span(
            model, backend=backend_of(self.root), role="root", max_tokens=self.config.root_max_tokens
        ) as span:
            try:
                reply = await self._chat()
            except ModelError as exc:
                if not self._may_switch_to_text(exc):
                    raise
                self.protocol = "text"
                self._notes.append(f"the root model has no tool calling ({exc}); it writes code in ```repl blocks")
                reply = await self._chat()
            span.completed(reply)
        self.outcome.root_usage = self.outcome.root_usage + reply.usage
        usage = reply.usage
        self.budget.charge(usage.input_tokens + usage.output_tokens, self.prices.cost(model, *astuple(usage)))
        return reply

    async def _chat(self) -> Completion:
        return await self.root.chat(
            self.config.root_model,
            system=self._system(),
            messages=self.messages,
            tools=[prompts.CODE_TOOL] if self.protocol == "tools" else [],
            max_tokens=self.config.root_max_tokens,
        )

    def _may_switch_to_text(self, exc: ModelError) -> bool:
        """In ``auto``, a backend that refuses tools before any tool was used gets the text protocol instead."""
        used_tools = any(isinstance(b, ToolCall | ToolResult) for m in self.messages for b in m.content)
        return exc.kind == ModelErrorKind.TOOLS_UNSUPPORTED and self.config.root_protocol == "auto" and not used_tools

    def _say(self, text: str) -> None:
        self.messages.append(Message("user", [TextBlock(text)]))

    async def _turn(self, turn: int, reply: Completion) -> None:
        reading = replies.read(reply, self.protocol)
        self.unrecorded = (reply, reading)
        self._remember(reading)
        await self._keep()
        words = prompts.protocol_text(self.protocol)
        if reading.overflow:
            await self.record(turn)
            raise _RunEnded("failed", message="the root's conversation outgrew its context window")
        if reading.blocked:
            await self.record(turn)
            raise _RunEnded("failed", message=f"the root's reply was blocked ({reply.stop_reason})")
        if reading.acts:
            feedback = await turns.act(self, turn, reading)
            self.messages.append(feedback.message())  # every tool call is answered, even when the run ends here
            if feedback.final is not None:
                raise _RunEnded("completed", answer=feedback.final)
        elif reading.malformed:
            await self.record(turn, notes=[f"{reply.stop_reason}; asked again"])
            self._say(prompts.MALFORMED_MESSAGE)
        elif reading.answer is not None and (words.plain_text is None or self._asked_for_final):
            await self.record(turn, final=reading.answer)
            raise _RunEnded("completed", answer=reading.answer)
        elif reading.answer is not None:
            assert words.plain_text is not None
            self._asked_for_final = True
            await self.record(turn, notes=["plain text without code or FINAL; asked whether it is the answer"])
            self._say(words.plain_text)
        else:
            await self.record(turn, notes=["empty reply; asked again"])
            self._say((prompts.ONLY_REASONING if reading.reasoning else "") + words.empty_reply)

    def _remember(self, reading: Reading) -> None:
        """The reply as the conversation keeps it: without its reasoning, with tool inputs as ``{"code": ...}``."""
        blocks: list[Block] = [TextBlock(reading.text)] if reading.text else []
        if self.protocol == "tools":
            blocks.extend(reading.calls)
        self.messages.append(Message("assistant", blocks or [TextBlock("(no output)")]))

    def subcall_handler(self, turn: int, sub_log: SubcallLog) -> Any:
        async def on_progress(done: int, total: int) -> None:
            if self.progress is not None:
                value = self.step_progress.batch(done, total)
                message = f"step {turn + 1}: {done}/{total} sub-calls"
                await self.report(value, message, done=done, of=total, running=len(sub_log.records))

        return self.broker.handler(
            budget=self.budget,
            log=sub_log,
            default_model=self.config.sub_model,
            progress=on_progress,
            owner=self.owner,
            seen=self.seen,
        )

    def call_handler(self, turn: int, children: list[str]) -> CallHandler | None:
        """Serves rlm_query from the code: a nested run, recorded in ``children``."""
        if self.recursion is None:
            return None
        return self.recursion.handler(self, turn, children)

    def nested(
        self,
        *,
        config: RunConfig,
        trajectory_id: str,
        sandbox: Sandbox,
        corpus: LoadInfo,
        progress: ProgressReporter,
    ) -> NestedRun:
        """A run one level deeper (:class:`~rlm_mcp.core.runs.contract.Parent`): this run's models, budget and
        nesting, and its owner, so its sub-calls use the owner's cache and never another principal's."""
        return RLMRun(
            config=config,
            trajectory_id=trajectory_id,
            session_id=self.session_id,
            sandbox=sandbox,
            corpus=corpus,
            root=self.root,
            broker=self.broker,
            trajectories=self.trajectories,
            prices=self.prices,
            progress=progress,
            depth=self.depth + 1,
            recursion=self.recursion,
            budget=self.budget,
            owner=self.owner,
        )

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
                    step=self.first_turn + self.step_progress.step + 1,
                    max_steps=self.first_turn + self.config.max_iterations,
                    done=done,
                    of=of,
                    sub_calls=len(self.outcome.sub_calls) + running,
                )
            )

    async def _report(self, turn: int) -> None:
        calls = len(self.outcome.sub_calls)
        await self.report(turn - self.first_turn + 1, f"step {turn + 1} done: {calls} sub-calls so far")

    async def _last_turn(self) -> None:
        """Out of iterations: one more turn, without running code, for the best answer so far."""
        self._say(prompts.final_turn_message(self.config.max_iterations, self.protocol))
        reply = await self._ask_root()
        reading = replies.read(reply, self.protocol)
        self.unrecorded = (reply, reading)
        self._remember(reading)  # kept for a resume, its tool calls answered as the APIs require
        if self.protocol == "tools" and reading.calls:
            self.messages.append(
                Message("user", [ToolResult(c.id, prompts.NOT_RUN_AT_LIMIT, True) for c in reading.calls])
            )
        self._notes.append("final turn after the iteration limit")
        answer = reading.text or None
        turn = self.first_turn + self.config.max_iterations
        if reading.final is not None:
            answer = await turns.resolve_final(self, turn, reading.final, turns.Feedback()) or answer
        if self.unrecorded is not None:
            await self.record(turn, final=answer)
        message = f"the iteration limit ({self.config.max_iterations}) was reached"
        raise _RunEnded("limit_reached", answer=answer, message=message)

    async def record(self, turn: int, **details: Any) -> None:
        """One step of the trajectory (:func:`rlm_mcp.core.runs.turns.record`)."""
        await turns.record(self, turn, **details)
