"""Sessions: one sandbox and its corpus, kept under an id the client holds.

A session's record (its documents and trajectory id) is written to the store
(the data directory, or S3 shared by replicas), so after a server restart, or
when a request reaches a replica that does not hold the session, the first
request naming it starts a new sandbox and reloads the corpus (inline corpora by
their id, fetched from the store if needed); only variables are lost, and the
result says so. Idle sessions are closed after ``RLM_SESSION_IDLE_TIMEOUT_S``;
at ``RLM_MAX_SESSIONS`` the least recently used idle session makes room, and if
every session is busy the new one is refused with a clear error.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread

from rlm_mcp.config import Settings
from rlm_mcp.errors import CapacityExceeded, NotFound
from rlm_mcp.principals import LOCAL
from rlm_mcp.store import KeyNotFound, LocalStore, Store
from rlm_mcp.subcall_cache import Occurrences
from rlm_mcp.subcalls import Budget
from rlm_mcp.trajectories import TrajectoryStore, check_id, new_id
from sandbox import Document, LoadInfo, Sandbox, SandboxLimits

if TYPE_CHECKING:
    from rlm_mcp.sources import InlineStore

log = logging.getLogger(__name__)
MB = 1024 * 1024
RESAVE_S = 30.0
"""A record is rewritten at most this often just to say the session is still in use."""


def session_budget(settings: Settings) -> Budget:
    """What repl_exec sub-calls of one session may spend."""
    return Budget(settings.max_sub_calls, max_tokens=settings.max_tokens, max_cost_usd=settings.max_cost_usd)


def sandbox_limits(settings: Settings) -> SandboxLimits:
    return SandboxLimits(
        exec_timeout_s=settings.exec_timeout_s,
        kill_grace_s=settings.kill_grace_s,
        memory_bytes=settings.worker_memory_mb * MB,
        max_corpus_bytes=settings.max_corpus_mb * MB,
        max_output_chars=settings.max_output_chars,
        max_code_chars=settings.max_code_chars,
    )


@dataclass
class Session:
    id: str
    trajectory_id: str
    created_at: float
    sandbox: Sandbox
    budget: Budget
    info: LoadInfo | None = None
    last_used: float = field(default_factory=time.time)
    busy: int = 0
    runs: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """Said once, in the next result: e.g. that the session was restored after a restart."""
    saved_at: float = 0.0
    owner: str = LOCAL
    """The principal that created it; no other can see or use it (:mod:`rlm_mcp.principals`)."""
    seen: Occurrences = field(default_factory=Occurrences)
    """Repeats of each sub-call request made by repl_exec, for the cache (:mod:`rlm_mcp.subcall_cache`)."""

    def record(self, corpora: InlineStore | None = None) -> dict[str, Any]:
        documents = []
        for d in self.sandbox.documents:
            entry: dict[str, Any] = {
                "name": d.name,
                "path": str(d.path),
                "header": d.header,
                "encoding": d.encoding,
                "errors": d.errors,
                "parts": d.parts,
            }
            corpus_id = corpora.corpus_id_of(d.path) if corpora is not None else None
            if corpus_id is not None:
                entry["corpus_id"] = corpus_id
            documents.append(entry)
        return {
            "id": self.id,
            "trajectory_id": self.trajectory_id,
            "created_at": self.created_at,
            "shape": self.sandbox.shape,
            "documents": documents,
            "owner": self.owner,
        }

    def take_notes(self) -> list[str]:
        notes, self.notes = self.notes, []
        return notes


def _owner_of(record: dict[str, Any]) -> str:
    """A record's owner; records written before owners existed belong to the one local principal."""
    owner = record.get("owner")
    return owner if isinstance(owner, str) else LOCAL


class SessionManager:
    def __init__(
        self,
        settings: Settings,
        trajectories: TrajectoryStore,
        records: Store | None = None,
        corpora: InlineStore | None = None,
    ):
        self.settings = settings
        self.trajectories = trajectories
        self.records: Store = records or LocalStore(settings.data_dir / "sessions")
        self.corpora = corpora
        self.workdirs = settings.data_dir / "work"
        self._live: dict[str, Session] = {}
        self._lock = anyio.Lock()

    # -- records -----------------------------------------------------------------------

    @staticmethod
    def _record_key(session_id: str) -> str:
        return f"{check_id(session_id, 'session')}.json"

    async def save(self, session: Session) -> None:
        data = json.dumps(session.record(self.corpora)).encode()
        await anyio.to_thread.run_sync(self.records.write, self._record_key(session.id), data)
        session.saved_at = time.time()

    async def _read_record(self, session_id: str) -> dict[str, Any] | None:
        key = self._record_key(session_id)
        try:
            return json.loads(await anyio.to_thread.run_sync(self.records.read, key))
        except KeyNotFound:
            return None
        except ValueError:
            log.warning("session record %s in %s is unreadable", key, self.records.url)
            return None

    async def _document(self, raw: dict[str, Any], owner: str) -> Document:
        """A recorded document, with its file on this machine (an inline corpus is fetched by id)."""
        path = Path(raw["path"])
        corpus_id = raw.get("corpus_id")
        if corpus_id and self.corpora is not None:
            path = await anyio.to_thread.run_sync(self.corpora.local_file, corpus_id, owner)
        elif not path.exists():
            raise NotFound(
                f"the session's document {raw['name']!r} is not on this server; load the corpus again with load_context"
            )
        return Document(
            name=raw["name"],
            path=path,
            header=raw.get("header", ""),
            encoding=raw.get("encoding", "utf-8"),
            errors=raw.get("errors", "strict"),
            parts=raw.get("parts") is True,
        )

    # -- lifecycle -----------------------------------------------------------------------

    def _new_sandbox(self) -> Sandbox:
        self.workdirs.mkdir(parents=True, exist_ok=True)
        return Sandbox(sandbox_limits(self.settings), workdir_parent=self.workdirs)

    async def _make_room(self) -> None:
        if len(self._live) < self.settings.max_sessions:
            return
        # A session without a corpus yet is being created: its first load is in flight, so it is not idle.
        idle = [s for s in self._live.values() if s.busy == 0 and s.info is not None]
        if not idle:
            raise CapacityExceeded(
                f"all {self.settings.max_sessions} sessions are busy; close one with close_session, "
                "wait for one to finish, or raise RLM_MAX_SESSIONS"
            )
        oldest = min(idle, key=lambda s: s.last_used)
        log.info("closing idle session %s to make room", oldest.id)
        await self.close(oldest.id)

    async def create(self, owner: str = LOCAL) -> Session:
        async with self._lock:
            await self._make_room()
            sandbox = self._new_sandbox()
            await sandbox.start()
            session_id = new_id("s")
            trajectory = await self.trajectories.create(
                kind="session", session_id=session_id, status="open", sub_model=self.settings.sub_model, owner=owner
            )
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
        """The session, if ``owner`` created it; revived from its record when this process does not hold it."""
        check_id(session_id, "session")
        session = self._live.get(session_id)
        if session is None:
            async with self._lock:
                session = self._live.get(session_id)
                if session is None:
                    return await self._revive(session_id, owner)
        if session.owner != owner:
            raise self.missing(session_id)
        return session

    async def owns(self, session_id: str, owner: str) -> bool:
        """Whether ``owner`` has this session, live here or recorded in the store (nothing is started)."""
        session = self._live.get(check_id(session_id, "session"))
        if session is not None:
            return session.owner == owner
        record = await self._read_record(session_id)
        return record is not None and _owner_of(record) == owner

    async def _revive(self, session_id: str, owner: str) -> Session:
        record = await self._read_record(session_id)
        if record is None or _owner_of(record) != owner:
            raise self.missing(session_id)
        documents = [await self._document(d, owner) for d in record.get("documents", [])]
        await self._make_room()
        sandbox = self._new_sandbox()
        session = Session(
            id=session_id,
            trajectory_id=record["trajectory_id"],
            created_at=float(record["created_at"]),
            sandbox=sandbox,
            budget=session_budget(self.settings),
            owner=owner,
        )
        await sandbox.start()
        if documents:
            try:
                shape = "list" if record.get("shape") == "list" else "str"
                session.info = await sandbox.load(documents, shape=shape)
            except Exception:
                await sandbox.close()
                raise
        session.notes.append(
            "this session was restored after a server restart (or on another replica): its corpus was reloaded, "
            "variables from before are lost"
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
        """Stop a session's sandbox; with ``forget`` its record goes too (it cannot be revived)."""
        session = self._live.pop(session_id, None)
        if session is not None:
            await session.sandbox.close()
            if forget:
                with contextlib.suppress(NotFound):
                    await self.trajectories.update(session.trajectory_id, status="closed")
                self.trajectories.forget(session.trajectory_id)
        existed = session is not None
        if forget:
            key = self._record_key(session_id)
            existed = existed or await anyio.to_thread.run_sync(self.records.exists, key)
            await anyio.to_thread.run_sync(self.records.delete, key)
        return existed

    def live(self) -> list[Session]:
        return list(self._live.values())

    async def expire_idle(self) -> list[str]:
        cutoff = time.time() - self.settings.session_idle_timeout_s
        expired = [s.id for s in self._live.values() if s.busy == 0 and s.last_used < cutoff]
        for session_id in expired:
            log.info("session %s expired after %.0f s idle", session_id, self.settings.session_idle_timeout_s)
            await self.close(session_id)
        return expired

    async def purge_stale_records(self) -> None:
        """At start-up: forget records of sessions idle for longer than the timeout."""
        cutoff = time.time() - self.settings.session_idle_timeout_s

        def purge() -> None:
            for entry in self.records.list():
                if entry.key.startswith("s_") and entry.key.endswith(".json") and entry.modified < cutoff:
                    self.records.delete(entry.key)

        await anyio.to_thread.run_sync(purge)

    async def stored(self) -> list[dict[str, Any]]:
        """The records of every session a server could revive, with ``last_used`` (for ``rlm-mcp sessions``)."""

        def scan() -> list[dict[str, Any]]:
            records = []
            for entry in self.records.list():
                if not entry.key.startswith("s_"):
                    continue
                try:
                    records.append({**json.loads(self.records.read(entry.key)), "last_used": entry.modified})
                except (KeyNotFound, ValueError):
                    continue
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
