"""``rlm_query`` runs: starting (or resuming) them, driving them in the foreground or background, stopping them.

A run holds its session (so idle expiry and eviction leave it alone) from the
moment it is accepted until it ends, whether the caller waits for it or polls
its trajectory. One session runs one query at a time. Closing a session cancels
its run and waits for the run to record how it ended (``cancelled``, with every
finished step) before the sandbox stops, so the run never sees its sandbox
vanish under it. A stopped run is resumed on its own session (revived after a
restart), or on another one of the same owner holding the corpus
(:mod:`rlm_mcp.core.runs.resume`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import anyio.abc

from rlm_mcp.config import Settings, describe_setting
from rlm_mcp.core.backends import backend_of
from rlm_mcp.core.ids import check_id
from rlm_mcp.core.runs import resume
from rlm_mcp.core.runs.contract import RunConfig, RunOutcome
from rlm_mcp.core.runs.journal import RunJournal
from rlm_mcp.core.runs.loop import RLMRun
from rlm_mcp.core.runs.recursion import Recursion
from rlm_mcp.core.session_state import Session
from rlm_mcp.core.sessions import SessionManager
from rlm_mcp.core.subcalls.broker import SubcallBroker
from rlm_mcp.core.trajectories import TrajectoryStore
from rlm_mcp.errors import InvalidInput, NotFound, RLMError
from rlm_mcp.models import ModelClient, ModelRouter
from rlm_mcp.models.pricing import PriceTable
from rlm_mcp.principals import LOCAL
from rlm_mcp.progress import ProgressReporter
from rlm_mcp.schemas import BudgetView, RLMQueryResult, RunStatus, TokenUsage, Trajectory
from rlm_mcp.store import Store
from rlm_mcp.telemetry.spans import run_span

MB = 1024 * 1024


@dataclass(frozen=True)
class Query:
    """What a caller asks for; unset limits fall back to the settings."""

    session_id: str | None
    """None only with ``resume``: then the run's own session."""
    query: str | None
    """The question; with ``resume``, a follow-up question or instruction (optional unless the run completed)."""
    root_model: str | None = None
    sub_model: str | None = None
    max_iterations: int | None = None
    max_sub_calls: int | None = None
    max_depth: int | None = None
    owner: str = LOCAL
    """The principal asking: only its own sessions can be run on, and only its own runs resumed."""
    max_tokens: int | None = None
    max_cost_usd: float | None = None
    resume: str | None = None
    """The trajectory id of a stopped run to continue."""


def result_of(run: RLMRun, session_id: str) -> RLMQueryResult:
    outcome, trajectory_id = run.outcome, run.trajectory_id
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
        cached_sub_calls=sum(1 for c in outcome.sub_calls if c.cached),
        cost_saved_usd=outcome.cost_saved_usd,
        budget=run.budget.view(),
        resumed=run.resumed.record if run.resumed else None,
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
        runs_store: Store,
    ):
        self.settings = settings
        self.runs_store = runs_store
        """Where runs keep their transcripts and REPL snapshots (:mod:`rlm_mcp.core.runs.journal`)."""
        self.sessions = sessions
        self.trajectories = trajectories
        self.router = router
        self.broker = broker
        self.prices = prices
        self.recursion = recursion
        self.background: anyio.abc.TaskGroup | None = None
        """Where ``wait=false`` runs go; set while the server runs."""
        self._active: dict[str, RLMRun] = {}
        self._resuming: set[str] = set()
        """Trajectories being resumed right now (a second resume of one is refused)."""
        self._ended: dict[str, anyio.Event] = {}
        """Set when a run has recorded its end (so a close can wait for it)."""

    @property
    def active(self) -> bool:
        return bool(self._active)

    @property
    def resuming(self) -> set[str]:
        """Stopped runs being prepared to go on (not yet running): their files must stay."""
        return set(self._resuming)

    @property
    def snapshot_bytes(self) -> int:
        return self.settings.snapshot_max_mb * MB

    def _config(self, query: Query, root_id: str, resumed: Trajectory | None) -> RunConfig:
        s = self.settings
        return RunConfig(
            query=resumed.query or "" if resumed else query.query or "",
            root_model=root_id,
            sub_model=query.sub_model or s.sub_model,
            max_iterations=query.max_iterations or s.max_iterations,
            max_sub_calls=s.max_sub_calls if query.max_sub_calls is None else query.max_sub_calls,
            timeout_s=s.run_timeout_s,
            root_max_tokens=s.root_max_tokens,
            sub_context_tokens=s.sub_context_tokens,
            max_depth=query.max_depth or s.max_depth,
            root_protocol=s.root_protocol,
            max_tokens=query.max_tokens if query.max_tokens is not None else s.max_tokens,
            max_cost_usd=query.max_cost_usd if query.max_cost_usd is not None else s.max_cost_usd,
        )

    def budget_of(self, session_id: str) -> tuple[str, BudgetView] | None:
        """The run in progress on a session and its budget, if one is."""
        for run in self._active.values():
            if run.session_id == session_id:
                return run.trajectory_id, run.budget.view()
        return None

    async def start(self, query: Query, *, wait: bool, progress: ProgressReporter | None) -> RLMQueryResult:
        if query.resume is None:
            if query.query is None:
                raise InvalidInput("query is required: the question to answer (only resume= goes on without one)")
            if not query.query.strip():
                raise InvalidInput("query is empty")
            return await self._start(query, None, wait, progress)
        resumed = await self.trajectories.get_owned(check_id(query.resume, "trajectory"), query.owner)
        resume.check(resumed, query.query, resumed.id in self._active or resumed.id in self._resuming)
        self._resuming.add(resumed.id)  # claimed before any wait: two resumes of one run cannot both start
        try:
            return await self._start(query, resumed, wait, progress)
        finally:
            self._resuming.discard(resumed.id)

    async def _start(
        self, query: Query, resumed: Trajectory | None, wait: bool, progress: ProgressReporter | None
    ) -> RLMQueryResult:
        session_id = query.session_id or (resumed.session_id if resumed else None)
        if session_id is None:
            raise InvalidInput("give session_id (from load_context), or resume=<trajectory_id> to continue a run")
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
        config = self._config(query, root_id, resumed)
        self._check_prices(config)
        session = await self._session(session_id, query.owner, resumed)
        session.busy += 1  # held from here to the end of the run: never evicted under it
        try:
            run = await self._prepare(query, config, session, client, progress if wait else None, resumed)
        except BaseException:
            self._release(session)
            raise
        if not wait:
            assert self.background is not None
            self.background.start_soon(self._drive, run, session)
            return result_of(run, session.id)
        await self._drive(run, session)
        return result_of(run, session.id)

    def _check_prices(self, config: RunConfig) -> None:
        """A dollar limit needs prices for the models it pays: refuse at once, not after money went unseen."""
        if config.max_cost_usd is None:
            return
        models = [config.root_model]
        if config.sub_model:
            models.append(self.router.client_for(config.sub_model)[1])
        unpriced = [m for m in models if self.prices.lookup(m) is None]
        if unpriced:
            raise InvalidInput(
                f"max_cost_usd needs a price for every model the run pays, and {', '.join(map(repr, unpriced))} "
                "has none in the price table: add it with RLM_PRICES_FILE, or use max_tokens instead"
            )

    async def _session(self, session_id: str, owner: str, resumed: Trajectory | None) -> Session:
        try:
            return await self.sessions.get(session_id, owner)
        except NotFound:
            if resumed is None or session_id != resumed.session_id:
                raise
            raise NotFound(
                f"the run's session {session_id!r} is gone (closed, or expired while idle): load the corpus again "
                "with load_context and pass its session_id along with resume"
            ) from None

    async def _prepare(
        self,
        query: Query,
        config: RunConfig,
        session: Session,
        client: ModelClient,
        progress: ProgressReporter | None,
        resumed: Trajectory | None,
    ) -> RLMRun:
        if session.info is None:
            raise InvalidInput(f"session {session.id!r} has no corpus; load one with load_context first")
        busy = [run.trajectory_id for run in self._active.values() if run.session_id == session.id]
        if busy:
            raise InvalidInput(
                f"session {session.id!r} already has a run in progress ({busy[0]}); follow it with get_trajectory "
                "or start another session"
            )
        point = None
        if resumed is None:
            trajectory = await self.trajectories.create(
                kind="run",
                session_id=session.id,
                status="running",
                query=config.query,
                root_model=config.root_model,
                sub_model=config.sub_model,
                corpus_chars=session.info.chars,
                owner=session.owner,
            )
            journal = RunJournal(self.runs_store, trajectory.id, snapshot_bytes=self.snapshot_bytes)
        else:
            point = await resume.prepare(
                resumed,
                runs_store=self.runs_store,
                sandbox=session.sandbox,
                session_id=session.id,
                config=config,
                query=query.query,
                snapshot_bytes=self.snapshot_bytes,
                prices=self.prices,
            )
            journal = RunJournal(self.runs_store, resumed.id, snapshot_bytes=self.snapshot_bytes)
            await journal.reset(point.messages, point.protocol)  # before the run reads as running again
            trajectory = await self.trajectories.reopen(
                resumed.id,
                message=None,
                answer=None,
                root_model=config.root_model,
                sub_model=config.sub_model,
                resumes=[*resumed.resumes, point.record],
            )
        if trajectory.id not in session.runs:
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
            owner=session.owner,
            journal=journal,
            resumed=point,
        )
        self._active[run.trajectory_id] = run
        self._ended[run.trajectory_id] = anyio.Event()
        return run

    async def _drive(self, run: RLMRun, session: Session) -> RunOutcome:
        try:
            config = run.config
            with run_span(
                trajectory_id=run.trajectory_id,
                session_id=run.session_id,
                backend=backend_of(run.root),
                root_model=config.root_model,
                root_max_tokens=config.root_max_tokens,
                sub_model=config.sub_model,
                max_iterations=config.max_iterations,
                max_sub_calls=config.max_sub_calls,
            ) as span:
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
