"""split_chunks, chunk_spans and llm_map: what real runs re-write by hand, done once in the worker.

Most tests run the helpers in a real sandbox with a scripted sub-model; the last
ones drive them through the server with a real MCP client, sub-calls going through
boto3 to the Converse fake. Hostile input (str subclasses, templates that try to
walk attributes, huge chunk counts, parse functions that raise or lie) is refused
or made harmless, never trusted.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from helpers import call

from rlm_mcp.testing.bedrock import ConverseRequest, Fault, Reply
from sandbox import Document, Sandbox, SandboxLimits, SubcallReply

pytestmark = pytest.mark.anyio

LINES = "".join(f"line {i} INV-{i:04d}\n" for i in range(100))
DOCS = [f"==> doc{i}.txt <==\n" + "x" * (50 * (i % 4 + 1)) + f"\nitem {i}\n" for i in range(12)]


@pytest.fixture
async def box(tmp_path: Path) -> AsyncIterator[Sandbox]:
    corpus = tmp_path / "lines.txt"
    corpus.write_text(LINES)
    async with Sandbox(SandboxLimits(exec_timeout_s=10, memory_bytes=512 * 1024 * 1024)) as sandbox:
        await sandbox.load([Document(name="lines.txt", path=corpus)], shape="str")
        yield sandbox


@pytest.fixture
async def docs_box(tmp_path: Path) -> AsyncIterator[Sandbox]:
    paths = []
    for i, text in enumerate(DOCS):
        path = tmp_path / f"doc{i}.txt"
        path.write_text(text)
        paths.append(Document(name=path.name, path=path))
    async with Sandbox(SandboxLimits(exec_timeout_s=10, memory_bytes=512 * 1024 * 1024)) as sandbox:
        await sandbox.load(paths, shape="list")
        yield sandbox


async def invoices(prompts: list[str], model: str | None, spans: object = None) -> list[SubcallReply]:
    """The sub-model: the invoice numbers in its prompt, one per line, or NONE."""
    return [SubcallReply(text="\n".join(re.findall(r"INV-\d{4}", p)) or "NONE") for p in prompts]


async def value(box: Sandbox, code: str, **kwargs):  # type: ignore[no-untyped-def]
    result = await box.execute(code, **kwargs)
    assert result.error is None, f"{code!r}: {result.error}"
    return result


# -- split_chunks and chunk_spans ----------------------------------------------------------------------


async def test_size_cuts_at_line_ends_and_loses_nothing(box: Sandbox) -> None:
    out = await value(
        box,
        "cs = split_chunks(context, 300)\n"
        "print(len(cs), max(map(len, cs)) <= 300, ''.join(cs) == context, all(c.endswith('\\n') for c in cs))\n"
        "print(type(cs).__name__, {type(c).__name__ for c in cs})",
    )
    assert out.stdout == "6 True True True\nlist {'str'}\n"


async def test_spans_say_where_each_chunk_is(box: Sandbox) -> None:
    out = await value(
        box,
        "cs = split_chunks(context, 300, overlap=40)\nsp = chunk_spans(context, 300, overlap=40)\n"
        "print(len(cs) == len(sp), all(context[s['start']:s['end']] == c for s, c in zip(sp, cs)))\n"
        "print([s['id'] for s in sp] == list(range(len(cs))))\n"
        "print(all(context.count(chr(10), 0, s['start']) + 1 == s['line'] for s in sp))\n"
        "print(all(a['end'] > b['start'] for a, b in zip(sp, sp[1:])), cs[1].startswith('line '))",
    )
    assert out.stdout == "True True\nTrue\nTrue\nTrue True\n"  # overlapping, each starting at a line start


async def test_lines_and_boundaries(box: Sandbox) -> None:
    out = await value(
        box,
        "a = split_chunks(context, lines=10)\nb = split_chunks(context, lines=10, overlap=2)\n"
        "print(len(a), all(c.count(chr(10)) == 10 for c in a), b[1].split()[1], len(b))\n"
        "c = split_chunks(context, boundary=r'^line \\d*0 ')\n"
        "print(len(c), all(x.startswith('line ') and x.split()[1].endswith('0') for x in c), ''.join(c) == context)\n"
        "d = split_chunks(context, 500, boundary=r'^line \\d*0 ')\nprint(len(d), max(map(len, d)) <= 500)",
    )
    first, second, third = out.stdout.splitlines()
    assert first == "10 True 8 13"  # chunk 2 starts 2 lines before line 10
    assert third.endswith(" True") and int(third.split()[0]) < 10
    assert second == "10 True True"


async def test_documents_stay_whole(docs_box: Sandbox) -> None:
    out = await value(
        docs_box,
        "one = split_chunks(context)\npacked = split_chunks(context, 400)\nsp = chunk_spans(context, 400)\n"
        "print(len(one) == len(context), one[3] == context[3])\n"
        "print(''.join(packed) == ''.join(context), all(c.startswith('==> ') for c in packed))\n"
        "print(all(''.join(context[s['doc']:s['last_doc'] + 1]) == c for s, c in zip(sp, packed)))\n"
        "cut = split_chunks(context, 100)\nprint(len(cut) > len(context), max(map(len, cut)) <= 100)",
    )
    assert out.stdout == "True True\nTrue True\nTrue\nTrue True\n"


REFUSED_SPLITS = [
    ("split_chunks(context)", "ValueError", "say how to cut a str"),
    ("split_chunks(context, 0)", "ValueError", "at least 1"),
    ("split_chunks(context, 10, lines=3)", "ValueError", "not both"),
    ("split_chunks(context, 10, overlap=10)", "ValueError", "smaller than size"),
    ("split_chunks(context, boundary='(')", "ValueError", "not a valid regular expression"),
    ("split_chunks(42, 10)", "TypeError", "takes a str or a list of str"),
    ("split_chunks(['a', 3], 10)", "TypeError", "item 1 is a int"),
    ("split_chunks(context, '10')", "TypeError", "size must be an int"),
    ("split_chunks('x' * 200_001, 1)", "ValueError", "more than 100,000 chunks"),
    ("split_chunks('a\\n' * 200_001, lines=1)", "ValueError", "more than 100,000 chunks"),
    ("split_chunks('ab' * 200_001, boundary='b')", "ValueError", "matches more than 100,000 times"),
]


@pytest.mark.parametrize(("code", "kind", "message"), REFUSED_SPLITS)
async def test_what_cannot_work_is_refused_with_what_to_do(box: Sandbox, code: str, kind: str, message: str) -> None:
    result = await box.execute(code)
    assert result.error is not None and result.error.type == kind, result.error
    assert message in result.error.message


async def test_str_subclasses_are_read_by_their_real_characters(box: Sandbox) -> None:
    """A str subclass whose methods lie (find, count, __len__, __getitem__) changes nothing."""
    out = await value(
        box,
        "class Liar(str):\n"
        "    def __len__(self): return 1\n"
        "    def find(self, *a): return 0\n"
        "    def rfind(self, *a): return 0\n"
        "    def count(self, *a): return 99\n"
        "    def __getitem__(self, k): return 'LIE'\n"
        "    def __iter__(self): return iter(['LIE'])\n"
        "cs = split_chunks(Liar('ab\\ncd\\nef\\n'), 4)\nprint(cs, [type(c).__name__ for c in cs])\n"
        "class L(list):\n    def __iter__(self): return iter(['LIE'])\n"
        "print(split_chunks(L(['a\\n', Liar('b\\n')]), 100))",
    )
    assert out.stdout == "['ab\\n', 'cd\\n', 'ef\\n'] ['str', 'str', 'str']\n['a\\nb\\n']\n"


# -- llm_map -------------------------------------------------------------------------------------------


async def test_llm_map_batches_parses_and_keeps_ids(box: Sandbox) -> None:
    seen: list[int] = []

    async def counting(prompts: list[str], model: str | None, spans: object = None) -> list[SubcallReply]:
        seen.append(len(prompts))
        return await invoices(prompts, model)

    out = await value(
        box,
        "cs = split_chunks(context, 300)\n"
        "rs = llm_map('List every invoice number, one per line.\\n\\n{chunk}', cs, parse='lines')\n"
        "print([r['id'] for r in rs], all(r['error'] is None for r in rs))\n"
        "found = [n for r in rs for n in r['value']]\nprint(len(found), len(set(found)), rs[2]['value'][0])",
        on_subcall=counting,
    )
    assert out.stdout == "[0, 1, 2, 3, 4, 5] True\n100 100 INV-0035\n"
    assert seen == [6]  # one batch, not six calls


async def test_named_parsers_and_a_function(box: Sandbox) -> None:
    answers = {
        "a": '```json\n{"n": 1}\n```',
        "b": "Sure! [1, 2] is it",
        "c": "Total: 1,234 items",
        "d": "- x\n* y\nNONE",
    }

    async def scripted(prompts: list[str], model: str | None, spans: object = None) -> list[SubcallReply]:
        return [SubcallReply(text=answers[p[-1]]) for p in prompts]

    out = await value(
        box,
        "j = [r['value'] for r in llm_map('{chunk}', ['a', 'b'], parse='json')]\n"
        "n = llm_map('{chunk}', ['c'], parse='int')[0]['value']\n"
        "ls = llm_map('{chunk}', ['d'], parse='lines')[0]['value']\n"
        "up = llm_map(lambda c: 'q ' + c, ['c'], parse=lambda a: a.upper())[0]['value']\n"
        "print(j, n, ls, up)",
        on_subcall=scripted,
    )
    assert out.stdout == "[{'n': 1}, [1, 2]] 1234 ['x', 'y'] TOTAL: 1,234 ITEMS\n"


async def test_failed_items_are_retried_a_bounded_number_of_times(box: Sandbox) -> None:
    """A sub-call that fails, and an answer the parser rejects, are sent again; the rest are not."""
    sent: list[str] = []
    flaky = {"p1": 1, "p3": 99}  # failures left before the sub-model answers

    async def scripted(prompts: list[str], model: str | None, spans: object = None) -> list[SubcallReply]:
        sent.extend(prompts)
        out = []
        for p in prompts:
            if flaky.get(p, 0):
                flaky[p] -= 1
                out.append(SubcallReply(error="ThrottlingException: slow down"))
            else:
                out.append(SubcallReply(text="7" if p != "p2" or sent.count("p2") > 1 else "seven"))
        return out

    out = await value(
        box,
        "rs = llm_map('{chunk}', ['p0', 'p1', 'p2', 'p3'], parse='int', retries=2)\n"
        "print([(r['id'], r['value'], r['error']) for r in rs])",
        on_subcall=scripted,
    )
    lines = out.stdout.splitlines()
    assert lines[0].startswith("llm_map: 1 of 4 chunks have no result (ids 3), after 2 retries: ThrottlingException")
    assert lines[1] == "[(0, 7, None), (1, 7, None), (2, 7, None), (3, None, 'ThrottlingException: slow down')]"
    assert sorted(sent) == ["p0", "p1", "p1", "p2", "p2", "p3", "p3", "p3"]  # p3: 1 + 2 retries, no more


async def test_a_spent_budget_keeps_what_was_answered(box: Sandbox) -> None:
    from sandbox import SubcallRefused

    calls = 0

    async def budget(prompts: list[str], model: str | None, spans: object = None) -> list[SubcallReply]:
        nonlocal calls
        calls += 1
        if calls > 1:
            raise SubcallRefused("sub-call budget of 3 is used up", "SubcallBudgetExceeded")
        return [SubcallReply(text="ok") if p != "b" else SubcallReply(error="boom") for p in prompts]

    out = await value(
        box, "rs = llm_map('{chunk}', ['a', 'b', 'c'])\nprint([r['value'] for r in rs])", on_subcall=budget
    )
    first, second = out.stdout.splitlines()
    assert "1 of 3 chunks have no result (ids 1), stopped: SubcallBudgetExceeded: sub-call budget" in first
    assert second == "['ok', None, 'ok']"
    assert calls == 2  # no retry after the budget is spent


async def test_parse_functions_that_raise_or_lie_are_contained(box: Sandbox) -> None:
    out = await value(
        box,
        "class Loud(Exception):\n    def __str__(self): raise RuntimeError('no')\n"
        "def raises(a):\n    raise Loud()\n"
        "rs = llm_map('{chunk}', ['INV-0001'], parse=raises, retries=0)\nprint(rs[0]['error'])\n"
        "class S(str):\n    def __eq__(self, o): return True\n"
        "rs = llm_map('{chunk}', ['INV-0001'], parse=lambda a: S('x'))\nprint(type(rs[0]['value']).__name__)",
        on_subcall=invoices,
    )
    assert "parse failed: Loud: (its message could not be read)" in out.stdout
    assert out.stdout.endswith("S\n")  # the user's own value, handed back as it is: nothing of ours trusts it


async def test_a_timeout_inside_a_parse_function_is_not_swallowed(box: Sandbox) -> None:
    result = await box.execute(
        "def spin(a):\n    while True:\n        pass\nllm_map('{chunk}', ['x'], parse=spin)",
        on_subcall=invoices,
        timeout=1,
    )
    assert result.error is not None and result.error.type == "TimeoutError"


HOSTILE_TEMPLATES = [
    "{chunk.__class__.__mro__}",
    "{chunk.__init__.__globals__}",
    "{0.__class__}",
    "{id.__class__.__base__.__subclasses__}",
    "{chunk!r:{chunk.__class__}}",
]


@pytest.mark.parametrize("template", HOSTILE_TEMPLATES)
async def test_templates_cannot_walk_attributes(box: Sandbox, template: str) -> None:
    """Only {chunk} and {id} are filled, in one pass; anything else in braces is sent as written."""
    sent: list[str] = []

    async def record(prompts: list[str], model: str | None, spans: object = None) -> list[SubcallReply]:
        sent.extend(prompts)
        return [SubcallReply(text="ok") for _ in prompts]

    await value(box, f"rs = llm_map({template!r}, ['{{id}} {{chunk}} INV-0001'])", on_subcall=record)
    assert len(sent) == 1
    assert "<class" not in sent[0] and "function" not in sent[0] and "module" not in sent[0]
    if "{chunk}" not in template:
        assert sent[0].startswith(template) and sent[0].endswith("{id} {chunk} INV-0001")  # the chunk, not re-filled


async def test_json_in_a_template_is_sent_as_written(box: Sandbox) -> None:
    sent: list[str] = []

    async def record(prompts: list[str], model: str | None, spans: object = None) -> list[SubcallReply]:
        sent.extend(prompts)
        return [SubcallReply(text='{"n": 2}') for _ in prompts]

    out = await value(
        box,
        "t = 'Answer as {\"n\": <count>} for chunk {id}:\\n{chunk}'\n"
        "print(llm_map(t, ['a', 'b'], parse='json')[1]['value'])",
        on_subcall=record,
    )
    assert out.stdout == "{'n': 2}\n"
    assert sent == ['Answer as {"n": <count>} for chunk 0:\na', 'Answer as {"n": <count>} for chunk 1:\nb']


REFUSED_MAPS = [
    ("llm_map('{chunk}', context)", "TypeError", "takes a list of chunks"),
    ("llm_map('{chunk}', ['a'] * 100_001)", "ValueError", "at most 100,000 chunks"),
    ("llm_map('{chunk}', ['a'], retries=6)", "ValueError", "between 0 and 5"),
    ("llm_map('{chunk}', ['a'], parse='yaml')", "ValueError", "use one of text, json, int, lines"),
    ("llm_map(3, ['a'])", "TypeError", "prompt_template must be a str"),
    ("llm_map(lambda c: 3, ['a'])", "TypeError", "must be a str, not int"),
    ("llm_map.x = 1", "AttributeError", "objects are read-only"),
]


@pytest.mark.parametrize(("code", "kind", "message"), REFUSED_MAPS)
async def test_llm_map_refuses_what_cannot_work(box: Sandbox, code: str, kind: str, message: str) -> None:
    result = await box.execute(code, on_subcall=invoices)
    assert result.error is not None and result.error.type == kind, result.error
    assert message in result.error.message


async def test_the_helpers_are_builtins_that_code_may_shadow(box: Sandbox) -> None:
    out = await value(box, "def llm_map(x):\n    return 'mine'\nprint(llm_map(1), 'split_chunks' in globals())")
    assert out.stdout == "mine False\n" and out.notes == []  # nothing restored behind the code's back
    again = await value(box, "print(llm_map(2))\ndel llm_map\nprint(llm_map)")
    assert again.stdout == "mine\n<function llm_map>\n"


# -- through the server --------------------------------------------------------------------------------


async def test_llm_map_through_the_server(client, fake) -> None:
    """A client's model drives the helpers over MCP; sub-calls go through boto3 to the Converse fake."""
    attempts: dict[str, int] = {}
    lock = threading.Lock()

    def sub_model(request: ConverseRequest) -> Reply | Fault:
        text = request.last_user_text
        with lock:
            attempts[text] = attempts.get(text, 0) + 1
            first = attempts[text] == 1
        if "INV-0042" in text and first:
            return Fault(400, "ValidationException", "Input is malformed")
        return Reply(text=json.dumps(re.findall(r"INV-\d{4}", text)))

    fake.respond = sub_model
    sid = (await call(client, "load_context", content=LINES))["session_id"]
    out = await call(
        client,
        "repl_exec",
        session_id=sid,
        code=(
            "cs = split_chunks(context, 500)\nsp = chunk_spans(context, 500)\n"
            "rs = llm_map('Invoice numbers as a JSON list:\\n{chunk}', cs, parse='json')\n"
            "found = sorted({n for r in rs for n in r['value']})\n"
            "where = [(sp[r['id']]['line'], cs[r['id']].count(chr(10))) for r in rs if 'INV-0042' in r['value']]\n"
            "print(len(cs), len(found), where)\nFINAL(len(found))"
        ),
    )
    assert out["error"] is None, out["error"]
    count, found, *_ = out["stdout"].split()
    (line, lines_in_chunk), *others = json.loads(out["stdout"].split(" ", 2)[2].replace("(", "[").replace(")", "]"))
    assert found == "100" and others == [] and line <= 43 < line + lines_in_chunk  # INV-0042 is on line 43
    assert out["final"] == "100"
    assert out["sub_calls"]["count"] == int(count) + 1 and out["sub_calls"]["failed"] == 1  # one retry, no more
