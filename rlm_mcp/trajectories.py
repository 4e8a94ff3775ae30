"""Trajectories: every step of a session or run, written as it happens.

Each trajectory is an append-only log of events (``start``, ``step``,
``update``) in the store: a JSON Lines file in the data directory, or one object
per event in S3. A step is stored as soon as it is finished, so a server that
dies mid-run loses only the step in flight.

A run being written holds a *lease*, a small object renewed every few seconds
by the process running it. Any replica reading a trajectory still marked
``running`` whose lease has lapsed, or whose owner is a dead process on the
same machine (a restarted server), reports it as ``interrupted``; a live lease
means another replica is still on it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import socket
import time
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from rlm_mcp.errors import InvalidInput, NotFound
from rlm_mcp.principals import LOCAL
from rlm_mcp.schemas import RunStatus, Step, Trajectory
from rlm_mcp.store import KeyNotFound, LocalStore, Store

log = logging.getLogger(__name__)

_ID = re.compile(r"^[st]_[A-Za-z0-9_-]{8,64}$")
PREVIEW_CHARS = 300
_DERIVED = frozenset({"steps", "usage", "sub_calls", "iterations", "sub_prompt_chars"})
LEASE_S = 30.0
"""How long a running trajectory stays ``running`` for other readers after its last renewal."""


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_urlsafe(12)}"


def check_id(value: str, what: str) -> str:
    """Ids end up in file names: anything but the expected shape is refused."""
    if not isinstance(value, str) or not _ID.match(value):
        raise InvalidInput(f"{value!r} is not a valid {what} id")
    return value


def _clip(text: str | None, limit: int = PREVIEW_CHARS) -> str | None:
    if text is None or len(text) <= limit:
        return text
    return text[:limit] + f"... [{len(text) - limit:,} more characters]"


def summarize(trajectory: Trajectory) -> Trajectory:
    """The same record with code and output clipped and sub-call details dropped.

    An agent can read the shape of a 40-step run in a few thousand tokens, then
    ask for ``detail="full"`` if it needs a particular step.
    """
    steps = [
        step.model_copy(
            update={
                "root_text": _clip(step.root_text),
                "code": _clip(step.code),
                "stdout": _clip(step.stdout) or "",
                "final": _clip(step.final),
                "sub_calls": [],
            }
        )
        for step in trajectory.steps
    ]
    return trajectory.model_copy(update={"steps": steps, "detail": "summary"})


def _accumulate(trajectory: Trajectory, step: Step) -> None:
    """Totals follow from the steps; they are kept in step with them, never stored apart."""
    trajectory.steps.append(step)
    usage = trajectory.usage
    usage.root_input_tokens += step.root_input_tokens
    usage.root_output_tokens += step.root_output_tokens
    usage.sub_input_tokens += step.sub_input_tokens
    usage.sub_output_tokens += step.sub_output_tokens
    trajectory.sub_calls += step.sub_call_count
    trajectory.sub_prompt_chars += sum(call.prompt_chars for call in step.sub_calls)
    trajectory.iterations = len({s.turn for s in trajectory.steps})


def _machine_id() -> str:
    """Names this kernel (boot id on Linux), so a lease's owner can be checked for life when it is local."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return socket.gethostname()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_OWNER = {"machine": _machine_id(), "pid": os.getpid()}


class TrajectoryStore:
    """Trajectories as event logs in a store, with the ones this process writes cached."""

    def __init__(self, store: Store | Path, *, lease_s: float = LEASE_S):
        self.store: Store = LocalStore(store) if isinstance(store, Path) else store
        self.lease_s = lease_s
        self._live: dict[str, Trajectory] = {}
        self._running: set[str] = set()
        self._locks: dict[str, anyio.Lock] = {}

    async def _append(self, trajectory_id: str, event: dict[str, Any]) -> None:
        """One event, durable when this returns; events of one trajectory are written one at a time, in order."""
        record = json.dumps(event, ensure_ascii=False).encode("utf-8", "surrogatepass")
        check_id(trajectory_id, "trajectory")
        async with self._locks.setdefault(trajectory_id, anyio.Lock()):
            await anyio.to_thread.run_sync(self.store.append, trajectory_id, record)

    # -- leases ------------------------------------------------------------------------------

    async def _write_lease(self, trajectory_id: str) -> None:
        lease = json.dumps({"expires_at": time.time() + self.lease_s, "owner": _OWNER}).encode()
        await anyio.to_thread.run_sync(self.store.write, f"{trajectory_id}.lease", lease)

    async def renew_leases(self) -> None:
        """Renew the lease of every run this process is writing (called every ``lease_s / 3``)."""
        for trajectory_id in list(self._running):
            try:
                await self._write_lease(trajectory_id)
            except Exception:
                log.warning("could not renew the lease of %s", trajectory_id, exc_info=True)

    async def keep_leases(self) -> None:
        """Renew leases for as long as the server runs."""
        while True:
            await anyio.sleep(self.lease_s / 3)
            await self.renew_leases()

    async def _lease_alive(self, trajectory_id: str) -> bool:
        """A lease is alive until it expires, or until its owner is seen dead on this very machine."""
        try:
            raw = await anyio.to_thread.run_sync(self.store.read, f"{trajectory_id}.lease")
            lease = json.loads(raw)
            if float(lease["expires_at"]) <= time.time():
                return False
        except (KeyNotFound, ValueError, KeyError, TypeError):
            return False
        owner = lease.get("owner")
        if isinstance(owner, dict) and owner.get("machine") == _OWNER["machine"] and isinstance(owner.get("pid"), int):
            return _pid_alive(owner["pid"])
        return True

    # -- writing -----------------------------------------------------------------------------

    async def create(
        self,
        *,
        kind: str,
        session_id: str,
        status: RunStatus,
        query: str | None = None,
        root_model: str | None = None,
        sub_model: str | None = None,
        corpus_chars: int | None = None,
        owner: str = LOCAL,
    ) -> Trajectory:
        now = time.time()
        trajectory = Trajectory(
            id=new_id("t"),
            kind=kind,
            session_id=session_id,
            status=status,
            created_at=now,
            updated_at=now,
            query=query,
            root_model=root_model,
            sub_model=sub_model,
            corpus_chars=corpus_chars,
        )
        trajectory._owner = owner
        self._live[trajectory.id] = trajectory
        if status == "running":
            self._running.add(trajectory.id)
            await self._write_lease(trajectory.id)
        record = trajectory.model_dump(mode="json", exclude={"viewer_url"})
        await self._append(trajectory.id, {"event": "start", "trajectory": record, "owner": owner})
        return trajectory

    async def _held(self, trajectory_id: str) -> Trajectory:
        """The trajectory this process is writing: cached from the first write on."""
        trajectory = self._live.get(trajectory_id)
        if trajectory is None:
            trajectory = await self.get(trajectory_id)
            self._live[trajectory_id] = trajectory
        return trajectory

    async def add_step(self, trajectory_id: str, step: Step) -> None:
        trajectory = await self._held(trajectory_id)
        _accumulate(trajectory, step)
        trajectory.updated_at = time.time()
        await self._append(trajectory_id, {"event": "step", "step": step.model_dump(mode="json")})

    async def update(self, trajectory_id: str, **fields: Any) -> Trajectory:
        trajectory = await self._held(trajectory_id)
        fields["updated_at"] = time.time()
        for key, value in fields.items():
            setattr(trajectory, key, value)
        dumped = trajectory.model_dump(mode="json", include=set(fields))
        await self._append(trajectory_id, {"event": "update", "fields": dumped})
        if fields.get("status") not in (None, "running") and trajectory_id in self._running:
            self._running.discard(trajectory_id)
            try:
                await anyio.to_thread.run_sync(self.store.delete, f"{trajectory_id}.lease")
            except Exception:
                log.warning("could not drop the lease of %s (it lapses by itself)", trajectory_id, exc_info=True)
        return trajectory

    async def reopen(self, trajectory_id: str, **fields: Any) -> Trajectory:
        """A stopped run running again (resumed): leased and written to like a new one."""
        self._live.pop(trajectory_id, None)
        trajectory = await self._held(trajectory_id)
        self._running.add(trajectory.id)
        await self._write_lease(trajectory.id)
        return await self.update(trajectory.id, status="running", **fields)

    def forget(self, trajectory_id: str) -> None:
        """Drop a finished trajectory from the cache (it stays in the store)."""
        if trajectory_id not in self._running:
            self._live.pop(trajectory_id, None)
            lock = self._locks.get(trajectory_id)
            if lock is not None and not lock.locked():
                del self._locks[trajectory_id]

    # -- reading -----------------------------------------------------------------------------

    async def get(self, trajectory_id: str) -> Trajectory:
        cached = self._live.get(trajectory_id)
        if cached is not None:
            return cached
        check_id(trajectory_id, "trajectory")
        try:
            records = await anyio.to_thread.run_sync(self.store.read_log, trajectory_id)
        except KeyNotFound:
            raise _missing(trajectory_id) from None
        trajectory = _fold(records, trajectory_id)
        if (
            trajectory.status == "running"
            and trajectory_id not in self._running
            and not await self._lease_alive(trajectory_id)
        ):
            trajectory = await self._mark_interrupted(trajectory)
        return trajectory

    async def get_owned(self, trajectory_id: str, owner: str) -> Trajectory:
        """:meth:`get` for a client: another principal's trajectory is exactly as missing as one never written."""
        try:
            trajectory = await self.get(trajectory_id)
        except NotFound:
            if owner == LOCAL:  # the one principal may hear that a record is damaged
                raise
            raise _missing(trajectory_id) from None  # a damaged record's owner is unknown: nobody else's to see
        if trajectory.owner != owner:
            raise _missing(trajectory_id)
        return trajectory

    async def read(self, trajectory_id: str) -> Trajectory:
        """The trajectory as stored, changing nothing: for readers outside the server (the CLI),
        which cannot tell a run that died from one another process is running."""
        check_id(trajectory_id, "trajectory")
        try:
            records = await anyio.to_thread.run_sync(self.store.read_log, trajectory_id)
        except KeyNotFound:
            raise NotFound(f"no trajectory {trajectory_id!r} in {self.store.url}") from None
        return _fold(records, trajectory_id)

    async def recent(self, limit: int = 20) -> list[Trajectory]:
        """The most recently changed trajectories, newest first, read without side effects (see :meth:`read`)."""

        def scan() -> list[Trajectory]:
            entries = sorted(self.store.list_logs(), key=lambda e: e.modified, reverse=True)
            found = []
            for entry in entries[:limit]:
                try:
                    found.append(_fold(self.store.read_log(entry.key), entry.key))
                except (KeyNotFound, NotFound):
                    continue
            return found

        return await anyio.to_thread.run_sync(scan)

    async def _mark_interrupted(self, trajectory: Trajectory) -> Trajectory:
        message = "the server stopped while this run was in progress; the steps above were completed"
        fields = {"status": "interrupted", "message": message, "updated_at": time.time()}
        await self._append(trajectory.id, {"event": "update", "fields": fields})
        return trajectory.model_copy(update=fields)

    def is_running(self, trajectory_id: str) -> bool:
        return trajectory_id in self._running


def _missing(trajectory_id: str) -> NotFound:
    return NotFound(f"no trajectory {trajectory_id!r}; ids come from load_context and rlm_query")


def _fold(records: list[bytes], trajectory_id: str) -> Trajectory:
    """Rebuild a trajectory from its events; a torn record (a crash mid-write) is ignored.

    The owner is in the start event (records written before owners existed belong to :data:`LOCAL`).
    """
    trajectory: Trajectory | None = None
    owner = LOCAL
    for record in records:
        try:
            event = json.loads(record)
        except ValueError:
            continue
        kind = event.get("event")
        if kind == "start":
            trajectory = Trajectory.model_validate(event["trajectory"])
            owner = event.get("owner") if isinstance(event.get("owner"), str) else LOCAL
        elif trajectory is None:
            continue
        elif kind == "step":
            _accumulate(trajectory, Step.model_validate(event["step"]))
        elif kind == "update":
            fields = {k: v for k, v in event["fields"].items() if k not in _DERIVED}
            trajectory = trajectory.model_validate({**trajectory.model_dump(), **fields})
    if trajectory is None:
        raise NotFound(f"trajectory {trajectory_id!r} is empty or unreadable")
    trajectory._owner = owner
    return trajectory
