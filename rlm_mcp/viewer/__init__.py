"""The trajectory viewer: one self-contained HTML page per run, readable offline.

:func:`render` turns a trajectory (and its nested runs) into a page whose CSS
and JavaScript are inline and whose data is embedded as JSON, so the file can
be mailed, archived or opened from disk with no network. The page is built in
the browser with ``textContent`` only, never ``innerHTML``: trajectories hold
model output and corpus text, which are hostile by assumption. A
Content-Security-Policy with the script's own hash forbids every other script
and every network request.

The view model computed here adds what the trajectory does not store: cost per
step from the price table (and which model has no price when it is unknown),
start and end offsets for the timeline, and each sub-call's share of the
corpus. That share counts corpus text only: the sandbox tells which ranges of
the corpus each prompt holds verbatim (:mod:`sandbox.worker.locate`), so instructions
are not counted and text sent twice counts once in the run's total, which
therefore never exceeds 100%. Trajectories recorded before that have only
prompt sizes; their figure is shown as such, labelled.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
import time
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any

from rlm_mcp import __version__
from rlm_mcp.errors import NotFound
from rlm_mcp.models.pricing import PriceTable
from rlm_mcp.schemas import Step, SubCallRecord, Trajectory

MAX_NESTED = 200
"""Nested runs embedded in one page at most (each is a trajectory of its own)."""

Loader = Callable[[str], Awaitable[Trajectory]]
_PLACEHOLDER = re.compile(r"\{\{(CSP|TITLE|CSS|DATA|JS)\}\}")


SCRIPTS = ("base.js", "timeline.js", "viewer.js")
"""Parts of the trajectory page's one script, in order; they share one function scope."""
INDEX_SCRIPTS = ("base.js", "index.js")
"""Parts of the index page's script."""


def _asset(name: str) -> str:
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


def _script(parts: tuple[str, ...] = SCRIPTS) -> str:
    return '(function () {\n  "use strict";\n' + "\n".join(_asset(name) for name in parts) + "})();\n"


def _cost(prices: PriceTable, model: str | None, input_tokens: int, output_tokens: int) -> float | None:
    if not input_tokens and not output_tokens:
        return 0.0
    if model is None:
        return None
    return prices.cost(model, input_tokens, output_tokens)


def _add(total: float | None, part: float | None) -> float | None:
    return None if total is None or part is None else total + part


OFFSET_DIGITS = 6
"""Timeline offsets in microseconds. Start and end are each rounded from exact times (never end = rounded
start + rounded length), and rounding keeps order, so a call that starts as another ends never overlaps it."""


def _offset(when: float, origin: float) -> float:
    return round(when - origin, OFFSET_DIGITS)


def _spans(call: SubCallRecord, corpus_chars: int | None) -> list[tuple[int, int]] | None:
    """The call's corpus ranges, clipped to the corpus (None when the record predates them)."""
    if call.corpus_spans is None or not corpus_chars:
        return None
    clipped = [(max(0, s[0]), min(corpus_chars, s[1])) for s in call.corpus_spans if len(s) == 2]
    return [(a, b) for a, b in clipped if b > a]


def union_length(spans: list[tuple[int, int]]) -> int:
    """Characters covered by a set of ranges, each counted once."""
    covered, reach = 0, -1
    for start, end in sorted(spans):
        if end <= reach:
            continue
        covered += end - max(start, reach)
        reach = end
    return covered


def _sub_view(call: SubCallRecord, origin: float, corpus_chars: int | None, prices: PriceTable) -> dict[str, Any]:
    spans = _spans(call, corpus_chars)
    corpus = union_length(spans) if spans is not None else None
    cost = _cost(prices, call.model, call.input_tokens, call.output_tokens)
    return {
        "model": call.model,
        "t": _offset(call.started_at, origin),
        "end": _offset(call.started_at + call.latency_ms / 1000, origin),
        "ms": round(call.latency_ms, 1),
        "chars": call.prompt_chars,
        "corpus": corpus,
        "share": round(corpus / corpus_chars, 6) if corpus is not None and corpus_chars else None,
        "in": call.input_tokens,
        "out": call.output_tokens,
        # A cached answer cost nothing this time: its tokens are what it saved.
        "cost": 0.0 if call.cached else cost,
        "cached": call.cached,
        "unpriced": [call.model] if cost is None and not call.cached else [],
        "error": call.error,
        "prompt": call.prompt_preview,
        "response": call.response_preview,
    }


def _step_view(
    step: Step, trajectory: Trajectory, origin: float, prices: PriceTable, children: list[dict[str, Any]]
) -> dict[str, Any]:
    root_model = trajectory.root_model if trajectory.kind == "run" else None
    calls = [_sub_view(c, origin, trajectory.corpus_chars, prices) for c in step.sub_calls]
    cost = _cost(prices, root_model, step.root_input_tokens, step.root_output_tokens)
    unpriced = [root_model or "the root model"] if cost is None else []
    for call in calls:
        cost = _add(cost, call["cost"])
        unpriced.extend(m for m in call["unpriced"] if m not in unpriced)
    spans = [_spans(c, trajectory.corpus_chars) for c in step.sub_calls]
    known = [span for group in spans if group is not None for span in group]
    corpus = union_length(known) if spans and all(group is not None for group in spans) else None
    return {
        "index": step.index,
        "turn": step.turn,
        "t": round(step.started_at - origin, 4),
        "ms": round(step.elapsed_ms, 1),
        "root_ms": round(step.root_latency_ms, 1),
        "root_text": step.root_text,
        "root_in": step.root_input_tokens,
        "root_out": step.root_output_tokens,
        "code": step.code,
        "stdout": step.stdout,
        "error": step.error.model_dump() if step.error else None,
        "final": step.final,
        "notes": step.notes,
        "sub_count": step.sub_call_count,
        "cached": step.cached_sub_calls,
        "sub_in": step.sub_input_tokens,
        "sub_out": step.sub_output_tokens,
        "subs": calls,
        "corpus": corpus,
        "share": round(corpus / trajectory.corpus_chars, 6) if corpus is not None and trajectory.corpus_chars else None,
        "cost": cost,
        "unpriced": unpriced,
        "children": children,
    }


def view_model(trajectory: Trajectory, children: dict[str, Trajectory], prices: PriceTable) -> dict[str, Any]:
    """The page's data: the run, its steps and sub-calls with offsets and costs, nested runs inside their steps."""
    origin = trajectory.created_at
    steps = []
    total_cost: float | None = 0.0
    nested_cost: float | None = 0.0
    for step in trajectory.steps:
        kids = [view_model(children[c], children, prices) for c in step.child_runs if c in children]
        view = _step_view(step, trajectory, origin, prices, kids)
        steps.append(view)
        total_cost = _add(total_cost, view["cost"])
        for kid in kids:
            nested_cost = _add(nested_cost, kid["totals"]["cost_with_nested"])
    ends = [origin + 0.001]
    for step in trajectory.steps:
        ends.append(step.started_at + step.elapsed_ms / 1000)
        ends.extend(c.started_at + c.latency_ms / 1000 for c in step.sub_calls)
    if trajectory.status not in ("running", "open"):
        ends.append(trajectory.updated_at)
    calls = [c for s in trajectory.steps for c in s.sub_calls]
    read_chars = sum(c.prompt_chars for c in calls)
    corpus_chars = trajectory.corpus_chars
    spans = [_spans(c, corpus_chars) for c in calls]
    exact = bool(calls) and all(group is not None for group in spans)
    sent = union_length([span for group in spans if group is not None for span in group]) if exact else None
    unpriced: list[str] = []
    for view in steps:
        unpriced.extend(m for m in view["unpriced"] if m not in unpriced)
    shares = [sub["share"] for view in steps for sub in view["subs"] if sub["share"] is not None]
    return {
        "id": trajectory.id,
        "kind": trajectory.kind,
        "status": trajectory.status,
        "query": trajectory.query,
        "answer": trajectory.answer,
        "message": trajectory.message,
        "root_model": trajectory.root_model,
        "sub_model": trajectory.sub_model,
        "corpus_chars": trajectory.corpus_chars,
        "depth": trajectory.depth,
        "parent_id": trajectory.parent_id,
        "created_at": trajectory.created_at,
        "span_s": round(max(ends) - origin, 4),
        "elapsed_s": trajectory.elapsed_s,
        "iterations": trajectory.iterations,
        "sub_calls": trajectory.sub_calls,
        "failed": sum(1 for s in trajectory.steps for c in s.sub_calls if c.error is not None),
        "usage": trajectory.usage.model_dump(),
        "cached_sub_calls": trajectory.cached_sub_calls,
        "cost_saved": trajectory.cost_saved_usd,
        "resumes": [r.model_dump(mode="json") for r in trajectory.resumes],
        "steps": steps,
        "totals": {
            "cost": total_cost,
            "cost_with_nested": _add(total_cost, nested_cost),
            "recorded_cost": trajectory.cost_usd,
            "unpriced": unpriced,
            "read_chars": read_chars,
            "corpus_sent": sent,
            "coverage": round(sent / corpus_chars, 6) if sent is not None and corpus_chars else None,
            "prompt_ratio": round(read_chars / corpus_chars, 4) if corpus_chars and not exact else None,
            "share_scale": max(shares, default=None),
            "nested": sum(len(s["children"]) for s in steps),
        },
    }


async def collect_nested(trajectory: Trajectory, load: Loader) -> dict[str, Trajectory]:
    """Every nested run below ``trajectory``, depth first, up to :data:`MAX_NESTED`; missing ones are skipped."""
    found: dict[str, Trajectory] = {}
    pending = [c for s in trajectory.steps for c in s.child_runs]
    while pending and len(found) < MAX_NESTED:
        child_id = pending.pop(0)
        if child_id in found:
            continue
        try:
            child = await load(child_id)
        except NotFound:
            continue
        found[child_id] = child
        pending.extend(c for s in child.steps for c in s.child_runs)
    return found


def _embed(data: Any) -> str:
    """JSON that cannot end its <script> element early, whatever text it holds."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def content_security_policy(script: str) -> str:
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode()
    return (
        f"default-src 'none'; script-src 'sha256-{digest}'; style-src 'unsafe-inline'; img-src data:; "
        "base-uri 'none'; form-action 'none'"
    )


def page_policy(parts: tuple[str, ...] = SCRIPTS) -> str:
    """The policy the page declares, for servers to send as a header as well."""
    return content_security_policy(_script(parts))


def page(title: str, data: dict[str, Any], parts: tuple[str, ...] = SCRIPTS) -> str:
    """A self-contained page: the data embedded as JSON, drawn by the script ``parts``."""
    script = _script(parts)
    values = {
        "CSP": content_security_policy(script),
        "TITLE": html.escape(title),
        "CSS": _asset("viewer.css"),
        "DATA": _embed({"generated_at": time.time(), "version": __version__, **data}),
        "JS": script,
    }
    # One pass, so nothing inserted (the data above all) is ever read as a placeholder.
    return _PLACEHOLDER.sub(lambda match: values[match[1]], _asset("page.html"))


def render(trajectory: Trajectory, children: dict[str, Trajectory], prices: PriceTable) -> str:
    """The whole page, as one string."""
    return page(f"rlm-mcp trajectory {trajectory.id}", {"run": view_model(trajectory, children, prices)})


async def render_trajectory(trajectory_id: str, load: Loader, prices: PriceTable) -> str:
    """Load a trajectory and its nested runs, and render the page."""
    trajectory = await load(trajectory_id)
    return render(trajectory, await collect_nested(trajectory, load), prices)
