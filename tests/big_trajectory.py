"""A synthetic 50-step run with 500 sub-calls and a nested run, to check the viewer at the size it must handle."""

from __future__ import annotations

import random

from rlm_mcp.schemas import CodeError, Step, SubCallRecord, TokenUsage, Trajectory

CORPUS_CHARS = 21_000_000
HOSTILE = "</script><script>document.title='pwned'</script><img src=x onerror=alert(1)> {{JS}}"


def _calls(rng: random.Random, start: float, count: int, model: str) -> list[SubCallRecord]:
    calls = []
    lanes = [start] * 8  # eight in flight at most, as RLM_SUBCALL_CONCURRENCY would allow
    for i in range(count):
        lane = min(range(8), key=lambda k: lanes[k])
        latency = rng.uniform(300, 2500)
        chars = rng.randint(20_000, 60_000)
        failed = i % 97 == 13
        calls.append(
            SubCallRecord(
                model=model,
                started_at=lanes[lane],
                latency_ms=latency,
                prompt_chars=chars,
                prompt_preview=f"Label each question in this chunk ({chars} chars)... {HOSTILE if i == 0 else ''}",
                response_preview=None if failed else f"HUM: {rng.randint(0, 40)}",
                input_tokens=chars // 4,
                output_tokens=rng.randint(5, 60),
                error="ThrottlingException after retries" if failed else None,
            )
        )
        lanes[lane] += latency / 1000 + 0.01
    return calls


def build(trajectory_id: str = "t_bigRun000000000", steps: int = 50, sub_calls: int = 500) -> Trajectory:
    rng = random.Random(7)
    t0 = 1_750_000_000.0
    now = t0
    per_step = [sub_calls // 10 if i % 5 == 2 else 0 for i in range(steps)]
    built: list[Step] = []
    for i in range(steps):
        root_ms = rng.uniform(800, 4000)
        now += root_ms / 1000
        calls = _calls(rng, now + 0.05, per_step[i], "us.anthropic.claude-haiku-4-5-20251001-v1:0")
        end = max([now + 0.2] + [c.started_at + c.latency_ms / 1000 for c in calls])
        code = (
            "import re\n# split the corpus into chunks the sub-model can read\n"
            f"chunks = [context[i:i + 40_000] for i in range(0, len(context), 40_000)]\n"
            f"answers = llm_query_batched([f'Label: {{c}}' for c in chunks[{i}:{i + 10}]])\n"
            "total = sum(int(re.findall(r'\\d+', a)[0]) for a in answers if a)\nprint(total, len(answers))"
        )
        built.append(
            Step(
                index=i,
                turn=i,
                started_at=now,
                elapsed_ms=(end - now) * 1000,
                root_text=f"Step {i}: reading the next chunks." + (HOSTILE if i == 1 else ""),
                root_input_tokens=1200 + 300 * i,
                root_output_tokens=150,
                root_latency_ms=root_ms,
                code=code,
                stdout=f"{rng.randint(0, 900)} {per_step[i]}\n" + (HOSTILE if i == 1 else ""),
                error=CodeError(type="ValueError", message="no digits", traceback="ValueError: no digits", line=5)
                if i == 7
                else None,
                final="412" if i == steps - 1 else None,
                sub_call_count=len(calls),
                sub_input_tokens=sum(c.input_tokens for c in calls),
                sub_output_tokens=sum(c.output_tokens for c in calls),
                sub_calls=calls,
                child_runs=["t_nestedRun00000000"] if i == 3 else [],
            )
        )
        now = end
    usage = TokenUsage(
        root_input_tokens=sum(s.root_input_tokens for s in built),
        root_output_tokens=sum(s.root_output_tokens for s in built),
        sub_input_tokens=sum(s.sub_input_tokens for s in built),
        sub_output_tokens=sum(s.sub_output_tokens for s in built),
    )
    return Trajectory(
        id=trajectory_id,
        kind="run",
        session_id="s_bigSession0000",
        status="completed",
        created_at=t0,
        updated_at=now,
        query="How many of these questions ask about a person?" + HOSTILE,
        answer="412",
        root_model="us.anthropic.claude-sonnet-4-5-20250929-v1:0",
        sub_model="us.anthropic.claude-haiku-4-5-20251001-v1:0",
        corpus_chars=CORPUS_CHARS,
        iterations=steps,
        sub_calls=sum(per_step),
        usage=usage,
        elapsed_s=now - t0,
        steps=built,
    )


def nested(parent: Trajectory) -> Trajectory:
    step = parent.steps[3]
    return Trajectory(
        id="t_nestedRun00000000",
        kind="run",
        session_id=parent.session_id,
        status="completed",
        created_at=step.started_at + 0.01,
        updated_at=step.started_at + 0.15,
        query="Which of these name a person?",
        answer="17 of them",
        root_model=parent.root_model,
        sub_model=parent.sub_model,
        corpus_chars=40_000,
        parent_id=parent.id,
        depth=2,
        iterations=1,
        steps=[
            Step(
                index=0,
                turn=0,
                started_at=step.started_at + 0.02,
                elapsed_ms=100,
                root_latency_ms=10,
                code="FINAL('17 of them')",
                final="17 of them",
            )
        ],
    )
