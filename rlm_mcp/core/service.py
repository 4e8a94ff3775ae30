"""The core of rlm-mcp, usable without MCP: every tool is a method here.

``rlm_mcp.server.app`` maps MCP tools onto these methods and the CLI calls them
directly. Errors meant for the caller are raised as :class:`~rlm_mcp.errors.RLMError`.
The three main tools are peers, each in a module of its own
(:mod:`~rlm_mcp.core.loading`, :mod:`~rlm_mcp.core.repl_exec`, :mod:`~rlm_mcp.core.runs.control`);
this class builds the parts they share and keeps the server's background work.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, Literal

import anyio
import anyio.abc
import anyio.to_thread

from rlm_mcp import viewer
from rlm_mcp.config import Settings
from rlm_mcp.core.guide import guide_text
from rlm_mcp.core.ids import check_id
from rlm_mcp.core.loading import Loader
from rlm_mcp.core.repl_exec import ReplExec
from rlm_mcp.core.retention import InUse, Report, Retention
from rlm_mcp.core.runs.control import Query, Runs
from rlm_mcp.core.runs.recursion import Recursion, sandbox_factory
from rlm_mcp.core.session_state import sandbox_limits
from rlm_mcp.core.sessions import SessionManager
from rlm_mcp.core.subcalls.broker import SubcallBroker
from rlm_mcp.core.subcalls.cache import open_cache
from rlm_mcp.core.trajectories import TrajectoryStore
from rlm_mcp.core.trajectory_summary import summarize
from rlm_mcp.errors import NotFound, Redactor, RLMError
from rlm_mcp.models import ModelRouter
from rlm_mcp.models.pricing import PriceTable
from rlm_mcp.principals import LOCAL
from rlm_mcp.progress import ProgressReporter
from rlm_mcp.schemas import (
    BudgetReport,
    CloseSessionResult,
    LoadContextResult,
    ReplExecResult,
    RLMQueryResult,
    SessionInfo,
    SessionList,
    StorageUsage,
    Trajectory,
)
from rlm_mcp.sources import Sources
from rlm_mcp.store import StoreError, open_store
from rlm_mcp.viewer.index import render_index
from sandbox.template import WorkerTemplate

log = logging.getLogger(__name__)
USAGE_TTL_S = 10.0
"""list_sessions measures the stored data again when its figures are older than this."""


class RLMService:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.store = open_store(settings)
        self.scrub = Redactor(
            {
                str(Path(__file__).resolve().parent.parent): "<server>",
                sys.prefix: "<python>",
                sys.base_prefix: "<python>",
                str(settings.data_dir): "<data dir>",
                self.store.url: "<store>",
                str(Path.home()): "~",
            }
        )
        """Applied by the MCP layer to every error message it returns."""
        self.trajectories = TrajectoryStore(self.store.sub("trajectories"))
        self.sources = Sources(
            roots=settings.allowed_roots,
            corpora_dir=settings.data_dir / "corpora",
            aws_region=settings.aws_region,
            shared=self.store.sub("corpora"),
            allowed_s3=settings.allowed_s3,
            private=[settings.data_dir],
        )
        self.template = WorkerTemplate(workdir_parent=settings.data_dir / "work") if settings.worker_template else None
        self.sessions = SessionManager(
            settings, self.trajectories, self.store.sub("sessions"), self.sources.inline, self.template
        )
        self.retention = Retention(settings, self.store, settings.data_dir / "corpora")
        self._usage: StorageUsage | None = None
        self.router = ModelRouter(settings)
        self.prices = PriceTable(settings.prices_file)
        self.cache = open_cache(self.store, settings)
        self.broker = SubcallBroker(settings, self.router, self.prices, self.cache)
        self._background: anyio.abc.TaskGroup | None = None
        self.recursion = Recursion(
            new_sandbox=sandbox_factory(sandbox_limits(settings), self.sessions.workdirs, self.template),
            store_text=self.sources.inline.put,
        )
        self.loader = Loader(settings, self.sessions, self.sources, self.trajectories, self._stored_changed)
        self.repl = ReplExec(settings, self.sessions, self.trajectories, self.broker)
        self.runs = Runs(
            settings=settings,
            sessions=self.sessions,
            trajectories=self.trajectories,
            router=self.router,
            broker=self.broker,
            prices=self.prices,
            recursion=self.recursion,
            runs_store=self.store.sub("runs"),
        )

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[RLMService]:
        """Background work (idle-session expiry, ``wait=false`` runs) while the server runs.

        At exit, runs still going are marked interrupted and every sandbox stops.
        """
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        await anyio.to_thread.run_sync(self.store.check)
        with contextlib.suppress(OSError, StoreError):  # logged; a clean-up that fails never stops the server
            await self.collect_garbage()
        async with self._worker_template():
            try:
                async with anyio.create_task_group() as tg:
                    self._background = self.runs.background = tg
                    if self.template is not None:
                        tg.start_soon(self.template.warm)
                    tg.start_soon(self.router.warm, [self.settings.sub_model, self.settings.root_model])
                    tg.start_soon(self._expire_loop)
                    tg.start_soon(self._gc_loop)
                    tg.start_soon(self.trajectories.keep_leases)
                    tg.start_soon(self.trajectories.keep_writing)
                    try:
                        yield self
                    finally:
                        self.runs.mark_all("interrupted", "the server shut down while this run was in progress")
                        tg.cancel_scope.cancel()
            finally:
                self._background = self.runs.background = None
                with anyio.CancelScope(shield=True):
                    await self.sessions.aclose()
                    await self.router.aclose()

    @contextlib.asynccontextmanager
    async def _worker_template(self) -> AsyncIterator[None]:
        """The template that forks sandbox workers runs as long as the server (``RLM_WORKER_TEMPLATE``)."""
        if self.template is None:
            yield
            return
        async with self.template:
            yield

    def spawn(self, fn: Callable[[], Awaitable[Any]]) -> None:
        """Run ``fn`` in the background for as long as the server runs."""
        if self._background is None:
            raise RLMError("background work needs a running server")
        self._background.start_soon(fn)

    @property
    def busy(self) -> bool:
        """Work in progress: a run, or a request holding a session (the /ping health check reports it)."""
        return self.runs.active or any(s.busy for s in self.sessions.live())

    def _stored_changed(self) -> None:
        """The stored data changed: list_sessions measures it again."""
        self._usage = None

    # -- retention ------------------------------------------------------------------------

    def _in_use(self) -> InUse:
        """What this process's sessions and runs use, which no clean-up may remove."""
        used = InUse()
        for session in self.sessions.live():
            used.sessions.add(session.id)
            used.trajectories.add(session.trajectory_id)
            used.trajectories.update(session.runs)
            used.files.update(d.path for d in session.sandbox.documents)
        used.trajectories.update(self.trajectories.in_progress())
        used.trajectories.update(self.runs.resuming)
        return used

    async def collect_garbage(self, *, dry_run: bool = False) -> Report:
        """Remove stored data past its limits that nobody uses, and log what the data directory holds."""
        in_use = self._in_use()  # read here, on the event loop that changes it
        try:
            report = await anyio.to_thread.run_sync(lambda: self.retention.collect(in_use, dry_run=dry_run))
        except (OSError, StoreError) as exc:
            log.warning("the clean-up of %s failed (it is tried again later): %s", self.store.url, exc)
            raise
        self._usage = report.usage
        self.sessions.forget_evicted({i.name.removesuffix(".json") for i in report.removed if i.kind == "sessions"})
        log.info("stored data: %s", report.summary())
        return report

    async def storage_usage(self) -> StorageUsage:
        """What the stored data takes per kind: measured again after a load or a close, or when the last
        figures are older than USAGE_TTL_S (trajectories grow with every step)."""
        if self._usage is None or time.time() - self._usage.measured_at > USAGE_TTL_S:
            self._usage = await anyio.to_thread.run_sync(self.retention.usage)
        return self._usage

    async def _gc_loop(self) -> None:
        while True:
            await anyio.sleep(self.settings.gc_interval_s)
            with contextlib.suppress(OSError, StoreError):
                await self.collect_garbage()

    async def _expire_loop(self) -> None:
        period = min(60.0, max(self.settings.session_idle_timeout_s / 4, 0.5))
        while True:
            await anyio.sleep(period)
            try:
                await self.sessions.expire_idle()
            except Exception:
                log.exception("idle-session expiry failed")

    # -- the three tools: peers in their own modules ----------------------------------------

    async def load_context(
        self,
        *,
        content: str | None = None,
        path: str | None = None,
        name: str | None = None,
        session_id: str | None = None,
        encoding: str = "utf-8",
        errors: str = "strict",
        include: list[str] | None = None,
        exclude: list[str] | None = None,
        format: Literal["auto", "text"] = "auto",
        corpus_id: str | None = None,
        progress: ProgressReporter | None = None,
        owner: str = LOCAL,
    ) -> LoadContextResult:
        """A corpus loaded into a new session, or added to one (:class:`~rlm_mcp.core.loading.Loader`)."""
        return await self.loader.load(
            content=content,
            path=path,
            name=name,
            session_id=session_id,
            encoding=encoding,
            errors=errors,
            include=include,
            exclude=exclude,
            format=format,
            corpus_id=corpus_id,
            progress=progress,
            owner=owner,
        )

    async def repl_exec(
        self, session_id: str, code: str, *, progress: ProgressReporter | None = None, owner: str = LOCAL
    ) -> ReplExecResult:
        """Code run in a session's sandbox by the caller's model (:class:`~rlm_mcp.core.repl_exec.ReplExec`)."""
        return await self.repl.run(session_id, code, progress=progress, owner=owner)

    # -- rlm_query ----------------------------------------------------------------------------

    async def rlm_query(
        self,
        session_id: str | None,
        query: str | None,
        *,
        wait: bool = True,
        progress: ProgressReporter | None = None,
        owner: str = LOCAL,
        **options: Any,
    ) -> RLMQueryResult:
        """A run over a session's corpus.

        ``options`` are :class:`~rlm_mcp.core.runs.control.Query`'s (models, limits, and ``resume``,
        the trajectory id of a stopped run to continue: :mod:`rlm_mcp.core.runs.resume`).
        """
        asked = Query(session_id, query, owner=owner, **options)
        return await self.runs.start(asked, wait=wait, progress=progress)

    # -- sessions and trajectories ----------------------------------------------------------

    async def list_sessions(self, owner: str = LOCAL) -> SessionList:
        """The live sessions of ``owner`` (on this process), and nobody else's."""
        now = time.time()
        sessions = []
        for s in self.sessions.live():
            if s.owner != owner:
                continue
            info = s.info
            sessions.append(
                SessionInfo(
                    session_id=s.id,
                    trajectory_id=s.trajectory_id,
                    created_at=s.created_at,
                    idle_s=0.0 if s.busy else round(now - s.last_used, 3),
                    type=info.type if info else "str",
                    documents=info.documents if info else 0,
                    chars=info.chars if info else 0,
                    busy=s.busy > 0,
                    sub_calls_used=s.budget.used,
                    sub_call_budget=s.budget.limit,
                    budget=s.budget.view(),
                    runs=list(s.runs),
                )
            )
        storage: StorageUsage | None = None
        if owner == LOCAL:  # the figures are the whole server's: not for one of several authenticated principals
            try:
                storage = await self.storage_usage()
            except (OSError, StoreError) as exc:
                log.warning("could not measure the stored data: %s", exc)
        return SessionList(sessions=sessions, max_sessions=self.settings.max_sessions, storage=storage)

    async def get_budget(self, session_id: str, owner: str = LOCAL) -> BudgetReport:
        """What the session's repl_exec sub-calls, and the run in progress on it, may still spend."""
        session = await self.sessions.get(session_id, owner)
        running = self.runs.budget_of(session.id)
        return BudgetReport(
            session_id=session.id,
            session=session.budget.view(),
            run_id=running[0] if running else None,
            run=running[1] if running else None,
        )

    async def close_session(self, session_id: str, owner: str = LOCAL) -> CloseSessionResult:
        check_id(session_id, "session")
        if not await self.sessions.owns(session_id, owner):
            raise NotFound(f"no session {session_id!r} to close")
        await self.runs.cancel_session(session_id)
        if not await self.sessions.close(session_id):
            raise NotFound(f"no session {session_id!r} to close")
        self._usage = None
        return CloseSessionResult(session_id=session_id, closed=True)

    async def get_trajectory(self, trajectory_id: str, detail: str = "summary", owner: str = LOCAL) -> Trajectory:
        trajectory = await self.trajectories.get_owned(trajectory_id, owner)
        shown = trajectory.model_copy(deep=True) if detail == "full" else summarize(trajectory)
        # Where a damaged record lies is said relative to the store: the server's own paths stay its own.
        shown.damaged = [d.model_copy(update={"where": self.scrub(d.where)}) for d in shown.damaged]
        return shown

    async def trajectory_owner(self, trajectory_id: str) -> str:
        """Who owns a trajectory (for the viewer's signed links, which name no principal); NotFound if none."""
        return (await self.trajectories.get(check_id(trajectory_id, "trajectory"))).owner

    async def trajectory_page(self, trajectory_id: str, owner: str = LOCAL) -> str:
        """The trajectory (with its nested runs, which share its owner) as a self-contained HTML page."""

        async def load(wanted: str) -> Trajectory:
            return await self.trajectories.get_owned(wanted, owner)

        return await viewer.render_trajectory(trajectory_id, load, self.prices)

    async def run_list(self, *, owner: str = LOCAL, limit: int = 50) -> list[Trajectory]:
        """The owner's runs a person would look for, newest first: top-level rlm_query runs and sessions with steps.

        Another principal's runs are never read into the list, however recent (the same rule as
        :meth:`get_trajectory`).
        """

        def wanted(t: Trajectory) -> bool:
            shown = (t.kind == "run" and t.parent_id is None) or (t.kind == "session" and bool(t.steps))
            return shown and t.owner == owner

        runs = await self.trajectories.recent(limit, where=wanted, scan=limit * 10)
        runs.sort(key=lambda t: t.created_at, reverse=True)
        return runs

    async def runs_page(self, *, owner: str = LOCAL, link: Callable[[str], str] | None = None) -> str:
        """The index of the owner's runs (``/trajectories/``) as a self-contained HTML page.

        ``link`` gives, for a trajectory id, what opens its page for this owner in a browser (the server's signed
        link when it authenticates); without it the page links to the bare ``/trajectories/<id>``.
        """
        return render_index(await self.run_list(owner=owner), self.prices, link)

    async def guide(self, session_id: str | None = None, question: str | None = None, owner: str = LOCAL) -> str:
        """The rlm_guide prompt, with the session's corpus metadata when a session is named."""
        corpus = (await self.sessions.get(session_id, owner)).info if session_id else None
        return guide_text(self.settings, corpus, question)
