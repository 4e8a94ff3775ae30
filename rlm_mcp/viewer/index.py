"""The index of runs at ``/trajectories/``: newest first, with status, question, answer, cost and a link.

The rows come from :meth:`rlm_mcp.core.service.RLMService.run_list`, which lists
only the caller's own runs; on a server that authenticates, each row carries
a signed link to its page (a browser following it sends no bearer header).
This module only turns them into a page (drawn in the browser with ``textContent``, like the
trajectory page, since questions and answers are hostile text).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rlm_mcp.models.pricing import PriceTable
from rlm_mcp.schemas import Trajectory
from rlm_mcp.viewer import INDEX_SCRIPTS, page, page_policy

QUERY_PREVIEW_CHARS = 240
"""How much of a run's question the list of runs shows, on one line."""


def _preview(text: str | None) -> str | None:
    if text is None:
        return None
    line = " ".join(text.split())
    return line if len(line) <= QUERY_PREVIEW_CHARS else line[: QUERY_PREVIEW_CHARS - 1] + "…"


def row(trajectory: Trajectory, prices: PriceTable, link: Callable[[str], str] | None = None) -> dict[str, Any]:
    """One run as the index shows it; ``link`` signs the link to its page (see :mod:`rlm_mcp.server.auth.links`)."""
    models = [m for m in (trajectory.root_model, trajectory.sub_model) if m]
    unpriced = [m for m in dict.fromkeys(models) if prices.lookup(m) is None]
    return {
        "id": trajectory.id,
        "link": link(trajectory.id) if link is not None else None,
        "kind": trajectory.kind,
        "status": trajectory.status,
        "created_at": trajectory.created_at,
        "updated_at": trajectory.updated_at,
        "query": _preview(trajectory.query),
        "answer": _preview(trajectory.answer),
        "message": _preview(trajectory.message),
        "steps": len(trajectory.steps),
        "sub_calls": trajectory.sub_calls,
        "elapsed_s": trajectory.elapsed_s,
        "cost": trajectory.cost_usd,
        "unpriced": unpriced if trajectory.cost_usd is None else [],
        "cost_note": _cost_note(trajectory, unpriced),
    }


def _cost_note(trajectory: Trajectory, unpriced: list[str]) -> str | None:
    """Why a run has no cost when every model has a price: it is not over, or it was never recorded."""
    if trajectory.cost_usd is not None or unpriced:
        return None
    return "cost not known yet" if trajectory.status == "running" else "cost not recorded"


def render_index(trajectories: list[Trajectory], prices: PriceTable, link: Callable[[str], str] | None = None) -> str:
    return page("rlm-mcp runs", {"runs": [row(t, prices, link) for t in trajectories]}, INDEX_SCRIPTS)


def index_policy() -> str:
    """The index page's Content-Security-Policy, for the server to send as a header too."""
    return page_policy(INDEX_SCRIPTS)
