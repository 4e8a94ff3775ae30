"""Running the tasks at each corpus size and collecting what BENCHMARKS.md reports."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

from benchmarks import corpora, harness
from benchmarks.tasks import Oracle, Task, corpus_lines, root_script
from rlm_mcp.testing.bedrock import ConverseFake


def build_corpus(task: Task, work: Path, tokens: int) -> corpora.Corpus:
    directory = work / "corpora" / f"{task.name}-{tokens}"
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    return task.build(directory, tokens)


def speedup(trajectory: dict[str, Any]) -> float | None:
    """Sequential sub-call time over the wall time of the steps that made them: what parallelism bought."""
    busy = [s for s in trajectory["steps"] if s["sub_calls"]]
    wall = sum(s["elapsed_ms"] for s in busy)
    sequential = sum(c["latency_ms"] for s in busy for c in s["sub_calls"])
    return round(sequential / wall, 2) if wall else None


async def run_task(
    task: Task, tokens: int, work: Path, target: harness.Target, fake: ConverseFake | None, latency: float
) -> dict[str, Any]:
    corpus = build_corpus(task, work, tokens)
    lines = corpus_lines(corpus)
    row: dict[str, Any] = {"task": task.name, "title": task.title, "tokens": tokens, "chars": corpus.chars}
    totals = {
        "score": 0.0,
        "sub_calls": 0,
        "iterations": 0,
        "root_input_tokens": 0,
        "root_output_tokens": 0,
        "sub_input_tokens": 0,
        "sub_output_tokens": 0,
        "cost_usd": 0.0,
        "wall_s": 0.0,
        "coverage": 0.0,
        "repeated": 0.0,
    }
    speedups = []
    # Offline the budget is no object; on real models it bounds what a run can cost.
    budget = "100000" if fake is not None else "1000"
    async with harness.server(target, work / "corpora", RLM_MAX_SUB_CALLS=budget) as srv:
        started = time.perf_counter()
        loaded = await srv.call("load_context", path=str(corpus.path), **task.load)
        row["load_s"] = round(time.perf_counter() - started, 3)
        questions = task.questions(corpus)
        for question in questions:
            oracle = Oracle(question.answer, latency)
            if fake is not None:
                fake.respond = root_script(question, oracle)
            started = time.perf_counter()
            result = await srv.call("rlm_query", session_id=loaded["session_id"], query=question.query)
            totals["wall_s"] += time.perf_counter() - started
            trajectory = await srv.call("get_trajectory", trajectory_id=result["trajectory_id"], detail="full")
            totals["score"] += question.score(result["answer"])
            totals["sub_calls"] += result["sub_calls"]
            totals["iterations"] += result["iterations"]
            for key, value in result["usage"].items():
                totals[key] += value
            if result["cost_usd"] is None:  # a model outside the price table: no estimate rather than a guess
                row["cost_unknown"] = True
            totals["cost_usd"] += result["cost_usd"] or 0.0
            if oracle.chunks:
                cov = oracle.coverage(lines)
                totals["coverage"] = max(totals["coverage"], cov["coverage"])
                totals["repeated"] = max(totals["repeated"], cov["repeated"])
            if (s := speedup(trajectory)) is not None:
                speedups.append(s)
            if result["status"] != "completed":
                row.setdefault("problems", []).append(f"{result['status']}: {result.get('message')}")
        row.update(srv.memory())
    n = len(questions)
    row.update(totals)
    row["score"] = round(totals["score"] / n, 4)
    row["wall_s"] = round(totals["wall_s"], 3)
    row["cost_usd"] = round(totals["cost_usd"], 6)
    # Coverage comes from the oracle; real models (--bedrock) get prompts the oracle never sees.
    row["coverage"] = round(totals["coverage"], 4) if fake is not None else None
    row["repeated"] = round(totals["repeated"], 4) if fake is not None else None
    row["speedup"] = max(speedups) if speedups else None
    row["questions"] = n
    shutil.rmtree(corpus.path.parent, ignore_errors=True)
    return row
