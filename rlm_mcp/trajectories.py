"""Trajectories: every step of a session or run, written as it happens.

Each trajectory is an append-only JSON Lines file of events (``start``, ``step``,
``update``). A step is on disk as soon as it is finished, so a server that dies
mid-run loses only the step in flight; a run still marked ``running`` when no
process is running it is reported as ``interrupted``.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from rlm_mcp.errors import InvalidInput, NotFound
from rlm_mcp.schemas import RunStatus, Step, Trajectory

_ID = re.compile(r"^[st]_[A-Za-z0-9_-]{8,64}$")
PREVIEW_CHARS = 300
_DERIVED = frozenset({"steps", "usage", "sub_calls", "iterations"})


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
    trajectory.iterations = len({s.turn for s in trajectory.steps})


class TrajectoryStore:
    """Trajectories as JSON Lines files under one directory, with the live ones cached."""

    def __init__(self, directory: Path):
        self.directory = directory
        self._live: dict[str, Trajectory] = {}
        self._running: set[str] = set()
        self._lock = anyio.Lock()

    def _path(self, trajectory_id: str) -> Path:
        return self.directory / f"{check_id(trajectory_id, 'trajectory')}.jsonl"

    async def _append(self, trajectory_id: str, event: dict[str, Any]) -> None:
        line = json.dumps(event, ensure_ascii=False) + "\n"
        path = self._path(trajectory_id)

        def write() -> None:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a", encoding="utf-8") as f:
                f.write(line)

        async with self._lock:
            await anyio.to_thread.run_sync(write)

    async def create(
        self,
        *,
        kind: str,
        session_id: str,
        status: RunStatus,
        query: str | None = None,
        root_model: str | None = None,
        sub_model: str | None = None,
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
        )
        self._live[trajectory.id] = trajectory
        if status == "running":
            self._running.add(trajectory.id)
        await self._append(trajectory.id, {"event": "start", "trajectory": trajectory.model_dump(mode="json")})
        return trajectory

    async def add_step(self, trajectory_id: str, step: Step) -> None:
        trajectory = await self.get(trajectory_id)
        _accumulate(trajectory, step)
        trajectory.updated_at = time.time()
        await self._append(trajectory_id, {"event": "step", "step": step.model_dump(mode="json")})

    async def update(self, trajectory_id: str, **fields: Any) -> Trajectory:
        trajectory = await self.get(trajectory_id)
        fields["updated_at"] = time.time()
        for key, value in fields.items():
            setattr(trajectory, key, value)
        if fields.get("status") not in (None, "running"):
            self._running.discard(trajectory_id)
        dumped = trajectory.model_dump(mode="json", include=set(fields))
        await self._append(trajectory_id, {"event": "update", "fields": dumped})
        return trajectory

    def forget(self, trajectory_id: str) -> None:
        """Drop a finished trajectory from the cache (it stays on disk)."""
        if trajectory_id not in self._running:
            self._live.pop(trajectory_id, None)

    async def get(self, trajectory_id: str) -> Trajectory:
        cached = self._live.get(trajectory_id)
        if cached is not None:
            return cached
        path = self._path(trajectory_id)
        try:
            text = await anyio.to_thread.run_sync(path.read_text, "utf-8")
        except FileNotFoundError:
            raise NotFound(f"no trajectory {trajectory_id!r}; ids come from load_context and rlm_query") from None
        trajectory = _fold(text, trajectory_id)
        if trajectory.status == "running" and trajectory_id not in self._running:
            trajectory = await self._mark_interrupted(trajectory)
        return trajectory

    async def read(self, trajectory_id: str) -> Trajectory:
        """The trajectory as it is on disk, changing nothing: for readers outside the server (the CLI),
        which cannot tell a run that died from one another process is running."""
        path = self._path(trajectory_id)
        try:
            text = await anyio.to_thread.run_sync(path.read_text, "utf-8")
        except FileNotFoundError:
            raise NotFound(f"no trajectory {trajectory_id!r} in {self.directory}") from None
        return _fold(text, trajectory_id)

    async def recent(self, limit: int = 20) -> list[Trajectory]:
        """The most recently changed trajectories, newest first, read without side effects (see :meth:`read`)."""

        def scan() -> list[Trajectory]:
            if not self.directory.is_dir():
                return []
            paths = sorted(self.directory.glob("t_*.jsonl"), key=lambda p: p.stat().st_mtime, reverse=True)
            found = []
            for path in paths[:limit]:
                try:
                    found.append(_fold(path.read_text("utf-8"), path.stem))
                except (OSError, NotFound):
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


def _fold(text: str, trajectory_id: str) -> Trajectory:
    """Rebuild a trajectory from its events; a torn last line (a crash mid-write) is ignored."""
    trajectory: Trajectory | None = None
    for line in text.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        kind = event.get("event")
        if kind == "start":
            trajectory = Trajectory.model_validate(event["trajectory"])
        elif trajectory is None:
            continue
        elif kind == "step":
            _accumulate(trajectory, Step.model_validate(event["step"]))
        elif kind == "update":
            fields = {k: v for k, v in event["fields"].items() if k not in _DERIVED}
            trajectory = trajectory.model_validate({**trajectory.model_dump(), **fields})
    if trajectory is None:
        raise NotFound(f"trajectory {trajectory_id!r} is empty or unreadable")
    return trajectory
