"""What resuming and the sub-call cache save: an OOLONG-style run stopped by its budget and resumed, and the
same analysis run twice.

The real server over MCP stdio with the cache on, a scripted root and an oracle
sub-model behind the Converse fake; what was paid is counted at the fake (the
requests that reached it) and in the results' cost estimates. The resumed root
redoes the whole fan-out from the start, as a cautious model would: the cache
answers what was already paid for.
"""

from __future__ import annotations

import random
import statistics
import time
from pathlib import Path
from typing import Any

from benchmarks import harness
from rlm_mcp.testing.bedrock import ConverseFake, ConverseRequest, Reply, code, scripted
from sandbox import Sandbox

LABELS = ("HUM", "LOC", "NUM", "DESC", "ENTY", "ABBR")
QUESTIONS = 2000
CHUNKS = 20
BATCH = 4
SETUP = f"""
lines = context.splitlines()
size = -(-len(lines) // {CHUNKS})
chunks = ['\\n'.join(lines[i:i + size]) for i in range(0, len(lines), size)]
labels = {{}}
print(len(chunks), 'chunks')
"""
FAN_OUT = f"""
for start in range(0, len(chunks), {BATCH}):
    answers = llm_query_batched(['Label each question (HUM, LOC, NUM, DESC, ENTY, ABBR), one "id LABEL" per line:\\n'
                                 + c for c in chunks[start:start + {BATCH}]])
    for answer in answers:
        for line in answer.splitlines():
            ident, label = line.split()
            labels[ident] = label
print(len(labels), 'labelled')
"""
ANSWER = "FINAL(sum(1 for v in labels.values() if v == 'HUM'))"


def corpus(path: Path) -> dict[str, str]:
    rng = random.Random(16)
    truth = {f"q{i:05d}": rng.choice(LABELS) for i in range(QUESTIONS)}
    path.write_text("".join(f"{ident} what is asked in question {ident[1:]}?\n" for ident in truth))
    return truth


def oracle(truth: dict[str, str]) -> Any:
    def answer(request: ConverseRequest) -> Reply:
        prompt = request.last_user_text
        ids = [line.split()[0] for line in prompt.splitlines()[1:] if line.startswith("q")]
        text = "\n".join(f"{i} {truth[i]}" for i in ids)
        return Reply(text=text, input_tokens=len(prompt) // 4, output_tokens=max(1, len(text) // 4))

    return answer


def _row(result: dict[str, Any], sent: int) -> dict[str, Any]:
    return {
        "status": result["status"],
        "sent": sent,
        "cached": result["cached_sub_calls"],
        "cost_usd": result["cost_usd"],
        "saved_usd": result["cost_saved_usd"],
    }


async def measure(work: Path, fake: ConverseFake, target: harness.Target) -> dict[str, Any]:
    directory = work / "corpora" / "savings"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "questions.txt"
    truth = corpus(path)
    expected = str(sum(1 for v in truth.values() if v == "HUM"))
    sub = oracle(truth)
    out: dict[str, Any] = {"questions": QUESTIONS, "chunks": CHUNKS, "batch": BATCH, "expected": expected}

    def sent() -> int:
        return len(fake.requests_for(target.sub_model))

    async with harness.server(target, directory, RLM_SUBCALL_CACHE="on") as srv:
        # The same analysis twice, in two sessions: the second pays for no sub-call.
        fake.respond = scripted(target.root_model, [code(SETUP), code(FAN_OUT), code(ANSWER)], sub=sub)
        for name in ("first", "repeat"):
            before = sent()
            sid = (await srv.call("load_context", path=str(path)))["session_id"]
            result = await srv.call("rlm_query", session_id=sid, query="How many questions are about people?")
            out[name] = _row(result, sent() - before)
            out[name]["correct"] = result["answer"] == expected

    async with harness.server(target, directory, RLM_SUBCALL_CACHE="on") as srv:
        # A budget stop after 3 of 5 batches, then a resume that redoes the fan-out from the start.
        steps = [code(SETUP), code(FAN_OUT), Reply(text="stopped: out of budget"), code(SETUP + FAN_OUT), code(ANSWER)]
        fake.respond = scripted(target.root_model, steps, sub=sub)
        before = sent()
        sid = (await srv.call("load_context", path=str(path)))["session_id"]
        query = "How many questions are about people?"
        stopped = await srv.call("rlm_query", session_id=sid, query=query, max_iterations=2, max_sub_calls=12)
        out["stopped"] = _row(stopped, sent() - before)
        before = sent()
        started = time.perf_counter()
        resumed = await srv.call("rlm_query", resume=stopped["trajectory_id"], max_iterations=3, max_sub_calls=100)
        out["resumed"] = _row(resumed, sent() - before)
        out["resumed"].update(
            correct=resumed["answer"] == expected,
            restored=resumed["resumed"]["restored"],
            wall_s=round(time.perf_counter() - started, 3),
        )
    out["snapshot"] = await snapshot_cost()
    return out


async def snapshot_cost(entries: int = 50_000, repeats: int = 5) -> dict[str, Any]:
    """What saving the variables after a step costs: a dict of 50,000 labels (about 1.3 MB as a snapshot)."""
    async with Sandbox() as box:
        await box.execute(f"labels = {{f'q{{i:06d}}': 'HUM' for i in range({entries})}}\nseen = list(range(1000))")
        times = []
        size = 0
        for _ in range(repeats):
            started = time.perf_counter()
            snapshot = await box.snapshot(4 * 1024 * 1024)
            times.append(time.perf_counter() - started)
            size = snapshot.size
    return {"entries": entries, "bytes": size, "ms": round(statistics.median(times) * 1000, 1)}


def report_lines(s: dict[str, Any]) -> list[str]:
    """The section of BENCHMARKS.md."""

    def usd(value: float | None) -> str:
        return "unknown" if value is None else f"${value:.4f}"

    first, repeat, stopped, resumed = s["first"], s["repeat"], s["stopped"], s["resumed"]
    snap = s["snapshot"]
    return [
        "## Resuming and the sub-call cache",
        "",
        f"OOLONG-style labelling of {s['questions']:,} questions in {s['chunks']} chunks, batches of {s['batch']} "
        "(a scripted root, an oracle sub-model; sub-calls counted at the fake, costs from the price table).",
        "",
        "| run | sub-calls sent | answered from the cache | cost | saved |",
        "|---|---|---|---|---|",
        f"| first run | {first['sent']} | {first['cached']} | {usd(first['cost_usd'])} | {usd(first['saved_usd'])} |",
        f"| the same analysis again, another session | {repeat['sent']} | {repeat['cached']} | "
        f"{usd(repeat['cost_usd'])} | {usd(repeat['saved_usd'])} |",
        f"| a run stopped by its budget (12 sub-calls) | {stopped['sent']} | {stopped['cached']} | "
        f"{usd(stopped['cost_usd'])} | {usd(stopped['saved_usd'])} |",
        f"| its resume, redoing the fan-out from the start | {resumed['sent']} | {resumed['cached']} | "
        f"{usd(resumed['cost_usd'])} | {usd(resumed['saved_usd'])} |",
        "",
        f"Both complete runs answered correctly: {first['correct'] and repeat['correct'] and resumed['correct']}. "
        f"The stopped run and its resume sent {stopped['sent'] + resumed['sent']} sub-calls in all, as many as one "
        f"run ({first['sent']}): nothing was paid twice. The resume restored {', '.join(resumed['restored'])}. "
        f"Saving the variables after a step ({snap['entries']:,} dict entries, a {snap['bytes'] / 1e6:.1f} MB "
        f"snapshot) takes {snap['ms']} ms (median).",
        "",
    ]
