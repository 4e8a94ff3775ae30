"""The share of harmless cells that run as in CPython, per source and per refusal cause."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

from benchmarks.compat.replay import AFTER_REFUSAL, HARMFUL_RAN, Outcome


def summary(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    """Counts for a report or a results file: overall, per source group, per trajectory kind, per cause."""
    harmless = [o for o in outcomes if o.cell.label == "harmless"]
    by_id = {o.cell.id: o for o in outcomes}
    direct: Counter[str] = Counter()
    knock_on: Counter[str] = Counter()
    for outcome in harmless:
        if outcome.ok:
            continue
        if outcome.status == AFTER_REFUSAL:
            first = by_id[outcome.causes[0].removeprefix("after ")]
            for cause in first.causes:
                knock_on[cause] += 1
        else:
            for cause in outcome.causes:
                direct[cause] += 1
    groups: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    kinds: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for outcome in harmless:
        for table, key in ((groups, outcome.trajectory.source_group), (kinds, outcome.trajectory.kind)):
            table[key][0] += outcome.ok
            table[key][1] += 1
    harmful = [o for o in outcomes if o.cell.label == "harmful"]
    return {
        "harmless_cells": len(harmless),
        "harmless_same": sum(o.ok for o in harmless),
        "trajectories": len({o.trajectory.id for o in outcomes}),
        "harmful_cells": len(harmful),
        "harmful_not_refused": sum(o.status == HARMFUL_RAN for o in harmful),
        "groups": {name: {"same": same, "cells": total} for name, (same, total) in sorted(groups.items())},
        "kinds": {name: {"same": same, "cells": total} for name, (same, total) in sorted(kinds.items())},
        "causes": {
            cause: {"refused_cells": direct[cause], "later_cells_lost": knock_on[cause]}
            for cause in sorted(set(direct) | set(knock_on), key=lambda c: (-direct[c] - knock_on[c], c))
        },
    }


def _share(same: int, total: int) -> str:
    return f"{same}/{total} ({100 * same / total:.1f}%)" if total else "0/0"


def render(data: dict[str, Any]) -> str:
    lines = [
        f"Harmless cells that run as in CPython: {_share(data['harmless_same'], data['harmless_cells'])} "
        f"over {data['trajectories']} trajectories",
    ]
    if data["harmful_cells"]:
        lines.append(f"Harmful cells not refused: {data['harmful_not_refused']} of {data['harmful_cells']}")
    lines += ["", "Per source:"]
    lines += [f"  {_share(v['same'], v['cells']):>18}  {name}" for name, v in data["groups"].items()]
    lines += ["", "Per kind:"]
    lines += [f"  {_share(v['same'], v['cells']):>18}  {name}" for name, v in data["kinds"].items()]
    lines += ["", "Refusal causes (cells refused / later cells of the same run that failed because of it):"]
    if not data["causes"]:
        lines.append("  none")
    for cause, counts in data["causes"].items():
        lines.append(f"  {counts['refused_cells']:>4} / {counts['later_cells_lost']:<4} {cause}")
    return "\n".join(lines)


def failures(outcomes: Sequence[Outcome]) -> dict[str, str]:
    """Cell id -> reason, for every harmless cell that does not run as in CPython."""
    return {o.cell.id: o.reason for o in outcomes if o.cell.label == "harmless" and not o.ok}
