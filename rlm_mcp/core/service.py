"""The core of rlm-mcp, usable without MCP: every tool is a method here.

``server.py`` maps MCP tools onto these methods and the CLI calls them
directly. Errors meant for the caller are raised as :class:`~rlm_mcp.errors.RLMError`.
"""

from __future__ import annotations

import codecs
import contextlib
import logging
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import anyio
import anyio.abc
import anyio.to_thread

from rlm_mcp import viewer
from rlm_mcp.config import Settings
from rlm_mcp.core.guide import guide_text
from rlm_mcp.core.loading import LOAD_PROGRESS_INTERVAL_S, decode_skips, nothing_decoded, read_reporter, scan_watcher
from rlm_mcp.core.retention import InUse, Report, Retention
from rlm_mcp.core.runs.control import Query, Runs
from rlm_mcp.core.runs.recursion import Recursion, refuse_in_repl_exec, sandbox_factory
from rlm_mcp.core.sessions import Session, SessionManager, sandbox_limits
from rlm_mcp.core.subcalls.broker import SubcallBroker, SubcallLog
from rlm_mcp.core.subcalls.cache import open_cache
from rlm_mcp.core.trajectories import TrajectoryStore, check_id, summarize
from rlm_mcp.errors import InvalidInput, NotFound, Redactor, RLMError
from rlm_mcp.models import CHARS_PER_TOKEN, ModelRouter
from rlm_mcp.models.pricing import PriceTable
from rlm_mcp.principals import LOCAL
from rlm_mcp.progress import Progress, ProgressReporter
from rlm_mcp.schemas import (
    BudgetReport,
    CloseSessionResult,
    LoadContextResult,
    ReplExecResult,
    RLMQueryResult,
    SessionInfo,
    SessionList,
    Step,
    StorageUsage,
    SubCallSummary,
    Trajectory,
    VariableInfo,
    code_error,
)
from rlm_mcp.sources import LoadOptions, LoadTally, ResolvedSource, Sources, document_header
from rlm_mcp.sources.resolved import too_large
from rlm_mcp.store import StoreError, open_store
from rlm_mcp.telemetry.spans import code_span
from rlm_mcp.viewer.index import render_index
from sandbox import CodeTooLarge, ExecResult, LoadError, SandboxError
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

    # -- load_context --------------------------------------------------------------------

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
        """Load a corpus; ``progress`` hears files and bytes as they are looked at, then as the sandbox reads them."""
        if sum(x is not None for x in (content, path, corpus_id)) != 1:
            raise InvalidInput(
                "give exactly one of `content` (the text itself), `path` (a file, directory, glob or s3:// URL) "
                "or `corpus_id` (the id an earlier load_context returned for inline content)"
            )
        if path is None and (include or exclude):
            raise InvalidInput(
                "include/exclude select files of a directory or S3 prefix; they do not apply to content or corpus_id"
            )
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise InvalidInput(f"unknown encoding {encoding!r}") from None
        options = LoadOptions(
            max_bytes=self.settings.max_corpus_mb * 1024 * 1024,
            encoding=encoding,
            errors=errors,
            format=format,
            include=tuple(include or ()),
            exclude=tuple(exclude or ()),
        )
        if session_id is not None:
            check_id(session_id, "session")
        if session_id is not None and not await self.sessions.owns(session_id, owner):
            raise self.sessions.missing(session_id)  # before any work: another's session is no session
        tally = LoadTally(watch=scan_watcher(progress), interval=LOAD_PROGRESS_INTERVAL_S)
        source = await self._resolve(content, path, name, options, corpus_id, owner, tally)
        if source.total_bytes == 0:
            raise InvalidInput("the corpus is empty: there is nothing to load")
        reading = read_reporter(progress, tally.files, len(source.documents))
        if session_id is None:
            session = await self.sessions.create(owner, source.documents)
            try:
                info = await session.sandbox.load(source.documents, shape=source.shape, progress=reading)
                if not info.documents:
                    raise NotFound(nothing_decoded(path, encoding, source, info))
            except LoadError as exc:
                with anyio.CancelScope(shield=True):
                    await self.sessions.close(session.id)
                raise InvalidInput(str(exc)) from None
            except BaseException:
                with anyio.CancelScope(shield=True):
                    await self.sessions.close(session.id)
                raise
            added = info.documents
        else:
            async with self.sessions.use(session_id, owner) as session:
                before = session.info.documents if session.info else 0
                existing = session.sandbox.documents
                first_header = document_header(existing[0].name) if existing and session.sandbox.shape == "str" else ""
                added_docs = [
                    d if d.header or d.parts else replace(d, header=document_header(d.name)) for d in source.documents
                ]
                try:
                    info = await session.sandbox.load(
                        added_docs, shape="list", append=True, first_header=first_header, progress=reading
                    )
                except LoadError as exc:
                    raise InvalidInput(str(exc)) from None
                added = info.documents - before
        session.info = info
        session.loaded_at = time.time()
        self._usage = None  # the stored data changed: list_sessions measures it again
        single = len(source.documents) == 1
        try:
            await self.sessions.save(session)
        except StoreError as exc:
            if session_id is None:  # a session nobody could revive is not started
                with anyio.CancelScope(shield=True):
                    await self.sessions.close(session.id)
                raise StoreError(f"the session could not be saved, so it was not started: {exc}") from None
            raise StoreError(
                f"the documents were added to the session, but its record could not be saved (a restart would "
                f"bring the session back without them): {exc}"
            ) from None
        try:
            await self.trajectories.update(session.trajectory_id, corpus_chars=info.chars)
        except StoreError as exc:
            log.warning("session %s: %s", session.id, exc)
        return LoadContextResult(
            session_id=session.id,
            trajectory_id=session.trajectory_id,
            type=info.type,
            documents=info.documents,
            chars=info.chars,
            lines=info.lines,
            estimated_tokens=info.chars // CHARS_PER_TOKEN,
            preview=info.preview,
            added_documents=added,
            corpus_id=self.sources.inline.corpus_id_of(source.documents[0].path) if single else None,
            skipped=(source.skipped + decode_skips(source, info))[:50],
            notes=session.take_notes(),
        )

    async def _resolve(
        self,
        content: str | None,
        path: str | None,
        name: str | None,
        options: LoadOptions,
        corpus_id: str | None = None,
        owner: str = LOCAL,
        tally: LoadTally | None = None,
    ) -> ResolvedSource:
        if corpus_id is not None:
            return await anyio.to_thread.run_sync(self.sources.inline.attach, corpus_id, name or "inline", owner)
        if content is not None:
            if len(content) > options.max_bytes:  # characters: at least as many bytes
                raise too_large("content", len(content.encode("utf-8", "replace")), options.max_bytes)
            return await anyio.to_thread.run_sync(self.sources.inline.put, content, name or "inline", owner)
        assert path is not None
        source = await anyio.to_thread.run_sync(self.sources.resolve, path, options, tally)
        if source.total_bytes > options.max_bytes:
            raise too_large(repr(path), source.total_bytes, options.max_bytes)
        return source

    # -- repl_exec -----------------------------------------------------------------------

    async def repl_exec(
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
                await self._record_exec(session, code, result, sub_log, started, notes)
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

    async def _record_exec(
        self, session: Session, code: str, result: ExecResult, sub_log: SubcallLog, started: float, notes: list[str]
    ) -> None:
        trajectory = await self.trajectories.get(session.trajectory_id)
        step = Step(
            index=len(trajectory.steps),
            turn=len(trajectory.steps),
            started_at=started,
            elapsed_ms=result.elapsed_ms,
            code=code,
            stdout=result.stdout,
            error=code_error(result),
            final=result.final,
            sub_call_count=len(sub_log.records),
            sub_input_tokens=sub_log.usage.input_tokens,
            sub_output_tokens=sub_log.usage.output_tokens,
            cached_sub_calls=sub_log.cached,
            sub_calls=sorted(sub_log.records, key=lambda r: r.started_at),
            notes=notes,
        )
        await self.trajectories.add_step(session.trajectory_id, step)
        if result.final is not None:
            await self.trajectories.update(session.trajectory_id, answer=result.final)

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
