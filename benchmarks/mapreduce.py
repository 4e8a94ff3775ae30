"""Do the REPL's map-reduce helpers save a root work? The scripted tasks, run twice: as written, and with helpers.

The existing scripted roots (``benchmarks.tasks``) define their own chunking
functions and fan out with ``llm_query_batched``; the variant here does the same
with ``split_chunks`` and ``llm_map``, step for step, so the two can be compared
on what a root spends: iterations (root turns), sub-calls, lines and tokens of
code it writes, and the score. Each pair runs twice: with the exact oracle, and
with a sub-model whose first answer in a run is an error (Bedrock's
``ModelErrorException``, which boto3 does not retry). The existing scripts do not
retry, as a first draft by a model usually does not: the run shows what that
costs, while ``llm_map`` sends the failed prompt again by itself. Every run gets
a session of its own, so no variable of one run helps another.
"""

from __future__ import annotations

import ast
import re
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks import harness, tasks
from benchmarks.run import build_corpus
from benchmarks.tasks import CHUNK_CHARS, LABEL_ASK, MARK, PAIRS_AGGREGATE, PROBE, Oracle, Question, Task
from rlm_mcp.testing.bedrock import ConverseFake, ConverseRequest, Fault, Reply, code, scripted

ASKED = re.compile(r"llm_query_batched\(\[(.+?) \+ MARK")


def _asked(step: str) -> str:
    """The instruction an existing step sends with every chunk, so that both variants ask the same."""
    match = ASKED.search(step)
    assert match is not None, step
    return ast.literal_eval(match.group(1))


def _fan_out(ask: str, source: str, parse: str) -> str:
    return f"rs = llm_map({ask + MARK + '{chunk}'!r}, split_chunks({source}, {CHUNK_CHARS}), parse={parse!r})\n"


def helper_steps(task: str, question: Question) -> list[str] | None:
    """The question's steps with the helpers in place of hand-written chunking and fan-out (None: no change)."""
    steps = question.steps
    if task == "s-niah":
        fan_out = (
            _fan_out(_asked(steps[1]), "context", "text")
            + "found = [r['value'] for r in rs if r['value'] != 'NONE']\nprint(len(rs), 'chunks; found:', found)"
        )
        return [PROBE, fan_out, steps[-1]]
    if task in ("oolong", "oolong-pairs"):
        fan_out = _fan_out(LABEL_ASK, "context", "lines") + (
            "labels = dict(l.split() for r in rs for l in r['value'] if len(l.split()) == 2)\n"
            "from collections import Counter\n"
            "print(len(rs), 'chunks;', len(labels), 'labelled;', Counter(labels.values()).most_common())"
        )
        return [PROBE, fan_out, steps[-1] if task == "oolong" else PAIRS_AGGREGATE]
    if task == "multi-hop":
        first = _fan_out(_asked(steps[1]), "context", "text") + (
            "names = [r['value'] for r in rs if r['value'] != 'NONE']\nprint(len(rs), 'chunks;', names)"
        )
        second = (
            "name = names[0]\ndocs = [d for d in context if name in d]\n"
            "ask = 'Where does ' + name + ' live? Answer with the city only, or NONE.'\n"
            f"rs = llm_map(ask + {MARK!r} + '{{chunk}}', docs, parse='text')\n"
            "cities = [r['value'] for r in rs if r['value'] != 'NONE']\nprint(len(docs), 'documents;', cities)"
        )
        return [PROBE, first, second, steps[-1]]
    if task == "code-qa" and "llm_query_batched" in steps[1]:
        callers = _fan_out(_asked(steps[1]), "context", "lines") + (
            "callers = sorted({l for r in rs for l in r['value']})\nprint(len(rs), 'chunks;', len(callers), 'callers')"
        )
        return [PROBE, callers, steps[-1]]
    return None


def code_lines(steps: list[str]) -> int:
    """Lines of code the root writes: every non-blank line of every step, helper definitions included."""
    return sum(1 for step in steps for line in step.splitlines() if line.strip())


class Flaky:
    """The oracle, except that the first sub-call of a run fails (once: the same prompt sent again is answered)."""

    def __init__(self, oracle: Oracle):
        self.oracle = oracle
        self.failed = False
        self.lock = threading.Lock()

    def __call__(self, request: ConverseRequest) -> Reply | Fault:
        with self.lock:
            first, self.failed = not self.failed, True
        if first:
            return Fault(424, "ModelErrorException", "The model returned an error (injected once per prompt)")
        return self.oracle(request)


async def compare(
    task: Task, tokens: int, work: Path, target: harness.Target, fake: ConverseFake, latency: float
) -> list[dict[str, Any]]:
    """Rows for ``task`` at ``tokens``: each variant (existing, helpers) under each condition (exact, flaky)."""
    corpus = build_corpus(task, work, tokens)
    rows = []
    async with harness.server(target, work / "corpora", RLM_MAX_ITERATIONS="8") as srv:
        for flaky in (False, True):
            for variant in ("existing", "helpers"):
                row = {"task": task.name, "title": task.title, "tokens": tokens, "variant": variant, "flaky": flaky}
                totals = {"score": 0.0, "iterations": 0, "sub_calls": 0, "failed_sub_calls": 0, "code_lines": 0,
                          "root_output_tokens": 0, "wall_s": 0.0, "incomplete": 0}  # fmt: skip
                for question in task.questions(corpus):
                    steps = question.steps if variant == "existing" else (helper_steps(task.name, question) or [])
                    steps = steps or question.steps
                    oracle = Oracle(question.answer, latency)
                    sub = Flaky(oracle) if flaky else oracle
                    loaded = await srv.call("load_context", path=str(corpus.path), **task.load)
                    fake.respond = scripted(harness.ROOT_MODEL, [code(step) for step in steps], sub=sub)
                    started = time.perf_counter()
                    result = await srv.call("rlm_query", session_id=loaded["session_id"], query=question.query)
                    totals["wall_s"] += time.perf_counter() - started
                    totals["score"] += question.score(result["answer"])
                    totals["iterations"] += result["iterations"]
                    totals["sub_calls"] += result["sub_calls"]
                    totals["code_lines"] += code_lines(steps)
                    totals["root_output_tokens"] += result["usage"]["root_output_tokens"]
                    totals["incomplete"] += result["status"] != "completed" or result["answer"] is None
                    trajectory = await srv.call("get_trajectory", trajectory_id=result["trajectory_id"], detail="full")
                    totals["failed_sub_calls"] += sum(
                        1 for s in trajectory["steps"] for c in s["sub_calls"] if c.get("error")
                    )
                row.update(totals)
                row["score"] = round(totals["score"] / len(task.questions(corpus)), 4)
                row["wall_s"] = round(totals["wall_s"], 3)
                rows.append(row)
    return rows


async def measure(
    work: Path,
    target: harness.Target,
    fake: ConverseFake,
    trec: list[tuple[str, str]] | None,
    tokens: int,
    latency: float,
) -> list[dict[str, Any]]:
    rows = []
    for task in tasks.all_tasks(trec):
        rows += await compare(task, tokens, work, target, fake, latency)
    return rows
