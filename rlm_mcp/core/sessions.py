"""Sessions: one sandbox and its corpus, kept under an id the client holds.

A session's record (its documents and trajectory id) is written to the store
(the data directory, or S3 shared by replicas), so after a server restart, or
when a request reaches a replica that does not hold the session, the first
request naming it starts a new sandbox and reloads the corpus (inline corpora by
their id, fetched from the store if needed); only variables are lost, and the
result says so. Idle sessions are closed after ``RLM_SESSION_IDLE_TIMEOUT_S``.
At ``RLM_MAX_SESSIONS`` the least recently used session idle for at least
``RLM_SESSION_EVICT_IDLE_S`` is evicted to make room: its sandbox stops but its
record stays, so its next use revives it with its corpus, as after a restart.
A session used more recently than that is in use (its client is between two
calls), so when every session is, the new one is refused with an error saying
so and what to set.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread

from rlm_mcp.config import Settings
from rlm_mcp.core.ids import check_id, new_id
from rlm_mcp.core.retention import drop_private_corpora
from rlm_mcp.core.session_records import RecordedDocument, SessionRecord, parse_record
from rlm_mcp.core.session_state import Session, sandbox_limits, session_budget
from rlm_mcp.core.trajectories import TrajectoryStore
from rlm_mcp.errors import CapacityExceeded, Damaged, NotFound
from rlm_mcp.principals import LOCAL
from rlm_mcp.store import KeyNotFound, LocalStore, Store, StoreError
from sandbox import Document, LoadError, Sandbox
from sandbox.handover import corpus_size

if TYPE_CHECKING:
    from rlm_mcp.sources import InlineStore
    from sandbox.template import WorkerTemplate

log = logging.getLogger(__name__)
RESAVE_S = 30.0
"""A record is rewritten at most this often just to say the session is still in use."""


class SessionManager:
    def __init__(
        self,
        settings: Settings,
        trajectories: TrajectoryStore,
        records: Store | None = None,
        corpora: InlineStore | None = None,
        template: WorkerTemplate | None = None,
    ):
        self.settings = settings
        self.template = template
        """Forks the sessions' workers (``RLM_WORKER_TEMPLATE``); None starts each from nothing."""
        self.trajectories = trajectories
        self.records: Store = records or LocalStore(settings.data_dir / "sessions")
        self.corpora = corpora
        self.workdirs = settings.data_dir / "work"
        self._live: dict[str, Session] = {}
        self._starting = 0
        """Sandboxes being started: they count towards RLM_MAX_SESSIONS like live sessions."""
        self._reviving: dict[str, anyio.Event] = {}
        self._evicted: set[str] = set()
        """Sessions this process evicted: their revival says why they lost their variables."""

    # -- records -----------------------------------------------------------------------

    @staticmethod
    def _record_key(session_id: str) -> str:
        return f"{check_id(session_id, 'session')}.json"

    async def save(self, session: Session) -> None:
        data = json.dumps(session.record(self.corpora)).encode()
        await anyio.to_thread.run_sync(self.records.write, self._record_key(session.id), data)
        session.saved_at = time.time()

    def _where(self, key: str) -> str:
        return f"{self.records.url.rstrip('/')}/{key}"

    async def _read_record(self, session_id: str) -> SessionRecord | None:
        """The stored record, None if there is none; :class:`Damaged` (where, what) if it cannot be read."""
        key = self._record_key(session_id)
        try:
            data = await anyio.to_thread.run_sync(self.records.read, key)
        except KeyNotFound:
            return None
        return parse_record(data, session_id, self._where(key))

    async def _document(self, raw: RecordedDocument, owner: str) -> Document:
        """A recorded document, with its file on this machine (an inline corpus is fetched by id)."""
        path = Path(raw.path)
        if raw.corpus_id and self.corpora is not None:
            path = await anyio.to_thread.run_sync(self.corpora.local_file, raw.corpus_id, owner)
        elif not path.exists():
            raise NotFound(
                f"the session's document {raw.name!r} is not on this server; load the corpus again with load_context"
            )
        return Document(
            name=raw.name, path=path, header=raw.header, encoding=raw.encoding, errors=raw.errors, parts=raw.parts
        )

    # -- lifecycle -----------------------------------------------------------------------

    def _new_sandbox(self) -> Sandbox:
        self.workdirs.mkdir(parents=True, exist_ok=True)
        return Sandbox(sandbox_limits(self.settings), workdir_parent=self.workdirs, template=self.template)

    def _evictable(self) -> Session | None:
        """The least recently used session nobody is using: idle for at least RLM_SESSION_EVICT_IDLE_S.

        A session idle for less is in use, only between two calls of its client; a session without a
        corpus yet is being created (its first load is in flight). Neither is ever taken.
        """
        cutoff = time.time() - self.settings.session_evict_idle_s
        idle = [s for s in self._live.values() if s.busy == 0 and s.info is not None and s.last_used <= cutoff]
        return min(idle, key=lambda s: s.last_used) if idle else None

    def _full(self) -> CapacityExceeded:
        s = self.settings
        return CapacityExceeded(
            f"the server already has its maximum of {s.max_sessions} live sessions (RLM_MAX_SESSIONS), and every "
            f"one is in use: running a request, or used in the last {s.session_evict_idle_s:g} s "
            "(RLM_SESSION_EVICT_IDLE_S), so none can be closed to make room. Close a session you no longer need "
            "with close_session, try again later, or raise RLM_MAX_SESSIONS"
        )

    @contextlib.asynccontextmanager
    async def _slot(self) -> AsyncIterator[None]:
        """Room for one more sandbox, held while it starts; the caller adds its session to ``_live`` inside.

        Counting the sessions (live and starting) and taking a victim happen with no ``await`` in between,
        so sandboxes start concurrently and yet never more than RLM_MAX_SESSIONS are admitted.
        """
        victim = None
        if len(self._live) + self._starting >= self.settings.max_sessions:
            victim = self._evictable()
            if victim is None:
                raise self._full()
            del self._live[victim.id]
        self._starting += 1
        try:
            if victim is not None:
                await self._evict(victim)
            yield
        finally:
            self._starting -= 1

    async def _evict(self, session: Session) -> None:
        """Stop an idle session's sandbox to make room, keeping its record: its next use revives it."""
        log.info(
            "evicting session %s (idle %.0f s) to make room at RLM_MAX_SESSIONS=%d",
            session.id,
            time.time() - session.last_used,
            self.settings.max_sessions,
        )
        self._evicted.add(session.id)
        with anyio.CancelScope(shield=True):
            await session.sandbox.close()
        self.trajectories.forget(session.trajectory_id)

    async def _start_sandbox(self, documents: list[Document]) -> Sandbox:
        """A started sandbox whose worker is sized for ``documents``, so their first load needs no second one."""
        sandbox = self._new_sandbox()
        try:
            size = 0
            with contextlib.suppress(LoadError):  # the load itself says what is wrong with a document
                size = corpus_size(documents)
            await sandbox.start(size)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await sandbox.close()
            raise
        return sandbox

    async def create(self, owner: str = LOCAL, documents: list[Document] | None = None) -> Session:
        """A new session whose sandbox is ready for ``documents`` (its first load)."""
        async with self._slot():
            sandbox = await self._start_sandbox(documents or [])
            session_id = new_id("s")
            try:
                trajectory = await self.trajectories.create(
                    kind="session",
                    session_id=session_id,
                    status="open",
                    sub_model=self.settings.sub_model,
                    owner=owner,
                )
            except BaseException:
                with anyio.CancelScope(shield=True):
                    await sandbox.close()
                raise
            session = Session(
                id=session_id,
                trajectory_id=trajectory.id,
                created_at=time.time(),
                sandbox=sandbox,
                budget=session_budget(self.settings),
                owner=owner,
            )
            self._live[session_id] = session
        log.info("session %s started (sandbox pid %s: %s)", session_id, sandbox.pid, "; ".join(sandbox.confinement))
        return session

    def missing(self, session_id: str) -> NotFound:
        """The one answer for a session that is gone, never was, or is another principal's."""
        return NotFound(
            f"no session {session_id!r}: it was closed, expired after "
            f"{self.settings.session_idle_timeout_s:g} s idle, or never existed. Call load_context to start one"
        )

    async def get(self, session_id: str, owner: str = LOCAL) -> Session:
        """The session, if ``owner`` created it: live, or revived from its record (once, however many requests
        ask for it at once)."""
        check_id(session_id, "session")
        while True:
            session = self._live.get(session_id)
            if session is not None:
                if session.owner != owner:
                    raise self.missing(session_id)
                return session
            pending = self._reviving.get(session_id)
            if pending is None:
                break
            await pending.wait()  # another request is reviving it; if that failed, try again here
        done = self._reviving[session_id] = anyio.Event()
        try:
            return await self._revive(session_id, owner)
        finally:
            del self._reviving[session_id]
            done.set()

    async def owns(self, session_id: str, owner: str) -> bool:
        """Whether ``owner`` has this session, live here or recorded in the store (nothing is started)."""
        session = self._live.get(check_id(session_id, "session"))
        if session is not None:
            return session.owner == owner
        record = await self._read_record(session_id)
        return record is not None and record.owner == owner

    async def _revive(self, session_id: str, owner: str) -> Session:
        record = await self._read_record(session_id)
        if record is None or record.owner != owner:
            raise self.missing(session_id)
        documents = [await self._document(d, owner) for d in record.documents]
        async with self._slot():
            sandbox = await self._start_sandbox(documents)
            session = Session(
                id=session_id,
                trajectory_id=record.trajectory_id,
                created_at=record.created_at,
                sandbox=sandbox,
                budget=session_budget(self.settings),
                owner=owner,
            )
            if documents:
                try:
                    session.info = await sandbox.load(documents, shape=record.shape)
                    session.loaded_at = time.time()
                except BaseException:
                    with anyio.CancelScope(shield=True):
                        await sandbox.close()
                    raise
            if session_id in self._evicted:
                self._evicted.discard(session_id)
                session.notes.append(
                    f"this session was idle for more than {self.settings.session_evict_idle_s:g} s and was evicted "
                    f"to make room for another (RLM_MAX_SESSIONS={self.settings.max_sessions}); it was restored "
                    "with its corpus, variables from before are lost"
                )
            else:
                session.notes.append(
                    "this session was restored after a server restart (or on another replica): its corpus was "
                    "reloaded, variables from before are lost"
                )
            self._live[session_id] = session
        return session

    @contextlib.asynccontextmanager
    async def use(self, session_id: str, owner: str = LOCAL) -> AsyncIterator[Session]:
        """Hold a session for one request: it will not be evicted while in use."""
        session = await self.get(session_id, owner)
        session.busy += 1
        try:
            yield session
        finally:
            session.busy -= 1
            session.last_used = time.time()

    async def close(self, session_id: str, *, forget: bool = True) -> bool:
        """Stop a session's sandbox; with ``forget`` its record and private data go too (it cannot be revived)."""
        session = self._live.pop(session_id, None)
        if session is not None:
            await session.sandbox.close()
            if forget:
                try:
                    await self.trajectories.update(session.trajectory_id, status="closed")
                except NotFound:
                    pass
                except StoreError as exc:
                    log.warning("session %s: %s", session_id, exc)
            self.trajectories.forget(session.trajectory_id)
        existed = session is not None
        if forget:
            self._evicted.discard(session_id)
            key = self._record_key(session_id)
            existed = existed or await anyio.to_thread.run_sync(self.records.exists, key)
            await anyio.to_thread.run_sync(self.records.delete, key)
            if session is not None:
                await self._drop_private(session)
        return existed

    async def _drop_private(self, session: Session) -> None:
        """Remove the inline corpora only this closed session used: no live session, no stored record, and
        nobody since its last load (a load touches the file) names them. A failure only leaves them for the
        periodic clean-up."""
        if self.corpora is None:
            return
        mine = {d.path for d in session.sandbox.documents if self.corpora.corpus_id_of(d.path) is not None}
        for other in self._live.values():
            mine -= {d.path for d in other.sandbox.documents}
        if not mine:
            return
        try:
            dropped = await anyio.to_thread.run_sync(drop_private_corpora, mine, self.records, session.loaded_at)
        except (OSError, StoreError) as exc:
            log.warning("session %s: its private data is left for the clean-up: %s", session.id, exc)
            return
        if dropped:
            log.info("session %s closed: removed %d inline corpus file(s) only it used", session.id, len(dropped))

    def forget_evicted(self, session_ids: set[str]) -> None:
        """Evicted sessions whose records are gone cannot come back: stop remembering them."""
        self._evicted -= session_ids

    def live(self) -> list[Session]:
        return list(self._live.values())

    async def expire_idle(self) -> list[str]:
        cutoff = time.time() - self.settings.session_idle_timeout_s
        expired = [s.id for s in self._live.values() if s.busy == 0 and s.last_used < cutoff]
        for session_id in expired:
            log.info("session %s expired after %.0f s idle", session_id, self.settings.session_idle_timeout_s)
            await self.close(session_id)
        return expired

    async def stored(self) -> list[dict[str, Any]]:
        """The records of every session a server could revive, with ``last_used`` (for ``rlm-mcp sessions``)."""

        def scan() -> list[dict[str, Any]]:
            records = []
            for entry in self.records.list():
                if not (entry.key.startswith("s_") and entry.key.endswith(".json")):
                    continue
                session_id = entry.key.removesuffix(".json")
                try:
                    record = parse_record(self.records.read(entry.key), session_id, self._where(entry.key))
                    records.append({**record.model_dump(), "last_used": entry.modified})
                except KeyNotFound:
                    continue
                except (Damaged, StoreError) as exc:  # one bad record hides only itself, and says so
                    records.append({"id": session_id, "last_used": entry.modified, "damaged": str(exc)})
            return records

        return await anyio.to_thread.run_sync(scan)

    async def touch(self, session: Session) -> None:
        """Keep the record fresh (stale records are purged), rewriting it at most every RESAVE_S."""
        if time.time() - session.saved_at >= RESAVE_S:
            try:
                await self.save(session)
            except Exception:
                log.warning("could not refresh the record of session %s", session.id, exc_info=True)

    async def aclose(self) -> None:
        """Stop every sandbox but keep the records, so sessions survive a restart."""
        for session_id in list(self._live):
            await self.close(session_id, forget=False)
