"""The goals of issue 13 (performance as users feel it), each as a ratio or figure measured side by side in one run."""

from __future__ import annotations

from typing import Any

from benchmarks.stats import shown

MB = 1024 * 1024
GOALS = {
    "load_200": 1.3,
    "load_1024": 1.1,
    "repl_ms": 2.0,
    "fan_out": 1.05,
    "crowd_p99_s": 3.0,
    "guarded": 1.2,
}


def _verdict(value: float, goal: float) -> str:
    return "**met**" if value <= goal else "**not met**"


def _load_row(load: list[dict[str, Any]], size_mb: int) -> dict[str, Any] | None:
    for row in load:
        if row["kind"] == "ascii" and abs(row["file_bytes"] / MB - size_mb) < 0.1 * size_mb:
            return row
    return None


def rows(micro: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(goal, measured, verdict) for each goal this run measured."""
    out: list[tuple[str, str, str]] = []
    for size, goal in ((200, GOALS["load_200"]), (1024, GOALS["load_1024"])):
        row = _load_row(micro.get("load", []), size)
        if row is not None:
            spread = row.get("ratio_spread")
            measured = f"{row['load_s']} s vs {row['floor_s']} s: " + (
                shown(spread, "x") if spread else f"{row['time_ratio']}x"
            )
            out.append(
                (f"load by path / plain read, {size} MB, <= {goal}x", measured, _verdict(row["time_ratio"], goal))
            )
    if "repl" in micro:
        r = micro["repl"]
        ours = r.get("ours_ms")
        measured = f"{r['repl_exec']['median_ms']} ms (a trivial tool: {r['list_sessions']['median_ms']} ms" + (
            f"; rlm-mcp's part {shown(ours, ' ms')})" if ours else ")"
        )
        out.append(
            (
                f"`repl_exec` round trip p50, stdio, <= {GOALS['repl_ms']} ms",
                measured,
                _verdict(r["repl_exec"]["median_ms"], GOALS["repl_ms"]),
            )
        )
    if "fan_out" in micro and "first_ratio" in micro["fan_out"]:
        f = micro["fan_out"]
        worst = max(f["first_ratio"], f["ratio"])
        out.append(
            (
                f"200 sub-calls x 250 ms at concurrency 16 / ideal, <= {GOALS['fan_out']}x from the first batch",
                f"first batch {f['first_wall_s']} s vs {f['ideal_s']} s: {f['first_ratio']}x; later batches "
                f"{shown(f['ratio_spread'], 'x')}",
                _verdict(worst, GOALS["fan_out"]),
            )
        )
    if "crowd" in micro:
        c = micro["crowd"]
        out.append(
            (
                f"{c['clients']} simultaneous `load_context`, the last one waits <= {GOALS['crowd_p99_s']} s (p99)",
                f"p99 {c['p99_s']} s, max {c['max_s']} s, median {c['median_s']} s over {c['rounds']} round(s); "
                f"one load alone {c['alone_s']} s",
                _verdict(c["p99_s"], GOALS["crowd_p99_s"]),
            )
        )
    if micro.get("guarded"):
        worst = max(micro["guarded"], key=lambda r: r["ratio"])
        spread = worst.get("ratio_spread")
        out.append(
            (
                f"worst guarded/plain operation, <= {GOALS['guarded']}x",
                f"{worst['op']}: " + (shown(spread, "x") if spread else f"{worst['ratio']}x"),
                _verdict(worst["ratio"], GOALS["guarded"]),
            )
        )
    if "worker_start" in micro:
        w = micro["worker_start"]
        out.append(
            (
                "report: starting a confined worker (forked by the template / from nothing / a bare `python -I`)",
                f"{shown(w['forked_ms'], ' ms')} / {shown(w['cold_ms'], ' ms')} / {w['python_ms']['median']} ms; "
                f"CPU {w['forked_cpu_ms']} ms / {w['cold_cpu_ms']} ms",
                "reported",
            )
        )
    return out
