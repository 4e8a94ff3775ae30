"""One trajectory step, built from what ran: the one place a :class:`~rlm_mcp.schemas.Step` is made.

A ``repl_exec`` call and each execution in an ``rlm_query`` run become a step of
the same shape (code, output, error, ``FINAL``, sub-calls); a run's step also
carries the root model's reply that asked for the code, on the first step of its
turn. Building both here keeps the two kinds of trajectory readable the same way.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from rlm_mcp.core.subcalls.broker import SubcallLog
from rlm_mcp.schemas import Step, code_error

if TYPE_CHECKING:
    from rlm_mcp.core.runs.replies import Reading
    from rlm_mcp.models import Completion
    from sandbox import ExecResult


def build_step(
    *,
    index: int,
    turn: int,
    started: float | None = None,
    code: str | None = None,
    result: ExecResult | None = None,
    sub_log: SubcallLog | None = None,
    final: str | None = None,
    notes: list[str] | None = None,
    root: tuple[Completion, Reading] | None = None,
    children: list[str] | None = None,
) -> Step:
    """A step; ``final`` counts only when no code ran (else the result's ``FINAL`` is the step's), ``root`` is the
    reply the step answers (None after the first step of a turn, and in repl_exec), ``notes`` are taken as given."""
    reply, reading = root or (None, None)
    sub_log = sub_log or SubcallLog()
    return Step(
        index=index,
        turn=turn,
        started_at=started or time.time(),
        elapsed_ms=result.elapsed_ms if result else 0.0,
        root_text=reading.text if reading else None,
        root_reasoning=(reading.reasoning or None) if reading else None,
        root_input_tokens=reply.usage.input_tokens if reply else 0,
        root_output_tokens=reply.usage.output_tokens if reply else 0,
        root_latency_ms=reply.latency_ms if reply else 0.0,
        code=code,
        stdout=result.stdout if result else "",
        error=code_error(result) if result else None,
        final=result.final if result else final,
        sub_call_count=len(sub_log.records),
        sub_input_tokens=sub_log.usage.input_tokens,
        sub_output_tokens=sub_log.usage.output_tokens,
        cached_sub_calls=sub_log.cached,
        sub_calls=sorted(sub_log.records, key=lambda r: r.started_at),
        child_runs=list(children or []),
        notes=list(notes or []),
    )
