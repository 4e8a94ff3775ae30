"""What the root model is told: a short system prompt, and metadata about the corpus, never the corpus.

The prompt follows the RLM paper's spirit: a few lines on the environment and
one worked pattern (probe, filter, chunk, batch sub-calls, aggregate in code),
sized with the sub-model's real budget so the root picks sensible chunks.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from rlm_mcp.models import CHARS_PER_TOKEN, ToolSpec
from sandbox import LoadInfo

CODE_TOOL = ToolSpec(
    name="python",
    description=(
        "Run Python code in the REPL where `context` holds the corpus. Variables persist between calls. "
        "Returns what the code printed (and the value of a last expression), or the error and its traceback."
    ),
    input_schema={
        "type": "object",
        "properties": {"code": {"type": "string", "description": "Python code to run"}},
        "required": ["code"],
    },
)

CORPUS_PREVIEW_CHARS = 300
"""How much of the corpus's beginning the root's first message shows (at most what the worker sends)."""
LISTED_LENGTHS = 10

SYSTEM_PROMPT = """\
You answer a question about a corpus that is too large to read directly. It is loaded as the variable \
`context` in a Python REPL, and you work on it {how}. Every {unit} runs in the same namespace, so variables \
persist, and you see what the code prints. Long output is cut in the middle, so print summaries and samples \
rather than data.

In the REPL:
- llm_query(prompt) -> str asks a sub-model, which can read about {sub_chars:,} characters \
(~{sub_tokens:,} tokens) per prompt.
- llm_query_batched(prompts) -> list[str] asks many prompts at once, in parallel; it is much faster \
than a loop of llm_query.
- split_chunks(context, size) -> list[str] cuts the corpus at line ends, keeping documents whole (or by \
lines=, boundary=regex, with overlap=); llm_map(template, chunks, parse="lines") fills {{chunk}} in the template \
for each chunk, sends them all at once, retries failures, and returns [{{"id", "value", "error"}}] in order \
(parse may be "json", "int", "lines" or a function).
- FINAL(answer) ends the run with your answer; FINAL_VAR("name") ends it with the value of a variable.
- re, json, collections, itertools, math, statistics and similar modules can be imported.
You have {max_iterations} {turns} and {max_sub_calls} sub-calls in all.

A typical run:
1. Look at the shape first:
   print(type(context), len(context)); print(context[:300])
2. Let code do what a pattern can do:
   import re; hits = re.findall(r"(?m)^.*refund.*$", context); print(len(hits), hits[:3])
3. Split what needs reading into chunks the sub-model can take, and ask about all of them at once:
   chunks = split_chunks(context, {chunk_chars})
   results = llm_map("List each invoice number in this text, one per line.\\n\\n{{chunk}}", chunks, parse="lines")
4. Combine the answers in code, check them, and finish:
   numbers = {{n for r in results for n in r["value"] or []}}
   FINAL(len(numbers))

A sub-model sees only the prompt you pass it, so put the instruction and the text together and ask \
for output your code can parse. Counts and totals are exact when code does the adding up.{protocol_note}\
"""

RECURSION_NOTE = """

- rlm_query(prompt, context=None) -> str starts a nested run: a fresh copy of you, with its own REPL whose \
`context` is the str or list of str you pass (None: the whole corpus), that works until it answers. Use it \
for a part of the question that needs several steps of its own; plain reading is cheaper with llm_query. \
Each nested run costs one sub-call, and its own sub-calls come out of the same budget.\
"""


@dataclass(frozen=True)
class ProtocolText:
    """What differs between the two ways a root runs code; everything else in the prompt is shared."""

    how: str
    unit: str
    turns: str
    note: str
    empty_reply: str
    plain_text: str | None
    """Said to a reply in plain text with no code and no FINAL; None where such a reply is the answer."""
    last_turn: str


TOOLS = ProtocolText(
    how="by calling the `python` tool with code",
    unit="call",
    turns="tool calls",
    note="",
    empty_reply="Your reply had neither code nor an answer. Call the python tool, or answer in plain text.",
    plain_text=None,
    last_turn="Do not call the tool again: answer the question now, in plain text",
)
TEXT = ProtocolText(
    how="by writing Python code in ```repl blocks in your replies (there are no tools)",
    unit="block",
    turns="replies",
    note="""

Put code in a block like this one, and end your reply after the block: every block of a reply runs, in \
order, and their output comes back in the next message.
```repl
print(len(context), context[:200])
```
When you have seen the output that supports your answer, finish by writing FINAL(answer) or FINAL_VAR("name") \
on a line of its own outside any block (or by calling them in a block). The argument of FINAL is evaluated as \
Python, so write FINAL(total) for a variable's value and FINAL("text") for text. A reply with neither a block \
nor FINAL runs nothing.""",
    empty_reply="Your reply had neither a ```repl block nor FINAL(...). Write the next step's code in a ```repl "
    "block, or finish with FINAL(answer).",
    plain_text="Your reply had no ```repl block and no FINAL(...), so nothing ran. If it is your answer, reply "
    'with FINAL("<your answer>"); otherwise write the next step\'s code in a ```repl block.',
    last_turn="Do not write code again: answer the question now with FINAL(answer), or in plain text",
)


def protocol_text(protocol: str) -> ProtocolText:
    return TEXT if protocol == "text" else TOOLS


def system_prompt(
    *,
    sub_context_tokens: int,
    max_iterations: int,
    max_sub_calls: int,
    can_recurse: bool = False,
    protocol: str = "tools",
) -> str:
    sub_chars = sub_context_tokens * CHARS_PER_TOKEN
    chunk_chars = max(1000, int(sub_chars * 0.8) // 1000 * 1000)
    words = protocol_text(protocol)
    prompt = SYSTEM_PROMPT.format(
        how=words.how,
        unit=words.unit,
        turns=words.turns,
        protocol_note=words.note,
        sub_chars=sub_chars,
        sub_tokens=sub_context_tokens,
        chunk_chars=f"{chunk_chars:_}",
        max_iterations=max_iterations,
        max_sub_calls=max_sub_calls,
    )
    return prompt + RECURSION_NOTE if can_recurse else prompt


def corpus_metadata(info: LoadInfo) -> str:
    """What the root knows about the corpus: its type and sizes, and a short preview.

    The same few lines whatever the corpus size, so the root's cost does not grow with it.
    """
    tokens = info.chars // CHARS_PER_TOKEN
    if info.type == "str":
        shape = f"a str of {info.chars:,} characters ({info.lines:,} lines, about {tokens:,} tokens)"
        where = "context"
    else:
        shape = (
            f"a list[str] of {info.documents:,} documents, {info.chars:,} characters in all "
            f"({info.lines:,} lines, about {tokens:,} tokens)"
        )
        where = "context[0]"
    lines = [f"`context` is {shape}."]
    lengths = info.document_chars
    if info.type != "str" and lengths:
        lines.append(
            f"Document lengths in characters: min {min(lengths):,}, median {int(statistics.median(lengths)):,}, "
            f"max {max(lengths):,}; the first {min(len(lengths), LISTED_LENGTHS)}: {lengths[:LISTED_LENGTHS]}."
        )
    preview = info.preview[:CORPUS_PREVIEW_CHARS]
    lines.append(f"The first {len(preview)} characters of {where}:\n<<<\n{preview}\n>>>")
    return "\n".join(lines)


def first_message(query: str, info: LoadInfo) -> str:
    return f"{corpus_metadata(info)}\n\nQuestion: {query}"


def final_turn_message(max_iterations: int, protocol: str = "tools") -> str:
    words = protocol_text(protocol)
    return (
        f"You have used all {max_iterations} {words.turns}. {words.last_turn}, with the best answer your work "
        "so far supports, and say how sure you are."
    )


CUT_OFF_MESSAGE = (
    "Your last reply was cut off at the output limit. Continue with shorter code (or answer in plain text); "
    "long output belongs in variables, not in the reply."
)
CUT_OFF_CODE = (
    "Your {what} was cut off at the output limit ({max_tokens:,} tokens) before the code was complete, so it "
    "did not run. Write shorter code, or split the step into several smaller ones; keep data in variables, "
    "never in the code."
)
CUT_OFF_REASONING = (
    "Your reply was cut off at the output limit while reasoning, before any code or answer. Reason briefly, "
    "then write the next step's code."
)
MALFORMED_MESSAGE = (
    'The model API could not read your last reply or tool call. Call the python tool with {"code": "<python '
    'source>"}, or answer in plain text.'
)
ONLY_REASONING = "Your reply was only reasoning. "


def refused_call(problem: str) -> str:
    return f'{problem}: the only tool is `python`, with input {{"code": "<python source>"}}'


NOT_RUN_AT_LIMIT = "not run: the iteration limit was reached"
SKIPPED_AFTER_FINAL = "not run: the run ended with FINAL in an earlier {what} of this reply"
FINAL_NOT_USED = (
    "{written} in your reply was not used, because code before it failed. Fix the code; answer once you have "
    "seen its output."
)
FINAL_FAILED = (
    '{written} in your reply was evaluated as Python and failed (see above). Write FINAL("<text>") for a '
    "text answer, or fix the expression."
)


def block_outputs(outputs: list[str], notes: list[str]) -> str:
    """How the output of fenced code reads to the root: one user message for all the blocks of a reply."""
    if len(outputs) == 1:
        parts = [f"REPL output:\n{outputs[0]}"]
    else:
        parts = [f"REPL output of block {n} of {len(outputs)}:\n{text}" for n, text in enumerate(outputs, 1)]
    return "\n\n".join(parts + notes)
