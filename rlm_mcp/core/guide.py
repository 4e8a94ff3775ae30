"""How to offload a large corpus to rlm-mcp: one text, rendered as the ``rlm_guide`` prompt and as a Claude Code skill.

In client-driven mode nobody gives the client's model the system prompt the
server's root gets, so this guide carries the same method (probe, filter,
chunk, batch sub-calls, aggregate in code, ``FINAL``), written for a model that
calls tools, with the numbers of this server. The ``rlm_guide`` prompt adds the
metadata of a session's corpus; the skill (``SKILL.md`` in the Claude Code
plugin, see :mod:`rlm_mcp.cli.plugin_files`) adds when to offload at all and which tool to
pick. Both are rendered from the sections below, so they never drift apart.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from rlm_mcp.config import Settings
from rlm_mcp.core.runs import prompts
from rlm_mcp.models.base import CHARS_PER_TOKEN
from sandbox import SAFE_MODULES, LoadInfo

SKILL_NAME = "offload-large-corpus"
SKILL_DESCRIPTION = (
    "Answer questions over a corpus far larger than your context (big logs, many files, a whole codebase, long "
    "PDFs or transcripts) with the rlm MCP server: load it once with load_context, then either let rlm_query run "
    "a Recursive Language Model over it or drive its Python REPL yourself with repl_exec, fanning sub-calls out "
    "to a smaller model and aggregating in code. Use for find-all, count-all, compare-all and verify-all "
    "questions where reading or grepping by hand would miss items or overflow the context."
)

INTRO = """\
You are the root of a Recursive Language Model. The corpus is far larger than your context window, so you \
never read it whole: it lives on the rlm-mcp server as the variable `context` (a str, or a list[str] of \
documents that each start with a '==> path <==' line) in a Python REPL that you drive with the repl_exec tool \
(session_id, code). Variables persist between calls; what you print comes back to you, cut in the middle when \
it is long, so print counts, samples and summaries, never the corpus."""

WHEN = """\
Offload when the material is too large to read (more than a few hundred thousand characters, or more files than \
you would open one by one) and the question needs all of it: find every X, count or sum over everything, \
compare across documents, check each item against a rule. For a single fact that one search finds, or a \
corpus that fits in your context, read it directly instead. Load the corpus with load_context: a path, a \
directory, a glob (include/exclude pick files) or inline content; it returns a session_id and the corpus shape. \
The server reads only the folders it was allowed (RLM_ALLOWED_ROOTS)."""

CHOOSE = """\
- rlm_query(session_id, query) runs the whole loop on the server with its own root model and returns the \
answer, with a trajectory_id (get_trajectory shows every step). Use it for a self-contained question when \
you do not need to steer.
- repl_exec(session_id, code) makes you the root: you write the Python, step by step, as below. Use it when \
you want to see intermediate results, steer by what you find, or combine the corpus with what you already \
know. Sub-calls still go to the server's sub-model."""


@dataclass(frozen=True)
class Step:
    text: str
    example: str | None = None


STEPS = (
    Step(
        "Probe the shape before anything else:",
        "print(type(context), len(context))\nprint(context[:500])  # or context[0][:500] for a list",
    ),
    Step(
        "Filter with code wherever a pattern can decide: re.findall, str.count, splitlines, comprehensions. Code is "
        "exact and free; the sub-model is neither."
    ),
    Step(
        "Chunk what needs reading into pieces the sub-model can take, about {chunk_chars:,} characters each (it "
        "reads up to ~{sub_tokens:,} tokens per prompt). split_chunks cuts at line ends and keeps documents whole; "
        "lines=, boundary=r'^Chapter ' and overlap= cut otherwise, and chunk_spans(...) with the same arguments "
        "says where each chunk starts, for citing:",
        "chunks = split_chunks(context, {chunk_chars:_})",
    ),
    Step(
        "Batch the sub-calls: llm_map fills {{chunk}} for each chunk, sends them in parallel (up to {concurrency} at "
        "once), retries the ones that fail, and returns [{{'id', 'value', 'answer', 'error'}}] in chunk order; "
        "parse may be 'json', 'int', 'lines' or a function. Ask for output your code can parse; a sub-model sees "
        "only its prompt, so put the instruction in every one. (llm_query_batched(prompts) is the plain form: its "
        "LLMBatchError keeps what came back in .results, and .failed.)",
        'results = llm_map("List each invoice number in this text, one per line.\\n\\n{{chunk}}", chunks, '
        'parse="lines")',
    ),
    Step(
        "Aggregate in code: merge, deduplicate, count, sum. Check a few values against the text before you trust "
        "them, and look at any result with an 'error':",
        'numbers = {{n for r in results for n in r["value"] or []}}\nprint(len(numbers), sorted(numbers)[:3])',
    ),
    Step(
        'Finish with FINAL(answer) (or FINAL_VAR("name") for a variable). repl_exec returns it as `final`; give '
        "that answer to the user, with how it was found:",
        "FINAL(len(numbers))",
    ),
)

LIMITS = """\
Budget: {max_sub_calls} sub-calls{limits} per session (a batch it cannot cover is refused whole with \
SubcallBudgetExceeded; the get_budget tool shows what is left), {exec_timeout:g} s of compute per \
repl_exec call (waiting for sub-calls does not count). SHOW_VARS() lists your variables. Available modules: \
{modules}. No files, network or processes. get_trajectory shows every step you took."""


def numbers(settings: Settings) -> dict[str, float | int | str]:
    """The server's own figures that the text quotes."""
    sub_chars = settings.sub_context_tokens * CHARS_PER_TOKEN
    return {
        "chunk_chars": max(1000, int(sub_chars * 0.8) // 1000 * 1000),
        "sub_tokens": settings.sub_context_tokens,
        "concurrency": settings.subcall_concurrency,
        "max_sub_calls": settings.max_sub_calls,
        "limits": _limits(settings),
        "exec_timeout": settings.exec_timeout_s,
        "modules": available_modules(),
    }


def available_modules() -> str:
    """The modules code in the REPL may import, from the sandbox's own table (so no text lists one it refuses)."""
    return ", ".join(name for name in SAFE_MODULES if "." not in name)  # collections.abc comes with collections


def _steps(values: dict[str, float | int | str], fenced: bool) -> str:
    lines = []
    for number, step in enumerate(STEPS, 1):
        lines.append(f"{number}. {step.text.format(**values)}")
        if step.example is not None:
            example = "\n".join(f"   {line}" for line in step.example.format(**values).splitlines())
            lines.append(f"   ```python\n{example}\n   ```" if fenced else example)
    return "\n".join(lines)


def _limits(settings: Settings) -> str:
    """The token and dollar limits of a session, when set."""
    tokens = f", {settings.max_tokens:,} tokens" if settings.max_tokens else ""
    return tokens + (f", ${settings.max_cost_usd:g}" if settings.max_cost_usd else "")


def guide_text(settings: Settings, corpus: LoadInfo | None = None, question: str | None = None) -> str:
    """The ``rlm_guide`` prompt: the method and the limits, then the session's corpus (or how to load one)."""
    values = numbers(settings)
    text = f"{INTRO}\n\nWork in this order:\n{_steps(values, fenced=False)}\n\n{LIMITS.format(**values)}"
    if corpus is not None:
        text += "\n\nThe session's corpus:\n" + prompts.corpus_metadata(corpus)
    else:
        text += "\n\nLoad the corpus first with load_context (a path, a directory, a glob or inline content)."
    if question:
        text += f"\n\nThe question to answer: {question}"
    return text


def skill_text(settings: Settings) -> str:
    """``SKILL.md``: YAML front matter (name, description), then when to offload, which tool, and the method."""
    values = numbers(settings)
    # A JSON string is a YAML double-quoted scalar: the description may hold ': ' and quotes safely.
    front = f"---\nname: {SKILL_NAME}\ndescription: {json.dumps(SKILL_DESCRIPTION)}\n---\n"
    sections = [
        "# Offloading a large corpus to rlm-mcp",
        f"## When to offload\n\n{WHEN}",
        f"## rlm_query or repl_exec\n\n{CHOOSE}",
        f"## Driving the REPL yourself\n\n{INTRO}\n\nWork in this order:\n\n{_steps(values, fenced=True)}",
        f"## Limits\n\n{LIMITS.format(**values)}",
    ]
    return front + "\n" + "\n\n".join(sections) + "\n"
