"""How a root model's reply is read: what in it is code to run, an answer, or neither.

Pure functions over a backend-neutral :class:`~rlm_mcp.models.Completion`, so
every shape real models produce is handled once, whichever backend carried it:

- code as a tool call (the ``python`` tool), with the input as the APIs define it
  (``{"code": ...}``) or as models write it anyway: a raw code string, JSON
  encoded twice, the code under another common key (``source``, ``python``...);
- code in ```` ```repl ```` / ```` ```python ```` fences in the text, as models
  without tool calling and models trained on the official RLM format write it
  (every fence of a reply runs, in order, as the official library does);
- ``FINAL(...)`` / ``FINAL_VAR(...)`` written in the text outside code, resolved
  in the REPL rather than returned as source text;
- reasoning (``<think>``/``<thinking>`` blocks, an unterminated one at a
  cut-off, reasoning fields of the APIs), which is never run and never answered;
- a reply cut off at the output limit, whose unfinished code is not run.
"""

from __future__ import annotations

import ast
import json
import re
import textwrap
from dataclasses import dataclass, field
from typing import Any, Literal

from rlm_mcp.models import Completion, ToolCall

Protocol = Literal["tools", "text"]
"""How the root runs code: by calling the ``python`` tool, or by writing fenced code in its reply."""

TOOL_NAME = "python"
TOOL_NAMES = frozenset(
    {"python", "python3", "repl", "ipython", "python_repl", "run_python", "execute_python", "run_code",
     "execute_code", "code_interpreter", "exec"}
)  # fmt: skip
"""Names models give the one code tool (Llama's built-in ``ipython``, ``code_interpreter``...): all mean it."""
CODE_KEYS = ("code", "source", "source_code", "python", "python_code", "script", "program", "input")
"""Keys models put the code under; ``code`` is the schema's, the others are read when only one is there."""
FENCE_LANGUAGES = frozenset({"repl", "python", "python3", "py", "py3", "ipython", "pycon"})

CUT_OFF = ("max_tokens", "length", "model_length")
BLOCKED = ("guardrail_intervened", "content_filtered", "content_filter")
_MAX_UNWRAP = 3

# A reasoning block opens at the start of a line; models trained to think emit it first.
_THINK_OPEN = re.compile(r"(?im)^[ \t]*<(think|thinking|reasoning)>")
_THINK_CLOSE = re.compile(r"(?i)</(think|thinking|reasoning)>")
_FENCE_OPEN = re.compile(r"^(?P<indent>[ \t]{0,3})(?P<marks>`{3,}|~{3,})[ \t]*(?P<info>[^`\n]*)$")
# FINAL at the start of a line, after markdown decoration or a short label ("Answer: FINAL(...)").
_FINAL = re.compile(r"(?m)^[ \t>*_`~#-]*(?:[A-Za-z][A-Za-z ]{0,30}:[ \t*_`]*)?(?P<kind>FINAL_VAR|FINAL)[ \t]*\(")
_OBJECT_REPR = re.compile(r"^<(built-in function|built-in method|function|bound method|class|module) ")


# -- reasoning ---------------------------------------------------------------------------------


def split_reasoning(text: str) -> tuple[str, str]:
    """``(what the model said, its reasoning)``: ``<think>``-style blocks removed from the text.

    A block left open (the output limit cut the reasoning) runs to the end. A closing tag with no
    opening one (chat templates that put ``<think>`` in the prompt, as Qwen3's and DeepSeek-R1's do)
    ends reasoning that began at the start of the reply.
    """
    reasoning: list[str] = []
    close = _THINK_CLOSE.search(text)
    opened = _THINK_OPEN.search(text)
    if close is not None and (opened is None or opened.start() > close.start()):
        reasoning.append(text[: close.start()].strip())
        text = text[close.end() :]
    while (opened := _THINK_OPEN.search(text)) is not None:
        closing = re.compile(rf"(?i)</{opened[1]}>").search(text, opened.end())
        end = closing.start() if closing else len(text)
        reasoning.append(text[opened.end() : end].strip())
        text = text[: opened.start()] + (text[closing.end() :] if closing else "")
    return text.strip(), "\n\n".join(r for r in reasoning if r)


# -- fenced code ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fence:
    language: str
    code: str
    closed: bool
    """False when the reply ended inside the fence (cut off, or a model that never closed it)."""


def fences(text: str) -> tuple[list[Fence], str]:
    """Every fenced block of ``text`` (CommonMark-style: ``` or ~~~, closed by a run at least as long),
    and the text outside them."""
    found: list[Fence] = []
    outside: list[str] = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        opened = _FENCE_OPEN.match(lines[i])
        if opened is None:
            outside.append(lines[i])
            i += 1
            continue
        marks = opened["marks"]
        closing = re.compile(rf"^[ \t]*{re.escape(marks[0])}{{{len(marks)},}}[ \t]*$")
        body: list[str] = []
        j = i + 1
        while j < len(lines) and not closing.match(lines[j]):
            body.append(lines[j])
            j += 1
        language = (opened["info"].split() or [""])[0].lower().lstrip(".{").rstrip("}")
        found.append(Fence(language, textwrap.dedent("\n".join(body)).strip("\n"), closed=j < len(lines)))
        i = j + 1
    return found, "\n".join(outside)


def is_code_fence(fence: Fence, protocol: Protocol) -> bool:
    """A fence to run: labelled Python, or (in the text protocol, where code goes nowhere else) unlabelled
    and valid Python. Fences of other languages (json, text, bash) are never run."""
    if fence.language in FENCE_LANGUAGES:
        return True
    return protocol == "text" and fence.language == "" and _parses(fence.code, "exec")


def _parses(source: str, mode: Literal["exec", "eval"]) -> bool:
    try:
        ast.parse(source, mode=mode)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


# -- FINAL in the text -------------------------------------------------------------------------------


@dataclass(frozen=True)
class FinalCall:
    """``FINAL(...)`` or ``FINAL_VAR(...)`` written in the reply's text, outside code."""

    kind: Literal["FINAL", "FINAL_VAR"]
    argument: str
    closed: bool = True
    """False when no closing parenthesis was found: the argument runs to the end of the text."""

    @property
    def written(self) -> str:
        return f"{self.kind}({self.argument}{')' if self.closed else ''}"

    def code(self) -> str | None:
        """The Python that resolves it in the REPL, or None when the argument is prose, to take as written.

        ``FINAL_VAR(name)`` (quoted or not, as the official RLM prompt writes it) reads the variable;
        ``FINAL(expression)`` evaluates the expression there, so ``FINAL(total)`` answers with the value
        and ``FINAL("Paris")`` without the quotes. The official library returns the source text instead.
        """
        argument = self.argument.strip()
        if self.kind == "FINAL_VAR":
            name = argument.strip("\"'` ")
            if name.isidentifier():
                return f"FINAL_VAR({name!r})"
        if not self.closed or not argument:
            return None
        try:
            tree = ast.parse(argument, mode="eval").body
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            return None
        inner = f"({argument})" if isinstance(tree, ast.Tuple) else argument  # FINAL(a, b): one answer, not two
        return f"FINAL({inner}\n)" if "#" in argument else f"FINAL({inner})"  # a newline ends a trailing comment

    def is_bare_name(self) -> bool:
        return self.argument.strip().isidentifier()


def find_final(text: str) -> FinalCall | None:
    """The first ``FINAL(...)``/``FINAL_VAR(...)`` at the start of a line of ``text`` (code removed first)."""
    match = _FINAL.search(text)
    if match is None:
        return None
    start = match.end()
    end = _closing_paren(text, start, quotes=True)
    if end is None:  # prose with an apostrophe ("It's 42") opens a quote that never closes
        end = _closing_paren(text, start, quotes=False)
    kind: Any = match["kind"]
    if end is None:
        return FinalCall(kind, text[start:].strip(), closed=False)
    return FinalCall(kind, text[start:end].strip())


def _closing_paren(text: str, start: int, *, quotes: bool) -> int | None:
    depth, i, quote = 1, start, ""
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 2
                continue
            if text.startswith(quote, i):
                i += len(quote)
                quote = ""
                continue
        elif quotes and ch in "\"'":
            quote = text[i : i + 3] if text[i : i + 3] in ('"""', "'''") else ch
            i += len(quote)
            continue
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return None


def is_object_repr(answer: str) -> bool:
    """An answer that is the repr of a function, class or module: ``FINAL(max)`` meant the word, not the builtin."""
    return _OBJECT_REPR.match(answer) is not None


# -- tool input ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CodeInput:
    code: str | None
    problem: str | None = None
    """Why there is no code, in words for the root."""


def code_of(value: Any, *, _depth: int = 0) -> CodeInput:
    """The code in a tool call's input, however the model wrote it.

    ``{"code": "..."}`` as the schema says; the code under one other common key; a list of lines; the raw
    code string instead of JSON arguments; JSON encoded twice (a JSON string holding the object, or an
    object whose ``code`` is the JSON of another). Only unambiguous shapes are read.
    """
    if _depth > _MAX_UNWRAP:
        return CodeInput(None, 'the input is JSON nested too deep; send {"code": "<python source>"}')
    if isinstance(value, dict):
        keys = [k for k in CODE_KEYS if k in value]
        if not keys:
            return CodeInput(None, "the input has no code")
        if keys[0] != "code" and len(keys) > 1:
            return CodeInput(None, f"the input has several candidate keys ({', '.join(keys)}) and no code")
        inner = value[keys[0]]
        if isinstance(inner, list) and all(isinstance(line, str) for line in inner):
            inner = "\n".join(inner)
        if not isinstance(inner, str):
            return CodeInput(None, f"the input's {keys[0]!r} is a {type(inner).__name__}, not a string of code")
        nested = _json(inner) if inner.lstrip().startswith("{") else None
        if isinstance(nested, dict) and any(k in nested for k in CODE_KEYS):
            return code_of(nested, _depth=_depth + 1)
        return _non_empty(inner)
    if isinstance(value, str):
        decoded = _json(value)
        if isinstance(decoded, dict | str):
            return code_of(decoded, _depth=_depth + 1)
        if decoded is None and re.match(r'\s*\{\s*"', value):
            return CodeInput(None, "the arguments are not valid JSON (cut off?)")
        return _non_empty(value)
    return CodeInput(None, "the input has no code")


def _json(text: str) -> Any:
    try:
        return json.loads(text, strict=False)
    except (ValueError, RecursionError):
        return None


def _non_empty(code: str) -> CodeInput:
    return CodeInput(code) if code.strip() else CodeInput(None, "the code is empty")


# -- a whole reply ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """Code to run: a tool call's (answered by its id) or a fenced block's (``call_id`` None)."""

    code: str
    call_id: str | None = None


@dataclass(frozen=True)
class Refuse:
    """A tool call that cannot run; it is answered with an error, as the APIs require of every call."""

    call_id: str
    problem: str
    cut: bool = False
    """The output limit cut the call while it was being written."""


@dataclass(frozen=True)
class Reading:
    text: str
    """The reply without its reasoning: what goes back into the conversation and into an answer."""
    reasoning: str
    actions: list[Run | Refuse] = field(default_factory=list)
    final: FinalCall | None = None
    """FINAL/FINAL_VAR written in the text, resolved once the reply's code has run cleanly."""
    cut_off: Literal["tool call", "code block", "reasoning", "text"] | None = None
    """What the output limit cut; the unfinished code is not run."""
    blocked: bool = False
    """A guardrail or content filter stopped the reply."""
    overflow: bool = False
    """The conversation outgrew the model's context window."""
    malformed: bool = False
    """The backend could not make sense of the model's output or tool call (Converse ``malformed_*``)."""
    calls: list[ToolCall] = field(default_factory=list)
    """The reply's tool calls with their input normalised to ``{"code": ...}``, for the conversation."""

    @property
    def acts(self) -> bool:
        """Something to do: code to run, a tool call to answer, a FINAL to resolve, or a cut-off to report."""
        return bool(self.actions) or self.final is not None or self.cut_off is not None

    @property
    def answer(self) -> str | None:
        """The text as a plain answer, when the reply has nothing else in it."""
        return self.text if self.text and not self.acts else None


def read(reply: Completion, protocol: Protocol) -> Reading:
    """Turn one root reply into what the loop does next."""
    text, tagged = split_reasoning(reply.text)
    reasoning = "\n\n".join(r for r in (reply.reasoning.strip(), tagged) if r)
    stop = reply.stop_reason
    common: dict[str, Any] = {"text": text, "reasoning": reasoning}
    if stop == "model_context_window_exceeded":
        return Reading(**common, overflow=True)
    if stop in BLOCKED:
        return Reading(**common, blocked=True)
    cut = stop in CUT_OFF
    if reply.tool_calls:
        return _read_calls(reply.tool_calls, cut, protocol, common)
    blocks, outside = fences(text)
    runnable = [b for b in blocks if is_code_fence(b, protocol)]
    actions: list[Run | Refuse] = [Run(b.code) for b in runnable if b.closed and b.code.strip()]
    # A fence left open at the output limit was being written: it does not run. One left open at a normal
    # end of reply is a model that never closed it, and runs.
    unfinished = [b for b in runnable if not b.closed]
    if unfinished and not cut and unfinished[-1].code.strip():
        actions.append(Run(unfinished[-1].code))
    final = find_final(outside)
    if final is not None and not final.closed and cut:
        final = None
    cut_off: Any = None
    if cut:
        cut_off = "code block" if unfinished else "reasoning" if not text and reasoning else "text"
        if cut_off == "text" and (actions or final is not None):
            cut_off = None  # what it said after finished code is not worth a correction
    if stop.startswith("malformed"):
        return Reading(**common, actions=actions, final=final, malformed=not actions and final is None)
    return Reading(**common, actions=actions, final=final, cut_off=cut_off)


def _read_calls(calls: list[ToolCall], cut: bool, protocol: Protocol, common: dict[str, Any]) -> Reading:
    actions: list[Run | Refuse] = []
    normalised: list[ToolCall] = []
    for position, call in enumerate(calls):
        found = code_of(call.input)
        normalised.append(ToolCall(call.id, call.name, {"code": found.code} if found.code is not None else {}))
        if cut and position == len(calls) - 1:
            # The last call was being written when the limit hit: even if its JSON closed, the code may not have.
            actions.append(Refuse(call.id, "cut off at the output limit", cut=True))
        elif call.name.lower() not in TOOL_NAMES:
            actions.append(Refuse(call.id, f"unknown tool {call.name!r}"))
        elif found.code is None:
            actions.append(Refuse(call.id, found.problem or "the input has no code"))
        else:
            actions.append(Run(found.code, call.id))
    if protocol == "text":
        # A backend without tool calling cannot take tool calls or results back: the code runs as if it had
        # been fenced, and the conversation shows it so.
        runs = [Run(a.code) for a in actions if isinstance(a, Run)]
        text = "\n\n".join([common["text"], *(f"```repl\n{run.code}\n```" for run in runs)]).strip()
        return Reading(
            text=text, reasoning=common["reasoning"], actions=list(runs), cut_off="tool call" if cut else None
        )
    final = find_final(fences(common["text"])[1])
    return Reading(
        **common,
        actions=actions,
        final=final if final is not None and final.closed else None,
        cut_off="tool call" if cut else None,
        calls=normalised,
    )
