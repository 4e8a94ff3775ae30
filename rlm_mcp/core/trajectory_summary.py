"""The summary view of a trajectory: what ``get_trajectory(detail="summary")`` shows."""

from __future__ import annotations

from rlm_mcp.schemas import Trajectory

SUMMARY_CLIP_CHARS = 300
"""Characters of code, output and answers a summary keeps of each step."""


def _clip(text: str | None, limit: int = SUMMARY_CLIP_CHARS) -> str | None:
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
