"""The ``rlm_guide`` prompt: how a client's own model acts as the root through ``repl_exec``.

In client-driven mode nobody gives the client's model the system prompt the
server's root gets, so this prompt carries the same method (probe, filter,
chunk, batch sub-calls, aggregate in code, ``FINAL``), written for a model that
calls tools, with the numbers of this server and, when a session is named, the
metadata of its corpus.
"""

from __future__ import annotations

from rlm_mcp import prompts
from rlm_mcp.config import Settings
from sandbox import LoadInfo

GUIDE = """\
You are the root of a Recursive Language Model. The corpus is far larger than your context window, so you \
never read it whole: it lives on the rlm-mcp server as the variable `context` (a str, or a list[str] of \
documents that each start with a '==> path <==' line) in a Python REPL that you drive with the repl_exec tool \
(session_id, code). Variables persist between calls; what you print comes back to you, cut in the middle when \
it is long, so print counts, samples and summaries, never the corpus.

Work in this order:
1. Probe the shape before anything else:
   print(type(context), len(context)); print(context[:500])   # or context[0][:500] for a list
2. Filter with code wherever a pattern can decide: re.findall, str.count, splitlines, comprehensions. Code is \
exact and free; the sub-model is neither.
3. Chunk what needs reading into pieces the sub-model can take: about {chunk_chars:,} characters each (it reads \
up to ~{sub_tokens:,} tokens per prompt). Split on line or document boundaries so no item is cut in two.
4. Batch the sub-calls: answers = llm_query_batched([instruction + chunk for chunk in chunks]) runs them in \
parallel (up to {concurrency} at once) and returns the answers in order. Ask for output your code can parse: \
one item per line, a number, or JSON. A sub-model sees only its prompt, so put the instruction in every one.
5. Aggregate in code: parse each answer, merge, deduplicate, count, sum. Check a few answers against the text \
(print a sample) before you trust them. If some prompts fail, llm_query_batched raises LLMBatchError whose \
.results keeps the answers that came back and .failed lists the indices to retry.
6. Finish with FINAL(answer) (or FINAL_VAR("name") for a variable). repl_exec returns it as `final`; give that \
answer to the user, with how it was found.

Budget: {max_sub_calls} sub-calls{limits} per session (a batch it cannot cover is refused whole with \
SubcallBudgetExceeded; the get_budget tool shows what is left), {exec_timeout:g} s of compute per \
repl_exec call (waiting for sub-calls does not count). SHOW_VARS() lists your variables. Available modules: \
re, json, math, collections, itertools, functools, statistics, string, textwrap, datetime, difflib, heapq, \
bisect, random, operator, csv, io, unicodedata, hashlib, base64, html, fractions, decimal, copy, time, pprint. \
No files, network or processes. get_trajectory shows every step you took.\
"""


def _limits(settings: Settings) -> str:
    """The token and dollar limits of a session, when set."""
    tokens = f", {settings.max_tokens:,} tokens" if settings.max_tokens else ""
    return tokens + (f", ${settings.max_cost_usd:g}" if settings.max_cost_usd else "")


def guide_text(settings: Settings, corpus: LoadInfo | None = None, question: str | None = None) -> str:
    sub_chars = settings.sub_context_tokens * prompts.CHARS_PER_TOKEN
    text = GUIDE.format(
        chunk_chars=max(1000, int(sub_chars * 0.8) // 1000 * 1000),
        sub_tokens=settings.sub_context_tokens,
        concurrency=settings.subcall_concurrency,
        max_sub_calls=settings.max_sub_calls,
        limits=_limits(settings),
        exec_timeout=settings.exec_timeout_s,
    )
    if corpus is not None:
        text += "\n\nThe session's corpus:\n" + prompts.corpus_metadata(corpus)
    else:
        text += "\n\nLoad the corpus first with load_context (a path, a directory, a glob or inline content)."
    if question:
        text += f"\n\nThe question to answer: {question}"
    return text
