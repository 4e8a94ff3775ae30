"""A trajectory rebuilt from its event log (``start``, ``step``, ``update``), damage included.

Every good record is kept. A record that cannot be read (garbled bytes, ``{}``,
an invalid field) is listed in the trajectory's ``damaged`` with where it is and
why; where it may have been a step, a ``DamagedRecord`` gap step takes its place
in ``steps``. A damaged start record leaves a stand-in that says so, with every
later record still applied: one bad record never hides the others.
"""

from __future__ import annotations

import json
import logging
import re

from rlm_mcp.errors import NotFound, describe_damage
from rlm_mcp.principals import LOCAL
from rlm_mcp.schemas import CodeError, Damage, Step, Trajectory
from rlm_mcp.store import LogRecord

log = logging.getLogger(__name__)
DERIVED = frozenset({"steps", "usage", "sub_calls", "iterations", "sub_prompt_chars", "damaged"})
"""Fields that follow from the steps and the reading: an update record never sets them."""


def accumulate(trajectory: Trajectory, step: Step) -> None:
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


_EVENT = re.compile(rb'"event"\s*:\s*"(\w+)"')


def _stand_in(trajectory_id: str, created_at: float) -> Trajectory:
    """What is known of a trajectory whose start record is damaged: its id, and what later records say."""
    return Trajectory(
        id=trajectory_id,
        kind="run",
        session_id="unknown",
        status="interrupted",
        created_at=created_at,
        updated_at=created_at,
        message="the start record of this trajectory is damaged (see damaged): its kind, session and question "
        "are unknown; the records after it are shown",
    )


def _gap(trajectory: Trajectory, damage: Damage) -> Step:
    last = trajectory.steps[-1] if trajectory.steps else None
    return Step(
        index=last.index + 1 if last else 0,
        turn=last.turn if last else 0,
        started_at=last.started_at if last else trajectory.created_at,
        elapsed_ms=0.0,
        error=CodeError(
            type="DamagedRecord", message=f"a step may be missing here: {damage.where} is damaged ({damage.problem})"
        ),
    )


def fold(records: list[LogRecord], trajectory_id: str) -> Trajectory:
    """Rebuild a trajectory from its events; a damaged one is listed in ``damaged`` and every other kept.

    A torn last record (a crash mid-write) never reaches here: the store drops it.
    """
    trajectory: Trajectory | None = None
    owner = LOCAL  # in the start event; records written before owners existed belong to the local principal
    damaged: list[Damage] = []
    for record in records:
        kind: str | None = None
        try:
            event = json.loads(record.data)
            if not isinstance(event, dict):
                raise ValueError(f"a JSON {type(event).__name__}, not an event object")
            kind = event.get("event")
            if kind == "start":
                started = Trajectory.model_validate(event["trajectory"])
                if trajectory is None:
                    trajectory = started
                    owner = event.get("owner") if isinstance(event.get("owner"), str) else LOCAL
                    continue
                raise ValueError("a second start record")
            if kind not in ("step", "update"):
                raise ValueError(f"an unknown event {kind!r}" if kind is not None else "a record with no event")
            if trajectory is None:
                trajectory = _stand_in(trajectory_id, 0.0)
            if kind == "step":
                accumulate(trajectory, Step.model_validate(event["step"]))
            else:
                fields = {k: v for k, v in event["fields"].items() if k not in DERIVED}
                trajectory = trajectory.model_validate({**trajectory.model_dump(), **fields})
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            if kind is None:
                found = _EVENT.search(record.data)
                kind = found[1].decode() if found else None
            if trajectory is None and kind != "start":
                trajectory = _stand_in(trajectory_id, 0.0)
            problem = describe_damage(exc)
            last = trajectory.steps[-1].index if trajectory is not None and trajectory.steps else None
            damage = Damage(where=record.where, problem=problem, after_step=last)
            damaged.append(damage)
            log.warning("trajectory %s: %s is damaged: %s", trajectory_id, record.where, problem)
            if trajectory is not None and kind in ("step", None):
                accumulate(trajectory, _gap(trajectory, damage))
    if trajectory is None:
        if damaged:
            trajectory = _stand_in(trajectory_id, 0.0)
        else:
            raise NotFound(f"trajectory {trajectory_id!r} is empty")
    if trajectory.created_at == 0.0 and trajectory.steps:  # a stand-in: dated by its first step
        trajectory.created_at = min(step.started_at for step in trajectory.steps)
    trajectory.damaged = damaged
    trajectory._owner = owner
    return trajectory
