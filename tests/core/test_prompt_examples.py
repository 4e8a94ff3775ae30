"""The code examples in the prompts models read run in the sandbox, as models copy them.

Examples are taken from the rendered prompts themselves (the root's system
prompt in both protocols, the rlm_guide prompt, and the Claude Code skill rendered
from the same source): the indented lines under a numbered step (without the
skill's ```python fences), and ```repl blocks. Each runs in a real sandbox after the
examples before it (later steps use earlier variables), on a corpus the
examples make sense for, with an oracle sub-model; the worked example's FINAL
must come out right.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from helpers import code_examples as examples

from rlm_mcp.config import Settings
from rlm_mcp.core.guide import guide_text, skill_text
from rlm_mcp.core.runs import prompts
from sandbox import Document, Sandbox, SandboxLimits, SubcallReply

pytestmark = pytest.mark.anyio

INVOICES = [f"INV-{n:05d}" for n in range(1, 41)]
CORPUS = "".join(
    f"{day:02d}/03 invoice {number} paid{' - refund requested' if i % 7 == 0 else ''}\n"
    for i, (day, number) in enumerate(zip([i % 28 + 1 for i in range(len(INVOICES))], INVOICES, strict=True))
)


def prompt_texts() -> dict[str, str]:
    settings = Settings(sub_context_tokens=1000)  # small chunks, so the corpus makes several
    shared = {"sub_context_tokens": settings.sub_context_tokens, "max_iterations": 20, "max_sub_calls": 50}
    return {
        "system-tools": prompts.system_prompt(**shared),
        "system-text": prompts.system_prompt(**shared, protocol="text"),
        "rlm_guide": guide_text(settings),
        "skill": skill_text(settings),
    }


def cases() -> list[object]:
    params = []
    for name, text in prompt_texts().items():
        params += [pytest.param(name, index, id=f"{name}-{index + 1}") for index in range(len(examples(text)))]
    return params


def test_every_prompt_shows_examples() -> None:
    counts = {name: len(examples(text)) for name, text in prompt_texts().items()}
    assert counts == {"system-tools": 4, "system-text": 5, "rlm_guide": 5, "skill": 5}, counts


@pytest.fixture
async def box(tmp_path: Path) -> AsyncIterator[Sandbox]:
    corpus = tmp_path / "invoices.txt"
    corpus.write_text(CORPUS)
    async with Sandbox(SandboxLimits(exec_timeout_s=10, memory_bytes=512 * 1024 * 1024)) as sandbox:
        await sandbox.load([Document(name="invoices.txt", path=corpus)], shape="str")
        yield sandbox


async def oracle(prompts_: list[str], model: str | None, spans: object = None) -> list[SubcallReply]:
    """The sub-model: lists the invoice numbers in the text it was given, one per line."""
    return [SubcallReply(text="\n".join(re.findall(r"INV-\d{5}", p))) for p in prompts_]


@pytest.mark.parametrize(("prompt", "index"), cases())
async def test_prompt_example_runs(box: Sandbox, prompt: str, index: int) -> None:
    found = examples(prompt_texts()[prompt])
    for earlier in found[:index]:
        await box.execute(earlier, on_subcall=oracle)  # the steps before it, as a model would have run them
    result = await box.execute(found[index], on_subcall=oracle)
    assert result.error is None, f"{found[index]!r}: {result.error}"
    if "FINAL(len(numbers))" in found[index]:
        assert result.final == str(len(INVOICES))  # the worked example counts right
