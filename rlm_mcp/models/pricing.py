"""Cost estimates from a small, editable table of per-model prices.

Prices are US dollars per million input and output tokens for on-demand use,
as published when this table was last edited; your account's prices may differ.
Add or override entries with a JSON file named by ``RLM_PRICES_FILE``:
``{"amazon.nova-pro-v1:0": [0.8, 3.2]}``. A model that is in neither gives a cost
of ``null`` rather than a guess.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rlm_mcp.models import Usage
    from rlm_mcp.schemas import SubCallRecord

# model id (without a cross-region prefix such as "us.") -> (input, output) USD per 1M tokens
PRICES: dict[str, tuple[float, float]] = {
    "anthropic.claude-opus-4-5-20251101-v1:0": (5.0, 25.0),
    "anthropic.claude-sonnet-4-5-20250929-v1:0": (3.0, 15.0),
    "anthropic.claude-sonnet-4-20250514-v1:0": (3.0, 15.0),
    "anthropic.claude-haiku-4-5-20251001-v1:0": (1.0, 5.0),
    "anthropic.claude-3-5-haiku-20241022-v1:0": (0.8, 4.0),
    "amazon.nova-premier-v1:0": (2.5, 12.5),
    "amazon.nova-pro-v1:0": (0.8, 3.2),
    "amazon.nova-lite-v1:0": (0.06, 0.24),
    "amazon.nova-micro-v1:0": (0.035, 0.14),
    "openai.gpt-oss-120b-1:0": (0.15, 0.6),
    "openai.gpt-oss-20b-1:0": (0.07, 0.3),
}

_REGION_PREFIX = re.compile(r"^(us|eu|apac|ap|jp|au|ca|us-gov|global)\.")


class PriceTable:
    def __init__(self, extra_file: Path | None = None):
        self.prices = dict(PRICES)
        if extra_file is not None:
            raw = json.loads(extra_file.read_text())
            self.prices.update({str(k): (float(v[0]), float(v[1])) for k, v in raw.items()})

    def lookup(self, model: str) -> tuple[float, float] | None:
        model_id = model.rsplit("/", 1)[-1]  # an ARN ends with the model or profile id
        return self.prices.get(model_id) or self.prices.get(_REGION_PREFIX.sub("", model_id))

    def cost(self, model: str, input_tokens: int, output_tokens: int) -> float | None:
        price = self.lookup(model)
        if price is None:
            return None
        return (input_tokens * price[0] + output_tokens * price[1]) / 1_000_000


def run_cost(
    prices: PriceTable, root_model: str, root_usage: Usage, sub_calls: Iterable[SubCallRecord]
) -> tuple[float | None, float | None]:
    """A run's cost (root turns and the sub-calls really sent), and what its cached sub-calls would have cost.

    Either is None when a model it needs has no price.
    """
    cost = prices.cost(root_model, root_usage.input_tokens, root_usage.output_tokens)
    saved: float | None = 0.0
    for call in sub_calls:
        price = prices.cost(call.model, call.input_tokens, call.output_tokens)
        if call.cached:
            saved = None if saved is None or price is None else saved + price
        else:
            cost = None if cost is None or price is None else cost + price
    return (None if cost is None else round(cost, 6)), (None if saved is None else round(saved, 6))
