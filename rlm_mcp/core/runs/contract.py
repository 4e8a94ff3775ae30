"""What a run is asked to do, what it reports, and what a nested run may see of the run that started it.

:mod:`rlm_mcp.core.runs.loop` implements runs and :mod:`rlm_mcp.core.runs.recursion`
starts nested ones; both import this module and neither imports the other. The
loop is handed something that answers :class:`Nesting` (a recursion, or nothing)
and gives it itself as a :class:`Parent`: the few values and actions a nested run
needs. That keeps the dependency one way and the surface a nested run can touch
small enough to read at a glance.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol

from rlm_mcp.models import Usage
from rlm_mcp.schemas import RunStatus, SubCallRecord

if TYPE_CHECKING:
    from rlm_mcp.core.subcalls.budget import Budget
    from rlm_mcp.core.trajectories import TrajectoryStore
    from rlm_mcp.progress import ProgressReporter, StepProgress
    from sandbox import CallHandler, LoadInfo, Sandbox


@dataclass(frozen=True)
class RunConfig:
    query: str
    root_model: str
    sub_model: str | None
    max_iterations: int
    max_sub_calls: int
    timeout_s: float
    root_max_tokens: int
    sub_context_tokens: int
    max_depth: int = 1
    """Nesting allowed for rlm_query inside the REPL: 1 means the code cannot start nested runs."""
    root_protocol: Literal["auto", "tools", "text"] = "auto"
    """``tools``, ``text`` or ``auto`` (tools unless the backend or model has none)."""
    max_tokens: int | None = None
    """Tokens (in and out, root and sub-calls) the run may use; None for no limit."""
    max_cost_usd: float | None = None
    """Dollars the run may spend, by the price table; None for no limit."""


@dataclass
class RunOutcome:
    status: RunStatus
    answer: str | None = None
    message: str | None = None
    iterations: int = 0
    root_usage: Usage = field(default_factory=Usage)
    sub_usage: Usage = field(default_factory=Usage)
    sub_calls: list[SubCallRecord] = field(default_factory=list)
    elapsed_s: float = 0.0
    cost_usd: float | None = None
    cost_saved_usd: float | None = None


class NestedRun(Protocol):
    """A run started from a parent's code: it runs to its end and says how it ended."""

    async def run(self) -> RunOutcome: ...


class Parent(Protocol):
    """What a nested run reads of the run whose code started it, and what it may ask of it."""

    config: RunConfig
    trajectory_id: str
    session_id: str
    depth: int
    """1 for a run started by the rlm_query tool; a nested run is one deeper than its parent."""
    sandbox: Sandbox
    """The parent's sandbox, whose documents a nested run without context of its own loads."""
    trajectories: TrajectoryStore
    budget: Budget
    """Shared by the whole tree of runs."""
    step_progress: StepProgress

    @property
    def can_recurse(self) -> bool: ...

    def remaining_s(self) -> float:
        """Seconds left before the parent's deadline, which a nested run inherits."""
        ...

    def absorb(self, child: RunOutcome) -> None:
        """Count a nested run's spending towards the parent's."""
        ...

    async def report(self, value: float, message: str) -> None:
        """A progress report in the parent's current step."""
        ...

    def nested(
        self,
        *,
        config: RunConfig,
        trajectory_id: str,
        sandbox: Sandbox,
        corpus: LoadInfo,
        progress: ProgressReporter,
    ) -> NestedRun:
        """A run one level deeper on the parent's models, budget, owner and nesting."""
        ...


class Nesting(Protocol):
    """What the loop is handed to serve ``rlm_query`` from its code.

    :class:`~rlm_mcp.core.runs.recursion.Recursion` is the one the server uses; a run without one refuses it."""

    def handler(self, parent: Parent, turn: int, children: list[str]) -> CallHandler:
        """Serves the code's requests during ``turn``; each nested run's trajectory id is added to ``children``."""
        ...
