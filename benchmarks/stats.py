"""Medians and spreads of repeated, side-by-side measurements (the machine is shared: one number is not a figure)."""

from __future__ import annotations

import math
import statistics
from typing import Any


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile: the smallest value with at least ``share`` of the values at or below it."""
    ordered = sorted(values)
    return ordered[max(math.ceil(share * len(ordered)) - 1, 0)]


def spread(values: list[float], digits: int = 3) -> dict[str, Any]:
    """Median, 10th and 90th percentiles, minimum, maximum and count of ``values``."""
    return {
        "median": round(statistics.median(values), digits),
        "p10": round(percentile(values, 0.1), digits),
        "p90": round(percentile(values, 0.9), digits),
        "min": round(min(values), digits),
        "max": round(max(values), digits),
        "n": len(values),
    }


def ratios(ours: list[float], floor: list[float]) -> dict[str, Any]:
    """The spread of ``ours[i] / floor[i]``: each pair was measured side by side, under the same load."""
    return spread([a / b for a, b in zip(ours, floor, strict=True)])


def shown(s: dict[str, Any], unit: str = "") -> str:
    """``median (p10-p90, n=N)`` for a report."""
    return f"{s['median']}{unit} (p10-p90 {s['p10']}-{s['p90']}{unit}, n={s['n']})"
