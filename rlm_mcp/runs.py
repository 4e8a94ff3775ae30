"""``rlm_query`` runs: starting them, driving them in the foreground or background, stopping them.

A run holds its session (so idle expiry and eviction leave it alone) from the
moment it is accepted until it ends, whether the caller waits for it or polls
its trajectory. One session runs one query at a time. Closing a session cancels
its run and waits for the run to record how it ended (``cancelled``, with every
finished step) before the sandbox stops, so the run never sees its sandbox
vanish under it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import anyio.abc

from rlm_mcp.config import Settings, describe_setting
from rlm_mcp.errors import InvalidInput, RLMError
from rlm_mcp.loop import RLMRun, RunConfig, RunOutcome
from rlm_mcp.models import ModelClient, ModelRouter
from rlm_mcp.pricing import PriceTable
from rlm_mcp.principals import LOCAL
from rlm_mcp.progress import ProgressReporter
from rlm_mcp.recursion import Recursion
from rlm_mcp.schemas import RLMQueryResult, RunStatus, TokenUsage
from rlm_mcp.sessions import Session, SessionManager
from rlm_mcp.subcalls import SubcallBroker
from rlm_mcp.telemetry import run_span
from rlm_mcp.trajectories import TrajectoryStore


@dataclass(frozen=True)
class Query:
    """What a caller asks for; unset limits fall back to the settings."""

    session_id: str
    query: str
    root_model: str | None = None
    sub_model: str | None = None
    max_iterations: int | None = None
    max_sub_calls: int | None = None
    max_depth: int | None = None
    owner: str = LOCAL
    """The principal asking: only its own sessions can be run on."""


def result_of(outcome: RunOutcome, trajectory_id: str, session_id: str) -> RLMQueryResult:
    return RLMQueryResult(
        status=outcome.status,
        answer=outcome.answer,
        message=outcome.message,
        trajectory_id=trajectory_id,
        session_id=session_id,
        iterations=outcome.iterations,
        sub_calls=len(outcome.sub_calls),
        usage=TokenUsage(
            root_input_tokens=outcome.root_usage.input_tokens,
            root_output_tokens=outcome.root_usage.output_tokens,
            sub_input_tokens=outcome.sub_usage.input_tokens,
            sub_output_tokens=outcome.sub_usage.output_tokens,
        ),
        cost_usd=outcome.cost_usd,
        elapsed_s=outcome.elapsed_s,
    )


class Runs:
    def __init__(
        self,
        *,
        settings: Settings,
        sessions: SessionManager,
        trajectories: TrajectoryStore,
        router: ModelRouter,
        broker: SubcallBroker,
        prices: PriceTable,
        recursion: Recursion,
    ):
        self.settings = settings
        self.sessions = sessions
        self.trajectories = trajectories
        self.router = router
        self.broker = broker
        self.prices = prices
        self.recursion = recursion
        self.background: anyio.abc.TaskGroup | None = None
        """Where ``wait=false`` runs go; set while the server runs."""
        self._active: dict[str, RLMRun] = {}
        self._ended: dict[str, anyio.Event] = {}
        """Set when a run has recorded its end (so a close can wait for it)."""

    @property
    def active(self) -> bool:
        return bool(self._active)

    def _config(self, query: Query, root_id: str) -> RunConfig:
        s = self.settings
        return RunConfig(
            query=query.query,
            root_model=root_id,
            sub_model=query.sub_model or s.sub_model,
            max_iterations=query.max_iterations or s.max_iterations,
            max_sub_calls=s.max_sub_calls if query.max_sub_calls is None else query.max_sub_calls,
            timeout_s=s.run_timeout_s,
            root_max_tokens=s.root_max_tokens,
            sub_context_tokens=s.sub_context_tokens,
            max_depth=query.max_depth or s.max_depth,
            root_protocol=s.root_protocol,
        )

    async def start(self, query: Query, *, wait: bool, progress: ProgressReporter | None) -> RLMQueryResult:
        if not query.query.strip():
            raise InvalidInput("query is empty")
        root = query.root_model or self.settings.root_model
        if not root:
            raise InvalidInput(
                "no root model is configured: pass the root_model argument (a Bedrock model id, openai:<model> or "
                f"sampling), or start the server with {describe_setting('root_model')} set"
            )
        if not wait and self.background is None:
            raise RLMError("background runs need a running server")
        client, root_id = self.router.client_for(root)
        await client.check()
        session = await self.sessions.get(query.session_id, query.owner)
        session.busy += 1  # held from here to the end of the run: never evicted under it
        try:
            run = await self._prepare(query, session, client, root_id, progress if wait else None)
        except BaseException:
            self._release(session)
            raise
        if not wait:
            assert self.background is not None
            self.background.start_soon(self._drive, run, session)
            return result_of(run.outcome, run.trajectory_id, session.id)
        return result_of(await self._drive(run, session), run.trajectory_id, session.id)

    async def _prepare(
        self, query: Query, session: Session, client: ModelClient, root_id: str, progress: ProgressReporter | None
    ) -> RLMRun:
        if session.info is None:
            raise InvalidInput(f"session {session.id!r} has no corpus; load one with load_context first")
        busy = [run.trajectory_id for run in self._active.values() if run.session_id == session.id]
        if busy:
            raise InvalidInput(
                f"session {session.id!r} already has a run in progress ({busy[0]}); follow it with get_trajectory "
                "or start another session"
            )
        config = self._config(query, root_id)
        trajectory = await self.trajectories.create(
            kind="run",
            session_id=session.id,
            status="running",
            query=query.query,
            root_model=root_id,
            sub_model=config.sub_model,
            corpus_chars=session.info.chars,
            owner=session.owner,
        )
        session.runs.append(trajectory.id)
        run = RLMRun(
            config=config,
            trajectory_id=trajectory.id,
            session_id=session.id,
            sandbox=session.sandbox,
            corpus=session.info,
            root=client,
            broker=self.broker,
            trajectories=self.trajectories,
            prices=self.prices,
            progress=progress,
            recursion=self.recursion,
        )
        self._active[run.trajectory_id] = run
        self._ended[run.trajectory_id] = anyio.Event()
        return run

    async def _drive(self, run: RLMRun, session: Session) -> RunOutcome:
        try:
            with run_span(run.config, trajectory_id=run.trajectory_id, session_id=run.session_id) as span:
                outcome = await run.run()
                span.finish(await self.trajectories.get(run.trajectory_id))
            return outcome
        finally:
            self._active.pop(run.trajectory_id, None)
            self.trajectories.forget(run.trajectory_id)
            self._release(session)
            ended = self._ended.pop(run.trajectory_id, None)
            if ended is not None:
                ended.set()

    @staticmethod
    def _release(session: Session) -> None:
        session.busy -= 1
        session.last_used = time.time()

    async def cancel_session(self, session_id: str) -> None:
        """Cancel the session's run and wait until it has recorded its end as ``cancelled``.

        The wait is bounded: code that ignores its interrupt is killed after the grace period,
        and past that the session is closed anyway (the run then records the sandbox's end).
        """
        waits = []
        for run in list(self._active.values()):
            if run.session_id == session_id:
                run.cancel("cancelled", "the session was closed while the run was in progress")
                ended = self._ended.get(run.trajectory_id)
                if ended is not None:
                    waits.append(ended)
        with anyio.move_on_after(self.settings.kill_grace_s + 10):
            for ended in waits:
                await ended.wait()

    def mark_all(self, status: RunStatus, message: str) -> None:
        """How runs still going will be recorded when they are cancelled (e.g. by a shutdown)."""
        for run in self._active.values():
            run.on_cancel(status, message)
