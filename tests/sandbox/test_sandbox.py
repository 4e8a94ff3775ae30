"""The sandbox package on its own: ordinary Python works, the dangerous parts are refused, limits hold."""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from sandbox import Document, Sandbox, SandboxLimits, SubcallReply

pytestmark = pytest.mark.anyio
NEVER_ENDS_TIMEOUT_S = 1
"""The compute limit given to code that never ends; ordinary code runs under the box's own, far longer, limit."""


@pytest.fixture
async def box(tmp_path: Path) -> AsyncIterator[Sandbox]:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("line one\nline two\n")
    async with Sandbox(SandboxLimits(exec_timeout_s=600, kill_grace_s=1, memory_bytes=512 * 1024 * 1024)) as sandbox:
        await sandbox.load([Document(name="corpus.txt", path=corpus)], shape="str")
        yield sandbox


async def run(box: Sandbox, code: str, **kwargs):  # type: ignore[no-untyped-def]
    return await box.execute(code, **kwargs)


ORDINARY = [
    ("n = 0\nfor _ in range(3):\n    n += 1\nn", "3"),
    ("d = {}\nd['k'] = 1\nd['k'] += 4\nd", "{'k': 5}"),
    ("xs = [1, 2, 3]\nxs[0] += 10\nxs[1:]", "[2, 3]"),
    (
        "class Box:\n    def __init__(self, v):\n        self.v = v\n"
        "    def __repr__(self):\n        return f'Box({self.v})'\n"
        "b = Box(1)\nb.v += 1\nb",
        "Box(2)",
    ),
    ("[x * x for x in range(4) if x % 2]", "[1, 9]"),
    ("{k: v for k, v in zip('ab', (1, 2))}", "{'a': 1, 'b': 2}"),
    ("a, (b, c) = 1, (2, 3)\na + b + c", "6"),
    ("try:\n    1 / 0\nexcept ZeroDivisionError as e:\n    r = str(e)\nr", "'division by zero'"),
    ("name = 'x'\nf'{name!r:>6}|{3.14159:.2f}'", "\"   'x'|3.14\""),
    ("context[5:8]", "'one'"),
    ("total: int = 4\ntotal", "4"),
    ("import collections, re, json\ncollections.Counter(re.findall(r'\\w+', context)).most_common(1)", "[('line', 2)]"),
    (
        "from collections import Counter\nfrom itertools import islice\nlist(islice(Counter('aab').elements(), 2))",
        "['a', 'a']",
    ),
    ("def gen():\n    yield from range(4)\nsum(gen())", "6"),
    (
        "def outer():\n    x = 1\n    def inner():\n        nonlocal x\n        x += 1\n"
        "    inner()\n    return x\nouter()",
        "2",
    ),
    ("sorted(['b', 'a'], key=lambda s: s)", "['a', 'b']"),
    ("getattr('abc', 'upper')()", "'ABC'"),
]


@pytest.mark.parametrize(("code", "shown"), ORDINARY)
async def test_ordinary_python_just_works(box: Sandbox, code: str, shown: str) -> None:
    result = await run(box, code)
    assert result.error is None, result.error
    assert result.stdout == shown + "\n"


REFUSED = [
    ("import os", "ImportError", "import of 'os' is not allowed"),
    ("import subprocess", "ImportError", "not allowed"),
    ("import sys\nsys.modules", "AttributeError", "sys.modules is not available in the sandbox"),
    ("from json import codecs", "ImportError", "cannot import name 'codecs'"),
    ("import statistics\nstatistics.sys", "AttributeError", "statistics.sys is not available"),
    ("import collections\ncollections.UserDict", "AttributeError", "collections here holds: ChainMap, Counter"),
    ("import collections\ncollections.abc", "AttributeError", "write `from collections.abc import Iterable`"),
    ("open('/etc/passwd')", "PermissionError", "open() is not available"),
    ("().__class__.__bases__[0].__subclasses__()", "RestrictedCodeError", '"__bases__"'),
    ("llm_query.__self__", "RestrictedCodeError", '"__self__"'),
    ("getattr(llm_query, '_call')", "AttributeError", "not accessible"),
    ("'{0.__init__.__globals__}'.format(len)", "AttributeError", "'__init__' is not accessible"),
    ("'{x.gi_frame}'.format_map({'x': (i for i in [1])})", "AttributeError", '"gi_frame"'),
    ("g = (i for i in [1])\ng.gi_frame.f_back", "RestrictedCodeError", '"gi_frame"'),
    ("exec('1')", "RestrictedCodeError", "exec() calls are not allowed"),
    ("type('X', (), {})", "PermissionError", "type(name, bases, dict) is not available"),
    ("import json\nvars(json)", "PermissionError", "only for instances of classes defined in the REPL"),
    ("globals()['k'] = 1", "TypeError", "read-only copies"),
    ("import json\njson.loads = None", "AttributeError", "read-only"),
    ("__import__('os')", "RestrictedCodeError", '"__import__"'),
    ("class M(type):\n    pass\nclass X(metaclass=M):\n    pass", "RestrictedCodeError", "metaclass"),
]


@pytest.mark.parametrize(("code", "kind", "message"), REFUSED)
async def test_dangerous_code_is_refused_clearly(box: Sandbox, code: str, kind: str, message: str) -> None:
    result = await run(box, code)
    assert result.error is not None, f"{code!r} was not refused"
    assert result.error.type == kind
    assert message in result.error.message


async def test_environment_is_scrubbed_and_workdir_private(box: Sandbox) -> None:
    pid = box.pid
    assert pid is not None
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    names = {item.split(b"=", 1)[0].decode() for item in environ if item}
    assert names <= {"PATH", "LANG", "LC_ALL", "HOME", "TMPDIR"}
    cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
    assert cwd.name.startswith("rlm-sandbox-")
    assert list(cwd.iterdir()) == []
    assert oct(cwd.stat().st_mode & 0o777) == "0o700"


async def test_soft_timeout_keeps_variables(box: Sandbox) -> None:
    await run(box, "kept = 41")
    result = await run(box, "kept += 1\nwhile True:\n    pass", timeout=NEVER_ENDS_TIMEOUT_S)
    assert result.timed_out and result.error and result.error.type == "TimeoutError"
    assert not result.restarted
    assert (await run(box, "kept")).stdout == "42\n"


async def test_timeout_is_not_swallowed_by_except_exception(box: Sandbox) -> None:
    code = "while True:\n    try:\n        while True:\n            pass\n    except Exception:\n        pass"
    result = await run(box, code, timeout=NEVER_ENDS_TIMEOUT_S)
    assert result.timed_out and not result.restarted


async def test_code_that_swallows_every_interrupt_is_killed(box: Sandbox) -> None:
    code = "while True:\n    try:\n        while True:\n            pass\n    except BaseException:\n        pass"
    result = await run(box, code, timeout=NEVER_ENDS_TIMEOUT_S)
    assert result.timed_out and result.restarted
    assert (await run(box, "len(context)")).stdout == "18\n"


async def test_hard_kill_restarts_and_reloads(box: Sandbox) -> None:
    await run(box, "kept = 1")
    pid = box.pid
    result = await run(box, "sum(range(10**14))", timeout=NEVER_ENDS_TIMEOUT_S)  # C code that never checks signals
    assert result.restarted and result.timed_out
    assert "variables from earlier calls were lost" in result.error.message
    assert box.pid != pid
    assert (await run(box, "kept")).error.type == "NameError"
    assert (await run(box, "len(context)")).stdout == "18\n"  # the corpus came back


async def test_worker_crash_is_survived(box: Sandbox) -> None:
    running = anyio.Event()

    async def signal_running(prompts: list[str], model: str | None, spans: object = None) -> list[SubcallReply]:
        running.set()  # the code asked: it is past its start, about to loop
        return [SubcallReply(text="go") for _ in prompts]

    async def crash() -> None:
        await running.wait()
        os.kill(box.pid, signal.SIGSEGV)

    async with anyio.create_task_group() as tg:
        tg.start_soon(crash)
        result = await run(box, "llm_query('running')\nwhile True:\n    pass", on_subcall=signal_running)
    assert result.restarted and result.error.type == "SandboxCrashed"
    assert "SIGSEGV" in result.error.message
    assert (await run(box, "len(context)")).stdout == "18\n"


async def test_memory_limit(box: Sandbox) -> None:
    result = await run(box, "x = bytearray(2 * 1024**3)")
    assert result.error.type == "MemoryError" and not result.restarted
    assert (await run(box, "1 + 1")).stdout == "2\n"


async def test_output_is_truncated_head_and_tail(tmp_path: Path) -> None:
    async with Sandbox(SandboxLimits(max_output_chars=1000, exec_timeout_s=600)) as sandbox:
        result = await sandbox.execute("for i in range(100000):\n    print(i)")
    assert result.stdout.startswith("0\n1\n2\n")
    assert result.stdout.endswith("99998\n99999\n")
    assert "characters omitted" in result.stdout
    assert len(result.stdout) < 1100
    assert result.output_chars == sum(len(f"{i}\n") for i in range(100000))


async def test_cancellation_stops_running_code(box: Sandbox) -> None:
    await run(box, "kept = 'yes'")

    running = anyio.Event()

    async def go_on(prompts: list[str], model: str | None, spans: object = None) -> list[SubcallReply]:
        running.set()  # the code is running; it goes on into its endless loop
        return [SubcallReply(text="go") for _ in prompts]

    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: run(box, "llm_query('running')\nwhile True:\n    pass", on_subcall=go_on))
        await running.wait()
        await anyio.sleep(0.1)  # (wherever the code is by now, a cancellation must stop it the same way)
        tg.cancel_scope.cancel()
    result = await run(box, "kept")
    assert result.stdout == "'yes'\n" and not result.restarted


async def test_cancellation_during_a_sub_call(box: Sandbox) -> None:
    async def never(prompts: list[str], model: str | None, spans: object = None) -> list[SubcallReply]:
        await anyio.sleep(60)
        return []

    async def never_and_cancel(prompts: list[str], model: str | None, spans: object = None) -> list[SubcallReply]:
        tg.cancel_scope.cancel()  # the code waits in its sub-call: cancel the call as its caller would
        return await never(prompts, model)

    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: run(box, "kept = 2\nllm_query('x')", on_subcall=never_and_cancel))
    assert (await run(box, "kept")).stdout == "2\n"


async def test_reserved_names_are_restored(box: Sandbox) -> None:
    result = await run(box, "context = 'mine'\nllm_query = None")
    assert "reserved name(s) restored: context, llm_query" in result.notes[0]
    assert (await run(box, "len(context)")).stdout == "18\n"


async def test_list_shape_and_append(tmp_path: Path) -> None:
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("first")
    b.write_text("second")
    async with Sandbox() as sandbox:
        info = await sandbox.load([Document(name="a.txt", path=a)], shape="str")
        assert info.type == "str" and info.chars == 5
        info = await sandbox.load(
            [Document(name="b.txt", path=b, header="==> b.txt <==\n")], append=True, first_header="==> a.txt <==\n"
        )
        assert info.type == "list[str]" and info.documents == 2
        result = await sandbox.execute("context")
        assert result.stdout == "['==> a.txt <==\\nfirst', '==> b.txt <==\\nsecond']\n"
