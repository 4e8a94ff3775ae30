"""Reading root replies (rlm_mcp.core.runs.replies): every shape real models produce, as pure functions.

The end-to-end behaviour of each shape, over each backend's wire format, is in
tests/core/test_reply_shapes.py; these pin the parsing rules themselves.
"""

from __future__ import annotations

import json
import re

import pytest

from rlm_mcp.core.runs import prompts
from rlm_mcp.core.runs.replies import (
    FinalCall,
    Refuse,
    Run,
    code_of,
    fences,
    find_final,
    is_object_repr,
    read,
    split_reasoning,
)
from rlm_mcp.models import Completion, ToolCall


def reply(text: str = "", *, calls: list[tuple[str, object]] | None = None, stop: str = "end_turn",
          reasoning: str = "") -> Completion:  # fmt: skip
    tool_calls = [ToolCall(f"id{n}", name, value) for n, (name, value) in enumerate(calls or [])]
    return Completion(text=text, model="m", stop_reason=stop, tool_calls=tool_calls, reasoning=reasoning)


# -- reasoning ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "visible", "reasoning"),
    [
        ("<think>\nplan: count\n</think>\nThe answer is 4.", "The answer is 4.", "plan: count"),
        ("<thinking>a</thinking>\nx\n<think>b</think>\ny", "x\n\ny", "a\n\nb"),
        ("<THINK>shout</THINK>ok", "ok", "shout"),
        ("<think>\ncut off in the middle of a thou", "", "cut off in the middle of a thou"),  # unterminated
        ("reasoning whose opening tag was in the prompt\n</think>\n\n42", "42",
         "reasoning whose opening tag was in the prompt"),  # Qwen3 / DeepSeek-R1 templates
        ("print('<think>') is code, not reasoning", "print('<think>') is code, not reasoning", ""),
        ("no reasoning at all", "no reasoning at all", ""),
    ],
)  # fmt: skip
def test_reasoning_is_split_off(text: str, visible: str, reasoning: str) -> None:
    assert split_reasoning(text) == (visible, reasoning)


def test_reasoning_never_runs_and_is_never_the_answer() -> None:
    drafted = "<think>\nMaybe:\n```python\nFINAL('draft')\n```\n</think>\n```python\nprint(len(context))\n```"
    reading = read(reply(drafted), "tools")
    assert reading.actions == [Run("print(len(context))")]
    assert "FINAL('draft')" in reading.reasoning and "draft" not in reading.text
    only = read(reply("<think>all of it</think>"), "tools")
    assert not only.acts and only.answer is None and only.reasoning == "all of it"
    field = read(reply("Paris.", reasoning="the capital of France"), "tools")
    assert (field.answer, field.reasoning) == ("Paris.", "the capital of France")


# -- fences ---------------------------------------------------------------------------------------------


def test_fences_of_every_python_label_run_in_order() -> None:
    text = (
        "First:\n```repl\na = 1\n```\nthen\n```python\nb = a + 1\n```\n```py\nc = b\n```\n"
        '```python3\nd = c\n```\n```json\n{"not": "code"}\n```\n```bash\nls\n```'
    )
    assert read(reply(text), "tools").actions == [Run("a = 1"), Run("b = a + 1"), Run("c = b"), Run("d = c")]


def test_unlabelled_fences_run_only_in_the_text_protocol_and_only_if_python() -> None:
    text = "```\nx = [1, 2]\nprint(x)\n```\n```\nThe answer is 42 (roughly).\n```"
    assert read(reply(text), "text").actions == [Run("x = [1, 2]\nprint(x)")]
    assert read(reply(text), "tools").actions == []


def test_fence_details() -> None:
    found, outside = fences("intro\n  ```python\n  x = 1\n  if x:\n      y = 2\n  ```\noutro")
    assert found[0].code == "x = 1\nif x:\n    y = 2" and found[0].closed  # indented fence: dedented code
    assert outside == "intro\noutro"
    # a longer fence holds a shorter one, as in CommonMark; ~~~ fences work too
    found, _ = fences('````python\ns = """\n```\n"""\n````\n~~~py\nt = 1\n~~~')
    assert [f.code for f in found] == ['s = """\n```\n"""', "t = 1"]


def test_a_fence_left_open() -> None:
    cut = read(reply("```python\nfor x in range(10):\n    print(", stop="max_tokens"), "text")
    assert cut.actions == [] and cut.cut_off == "code block"
    done_then_cut = read(reply("```python\nx = 1\n```\n```python\ny = (", stop="max_tokens"), "text")
    assert done_then_cut.actions == [Run("x = 1")] and done_then_cut.cut_off == "code block"
    never_closed = read(reply("```repl\nprint(1)"), "text")  # a normal end: the model just never closed it
    assert never_closed.actions == [Run("print(1)")] and never_closed.cut_off is None


# -- FINAL in the text --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind", "argument"),
    [
        ("Done.\nFINAL(42)", "FINAL", "42"),
        ("FINAL_VAR(answer)", "FINAL_VAR", "answer"),
        ('  **FINAL("Paris")**', "FINAL", '"Paris"'),
        ("Final answer: FINAL(len(numbers))", "FINAL", "len(numbers)"),
        ("FINAL (The total is 3 (three).)", "FINAL", "The total is 3 (three)."),
        ("FINAL(It's 42)", "FINAL", "It's 42"),  # an apostrophe is not a string
        ('FINAL("a ) inside a string")', "FINAL", '"a ) inside a string"'),
        ("FINAL(The answer:\n- a\n- b)", "FINAL", "The answer:\n- a\n- b"),
    ],
)
def test_final_is_found_at_the_start_of_a_line(text: str, kind: str, argument: str) -> None:
    found = find_final(text)
    assert found is not None and (found.kind, found.argument, found.closed) == (kind, argument, True)


def test_final_is_not_found_mid_sentence_or_inside_code() -> None:
    assert find_final("When I am done I will call FINAL(answer).") is None
    reading = read(reply("```python\nx = 2\n```\nI will call FINAL(x) next time."), "tools")
    assert reading.final is None and reading.actions == [Run("x = 2")]
    assert find_final("FINAL(unclosed") == FinalCall("FINAL", "unclosed", closed=False)


@pytest.mark.parametrize(
    ("call", "code"),
    [
        (FinalCall("FINAL", "42"), "FINAL(42)"),
        (FinalCall("FINAL", '"Paris"'), 'FINAL("Paris")'),
        (FinalCall("FINAL", "total  # the count"), "FINAL(total  # the count\n)"),
        (FinalCall("FINAL", "1, 2"), "FINAL((1, 2))"),
        (FinalCall("FINAL_VAR", "answer"), "FINAL_VAR('answer')"),
        (FinalCall("FINAL_VAR", '"answer"'), "FINAL_VAR('answer')"),
        (FinalCall("FINAL_VAR", "results[0]"), "FINAL(results[0])"),
        (FinalCall("FINAL", "The total is 3."), None),  # prose: taken as written
        (FinalCall("FINAL", "unclosed", closed=False), None),
    ],
)
def test_final_becomes_code_for_the_repl_or_stays_prose(call: FinalCall, code: str | None) -> None:
    assert call.code() == code


def test_final_as_written() -> None:
    assert FinalCall("FINAL_VAR", "x").written == "FINAL_VAR(x)"
    assert FinalCall("FINAL", "cut", closed=False).written == "FINAL(cut"


def test_object_reprs() -> None:
    assert is_object_repr("<built-in function max>") and is_object_repr("<class 'list'>")
    assert not is_object_repr("<b>bold</b>") and not is_object_repr("42")


# -- tool input ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ({"code": "print(1)"}, "print(1)"),
        ("print(1)", "print(1)"),  # raw code instead of JSON arguments
        (json.dumps({"code": "print(1)"}), "print(1)"),  # JSON arguments that did not go through a parser
        (json.dumps(json.dumps({"code": "print(1)"})), "print(1)"),  # a JSON string holding the JSON
        ({"code": json.dumps({"code": "print(1)"})}, "print(1)"),  # code that is the JSON of the input
        ({"source": "print(1)"}, "print(1)"),
        ({"python": "print(1)"}, "print(1)"),
        ({"input": "print(1)"}, "print(1)"),
        ({"code": ["x = 1", "print(x)"]}, "x = 1\nprint(x)"),  # lines
        ({"code": "print(1)", "source": "other"}, "print(1)"),  # the schema's key wins
        ({"code": '{"a": 1}'}, '{"a": 1}'),  # a dict literal is code
        ("42", "42"),
    ],
)
def test_code_is_read_from_every_common_input_shape(value: object, code: str) -> None:
    assert code_of(value).code == code


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ({"cmd": "ls"}, "the input has no code"),
        ({"source": "a", "script": "b"}, "several candidate keys"),
        ({"code": 7}, "not a string of code"),
        ({"code": "  "}, "the code is empty"),
        ('{"code": "print(', "not valid JSON"),  # cut off
        (None, "the input has no code"),
    ],
)
def test_unreadable_input_says_why(value: object, problem: str) -> None:
    found = code_of(value)
    assert found.code is None and problem in (found.problem or "")


# -- whole replies -----------------------------------------------------------------------------------------------


def test_tool_calls_in_order_with_every_one_answerable() -> None:
    reading = read(
        reply("Looking.", calls=[("python", {"code": "a = 1"}), ("shell", {"cmd": "ls"}), ("ipython", "b = 2"),
                                 ("python", {"query": "?"})]),
        "tools",
    )  # fmt: skip
    assert reading.actions == [
        Run("a = 1", "id0"),
        Refuse("id1", "unknown tool 'shell'"),
        Run("b = 2", "id2"),  # Llama's built-in name for the code tool, raw code
        Refuse("id3", "the input has no code"),
    ]
    assert [c.input for c in reading.calls] == [{"code": "a = 1"}, {}, {"code": "b = 2"}, {}]
    assert reading.text == "Looking." and reading.answer is None


def test_the_call_being_written_at_the_output_limit_does_not_run() -> None:
    reading = read(reply(calls=[("python", {"code": "x = 1"}), ("python", '{"code": "for i in')], stop="max_tokens"),
                   "tools")  # fmt: skip
    assert reading.actions == [Run("x = 1", "id0"), Refuse("id1", "cut off at the output limit", cut=True)]
    assert reading.cut_off == "tool call"


def test_tool_calls_in_the_text_protocol_run_as_blocks() -> None:
    reading = read(reply("ok", calls=[("python", {"code": "x = 1"})]), "text")
    assert reading.actions == [Run("x = 1")] and reading.calls == []
    assert reading.text == "ok\n\n```repl\nx = 1\n```"
    cut = read(reply(calls=[("python", {"code": "x = 1"}), ("python", {"code": "y ="})], stop="max_tokens"), "text")
    assert cut.actions == [Run("x = 1")] and cut.cut_off == "tool call"


def test_plain_text_empty_cut_off_blocked() -> None:
    assert read(reply("It is 42."), "tools").answer == "It is 42."
    empty = read(reply(""), "tools")
    assert not empty.acts and empty.answer is None
    assert read(reply("partial answ", stop="max_tokens"), "tools").cut_off == "text"
    assert read(reply("<think>long", stop="max_tokens"), "tools").cut_off == "reasoning"
    assert read(reply("", stop="guardrail_intervened"), "tools").blocked
    assert read(reply("", stop="content_filtered"), "tools").blocked
    assert read(reply("", stop="model_context_window_exceeded"), "tools").overflow
    assert read(reply("", stop="malformed_tool_use"), "tools").malformed
    both = read(reply("```python\nx = 1\n```\nFINAL_VAR(x)"), "text")
    assert both.actions == [Run("x = 1")] and both.final == FinalCall("FINAL_VAR", "x")


def test_text_protocol_prompt_and_tools_prompt_share_one_source() -> None:
    kwargs = {"sub_context_tokens": 1000, "max_iterations": 5, "max_sub_calls": 9}
    tools = prompts.system_prompt(**kwargs)
    text = prompts.system_prompt(**kwargs, protocol="text")
    example = prompts.SYSTEM_PROMPT.split("A typical run:")[1].split("{protocol_note}")[0]
    shared = re.split(r"(?<!\{)\{[a-z_]+\}", example)[0].replace("{{", "{").replace("}}", "}")  # up to a placeholder
    assert "print(type(context), len(context))" in shared
    assert shared in tools and shared in text
    assert "`python` tool" in tools and "```repl" not in tools
    assert "```repl" in text and not re.search(r"\btool\b", text)  # no tool is offered in the text protocol
