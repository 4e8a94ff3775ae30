"""Budgets: how many sub-calls, tokens and dollars a run (or a repl_exec session) may still spend.

Spending is checked *before* it happens, against a worst-case estimate: a batch of
sub-calls is admitted whole or refused whole (the code sees
``SubcallBudgetExceeded``, with what is left), and a root turn that could overrun
ends the run at its limit. The estimate of a request is its prompt at
:data:`~rlm_mcp.models.base.CHARS_PER_TOKEN` characters per token plus the full output
limit, priced from the :class:`~rlm_mcp.models.pricing.PriceTable`. What a request really
used is charged when it comes back; an estimate can be off (tokenizers differ), so
spending may pass a limit by the error of one request, never by a second one.

Sub-calls answered from the cache (:mod:`rlm_mcp.core.subcalls.cache`) cost nothing and
are charged to nothing. A dollar limit needs a price for every model it pays for:
a model missing from the price table is refused with a message saying so (rather
than spending money that cannot be counted).
"""

from __future__ import annotations

from dataclasses import dataclass

from rlm_mcp.models import Message, TextBlock, ToolCall, ToolResult
from rlm_mcp.models.base import CHARS_PER_TOKEN
from rlm_mcp.models.pricing import PriceTable
from rlm_mcp.schemas import BudgetView
from sandbox import SubcallRefused

EXCEEDED = "SubcallBudgetExceeded"


@dataclass(frozen=True)
class Spend:
    """What a request may cost at most: tokens in and out, and dollars (None without a price)."""

    tokens: int
    cost_usd: float | None


def estimate(prices: PriceTable, model: str, prompt_chars: list[int], max_output_tokens: int) -> Spend:
    """The worst case of sending prompts of these sizes to ``model``, each allowed ``max_output_tokens``."""
    input_tokens = sum(-(-chars // CHARS_PER_TOKEN) for chars in prompt_chars)
    output_tokens = max_output_tokens * len(prompt_chars)
    return Spend(input_tokens + output_tokens, prices.cost(model, input_tokens, output_tokens))


def conversation_chars(system: str, messages: list[Message]) -> int:
    """The characters of a root turn's request (system prompt and every message), for its estimate."""
    total = len(system)
    for message in messages:
        for block in message.content:
            if isinstance(block, TextBlock | ToolResult):
                total += len(block.text)
            elif isinstance(block, ToolCall):
                total += len(str(block.input))
    return total


def _usd(value: float) -> str:
    return f"${value:.4f}"


class Budget:
    """Calls, tokens and dollars that may still be spent; shared by everything charged to it (nested runs too)."""

    def __init__(self, limit: int, *, max_tokens: int | None = None, max_cost_usd: float | None = None):
        self.limit = limit
        self.used = 0
        self.max_tokens = max_tokens
        self.tokens = 0
        self.max_cost_usd = max_cost_usd
        self.cost_usd = 0.0
        self.cost_known = True
        """False once something was charged without a price (then ``cost_usd`` is a lower bound)."""

    @property
    def remaining(self) -> int:
        return max(self.limit - self.used, 0)

    def take(self, count: int) -> None:
        """Charge ``count`` calls (no tokens: e.g. a nested run, whose own spending is charged as it goes)."""
        if count > self.remaining:
            raise SubcallRefused(
                f"the sub-call budget is used up: {self.used} of {self.limit} made, {count} more requested. "
                f"{self.left()}. Aggregate what you have, or use fewer, larger chunks",
                error_type=EXCEEDED,
            )
        self.used += count

    def needs_price(self, model: str, prices: PriceTable) -> str | None:
        """Why a dollar limit cannot be kept for ``model`` (it has no price), or None."""
        if self.max_cost_usd is None or prices.lookup(model) is not None:
            return None
        return (
            f"this budget is in dollars (max_cost_usd) but {model!r} has no price in the price table, so its "
            "spending cannot be counted: add it with RLM_PRICES_FILE, or drop the dollar limit"
        )

    def overrun(self, spend: Spend) -> str | None:
        """What ``spend`` would take past a limit (tokens or dollars), or None if it fits."""
        problems = []
        if self.max_tokens is not None and self.tokens + spend.tokens > self.max_tokens:
            problems.append(f"up to {spend.tokens:,} tokens")
        cost = spend.cost_usd
        if self.max_cost_usd is not None and cost is not None and self.cost_usd + cost > self.max_cost_usd:
            problems.append(f"up to {_usd(cost)}")
        return " and ".join(problems) or None

    def admit(self, calls: int, spend: Spend) -> None:
        """Admit a batch of ``calls`` whole (charging the calls), or refuse it whole saying what is left."""
        if calls > self.remaining:
            self.take(calls)  # raises, with the calls wording
        over = self.overrun(spend)
        if over is not None:
            raise SubcallRefused(
                f"the budget cannot cover this batch of {calls} sub-calls: it may use {over} (prompt length at "
                f"{CHARS_PER_TOKEN} characters per token, plus the full output limit of each). {self.left()}. "
                "Send fewer or shorter prompts, or aggregate what you have",
                error_type=EXCEEDED,
            )
        self.used += calls

    def charge(self, tokens: int, cost_usd: float | None) -> None:
        """What a request really used, once it is back."""
        self.tokens += tokens
        if cost_usd is None:
            self.cost_known = self.cost_known and tokens == 0
        else:
            self.cost_usd += cost_usd

    def left(self) -> str:
        """What remains, in words: calls, and tokens and dollars where they are limited."""
        parts = [f"{self.remaining} of {self.limit} sub-calls"]
        if self.max_tokens is not None:
            parts.append(f"{max(self.max_tokens - self.tokens, 0):,} of {self.max_tokens:,} tokens")
        if self.max_cost_usd is not None:
            parts.append(f"{_usd(max(self.max_cost_usd - self.cost_usd, 0.0))} of {_usd(self.max_cost_usd)}")
        return "Left: " + ", ".join(parts)

    def view(self) -> BudgetView:
        return BudgetView(
            sub_calls_used=self.used,
            sub_calls_limit=self.limit,
            sub_calls_remaining=self.remaining,
            tokens_used=self.tokens,
            tokens_limit=self.max_tokens,
            tokens_remaining=None if self.max_tokens is None else max(self.max_tokens - self.tokens, 0),
            cost_usd_spent=round(self.cost_usd, 6) if self.cost_known else None,
            cost_usd_limit=self.max_cost_usd,
            cost_usd_remaining=(
                None if self.max_cost_usd is None else round(max(self.max_cost_usd - self.cost_usd, 0.0), 6)
            ),
        )
