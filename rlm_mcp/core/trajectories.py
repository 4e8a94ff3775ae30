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

Faults are reported, never hidden. A record that cannot be written (a full
disk) is kept in memory, in order, and written as soon as the store takes it
again; the caller is told. A stored record that cannot be read is listed in the
trajectory's ``damaged`` (where and why), a gap step marks where a step may be
missing, and every good record around it is still shown.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from rlm_mcp.core.ids import check_id, new_id
from rlm_mcp.core.trajectory_log import accumulate, fold
from rlm_mcp.errors import NotFound
from rlm_mcp.principals import LOCAL
from rlm_mcp.schemas import RunStatus, Step, Trajectory
from rlm_mcp.store import KeyNotFound, LocalStore, Store, StoreError

log = logging.getLogger(__name__)

MAX_UNWRITTEN_BYTES = 16 * 1024 * 1024
"""Records waiting for room in the store, over all trajectories; past this a record is dropped (and logged)."""
LEASE_S = 30.0
"""How long a running trajectory stays ``running`` for other readers after its last renewal."""


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
        self._unwritten: dict[str, list[bytes]] = {}
        """Records the store refused (a full disk), in order, per trajectory: written before any newer one."""
        self._unwritten_bytes = 0
        self._forget_when_written: set[str] = set()

    async def _append(self, trajectory_id: str, event: dict[str, Any], what: str) -> None:
        """One event, durable when this returns; events of one trajectory are written one at a time, in order.

        If the store refuses it, the event waits in memory behind any earlier ones (written by the next
        append or :meth:`write_unwritten`) and a StoreError says ``what`` could not be saved and why.
        """
        record = json.dumps(event, ensure_ascii=False).encode("utf-8", "surrogatepass")
        check_id(trajectory_id, "trajectory")
        async with self._locks.setdefault(trajectory_id, anyio.Lock()):
            waiting = self._unwritten.get(trajectory_id)
            if waiting is None:
                try:
                    await anyio.to_thread.run_sync(self.store.append, trajectory_id, record)
                    return
                except StoreError as exc:
                    kept = self._keep(trajectory_id, record)
                    raise _unsaved(what, trajectory_id, exc, kept) from None
            kept = self._keep(trajectory_id, record)
            try:
                await self._write_waiting(trajectory_id)
            except StoreError as exc:
                raise _unsaved(what, trajectory_id, exc, kept) from None

    def _keep(self, trajectory_id: str, record: bytes) -> bool:
        if self._unwritten_bytes + len(record) > MAX_UNWRITTEN_BYTES:
            log.error("dropped a record of %s: too many records are waiting for room in the store", trajectory_id)
            return False
        self._unwritten.setdefault(trajectory_id, []).append(record)
        self._unwritten_bytes += len(record)
        return True

    async def _write_waiting(self, trajectory_id: str) -> None:
        """Write the records waiting for ``trajectory_id``, oldest first (its lock held); StoreError if refused."""
        waiting = self._unwritten.get(trajectory_id, [])
        while waiting:
            await anyio.to_thread.run_sync(self.store.append, trajectory_id, waiting[0])
            self._unwritten_bytes -= len(waiting.pop(0))
        self._unwritten.pop(trajectory_id, None)
        log.info("the records of %s that were waiting for room in the store are written", trajectory_id)
        if trajectory_id in self._forget_when_written:
            self._forget_when_written.discard(trajectory_id)
            self.forget(trajectory_id)

    async def write_unwritten(self) -> None:
        """Retry every record still waiting for room (the server calls this every few seconds)."""
        for trajectory_id in list(self._unwritten):
            async with self._locks.setdefault(trajectory_id, anyio.Lock()):
                try:
                    await self._write_waiting(trajectory_id)
                except StoreError:
                    return  # still no room: the next round tries again

    @property
    def unwritten(self) -> int:
        """Records waiting for room in the store."""
        return sum(len(records) for records in self._unwritten.values())

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

    async def keep_writing(self, period_s: float = 1.0) -> None:
        """Retry records waiting for room in the store, for as long as the server runs."""
        while True:
            await anyio.sleep(period_s)
            if self._unwritten:
                await self.write_unwritten()

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
        record = trajectory.model_dump(mode="json", exclude={"viewer_url"})
        start = {"event": "start", "trajectory": record, "owner": owner}
        try:
            if status == "running":
                await self._write_lease(trajectory.id)
            check_id(trajectory.id, "trajectory")
            await anyio.to_thread.run_sync(self.store.append, trajectory.id, json.dumps(start).encode())
        except StoreError as exc:
            if status == "running":
                with contextlib.suppress(StoreError):
                    await anyio.to_thread.run_sync(self.store.delete, f"{trajectory.id}.lease")
            raise StoreError(f"could not start a trajectory for this {kind}: {exc}") from None
        self._live[trajectory.id] = trajectory
        if status == "running":
            self._running.add(trajectory.id)
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
        accumulate(trajectory, step)
        trajectory.updated_at = time.time()
        await self._append(trajectory_id, {"event": "step", "step": step.model_dump(mode="json")}, f"step {step.index}")

    async def update(self, trajectory_id: str, **fields: Any) -> Trajectory:
        trajectory = await self._held(trajectory_id)
        fields["updated_at"] = time.time()
        for key, value in fields.items():
            setattr(trajectory, key, value)
        dumped = trajectory.model_dump(mode="json", include=set(fields))
        ended = fields.get("status") not in (None, "running") and trajectory_id in self._running
        if ended:
            self._running.discard(trajectory_id)
        try:
            await self._append(trajectory_id, {"event": "update", "fields": dumped}, "the run's status")
        finally:
            if ended:
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
        """Drop a finished trajectory from the cache (it stays in the store), once all of it is written."""
        if trajectory_id in self._unwritten:
            self._forget_when_written.add(trajectory_id)
            return
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
        trajectory = fold(records, trajectory_id)
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
        return fold(records, trajectory_id)

    async def recent(
        self, limit: int = 20, *, where: Callable[[Trajectory], bool] | None = None, scan: int | None = None
    ) -> list[Trajectory]:
        """The most recently changed trajectories (those ``where`` keeps), newest first, read without side effects
        (see :meth:`read`). At most ``scan`` records are read to find them (default: ``limit``)."""

        def read_recent() -> list[Trajectory]:
            entries = sorted(self.store.list_logs(), key=lambda e: e.modified, reverse=True)
            found: list[Trajectory] = []
            for entry in entries[: max(scan or limit, limit)]:
                if len(found) >= limit:
                    break
                try:
                    trajectory = fold(self.store.read_log(entry.key), entry.key)
                except (KeyNotFound, NotFound):
                    continue
                except StoreError as exc:  # one unreadable file hides only itself
                    log.warning("trajectory %s cannot be read: %s", entry.key, exc)
                    continue
                if where is None or where(trajectory):
                    found.append(trajectory)
            return found

        return await anyio.to_thread.run_sync(read_recent)

    async def _mark_interrupted(self, trajectory: Trajectory) -> Trajectory:
        message = "the server stopped while this run was in progress; the steps above were completed"
        if trajectory.damaged:
            message = (
                "this run's end could not be read (see damaged), or the server stopped while it was in progress; "
                "the steps above were completed"
            )
        fields = {"status": "interrupted", "message": message, "updated_at": time.time()}
        try:
            check_id(trajectory.id, "trajectory")
            record = json.dumps({"event": "update", "fields": fields}).encode()
            await anyio.to_thread.run_sync(self.store.append, trajectory.id, record)
        except StoreError:
            log.warning("could not record that %s was interrupted (read again later)", trajectory.id, exc_info=True)
        return trajectory.model_copy(update=fields)

    def in_progress(self) -> set[str]:
        """Trajectories this process is writing, or still has records of waiting for room."""
        return self._running | set(self._unwritten)

    def is_running(self, trajectory_id: str) -> bool:
        return trajectory_id in self._running


def _missing(trajectory_id: str) -> NotFound:
    return NotFound(f"no trajectory {trajectory_id!r}; ids come from load_context and rlm_query")


def _unsaved(what: str, trajectory_id: str, exc: StoreError, kept: bool) -> StoreError:
    then = (
        "it is kept in memory and written as soon as the store has room again"
        if kept
        else "it was dropped: too many records are already waiting for room"
    )
    return StoreError(f"{what} of trajectory {trajectory_id} could not be saved ({then}): {exc}")
