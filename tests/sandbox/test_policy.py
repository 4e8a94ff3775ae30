"""The guards on their own, and every hostile snippet of the adversarial suite straight against a sandbox.

The first half calls the guards in this process with values that lie: a ``str``
subclass whose ``startswith``/``endswith``/``in`` say what suits it (``Evil``), one
whose characters are harmless but whose hash and equality are those of a
dangerous name (``Alias``), an ``int`` and a ``tuple`` subclass likewise. Each
guard must decide on the real characters and hand those to the real operation.
The second half runs the snippet tables of ``tests/attacks.py`` through a
``Sandbox`` without MCP (fast; ``test_adversarial.py`` runs the same tables over
both transports with canaries).
"""

from __future__ import annotations

import collections
import json
import typing
from collections.abc import AsyncIterator
from typing import Any

import pytest
from attacks import ANY_ERROR, CATEGORIES, PWNED

from sandbox import Sandbox, SandboxLimits, SubcallReply
from sandbox.worker import formatting, guards, modules, ownership, safe_builtins
from sandbox.worker.compiler import RestrictedCodeError, compile_cell
from sandbox.worker.policy import INJECTED_NAMES, is_user_name, name_refusal


class Evil(str):
    def startswith(self, *args: Any) -> bool:
        return False

    def endswith(self, *args: Any) -> bool:
        return False

    def __contains__(self, item: object) -> bool:
        return False


def alias(chars: str, target: str) -> str:
    """A str reading ``chars`` that hashes and compares like ``target`` (and like everything else)."""

    class Alias(str):
        def __eq__(self, other: object) -> bool:
            return True

        def __ne__(self, other: object) -> bool:
            return False

        def __hash__(self) -> int:
            return hash(target)

    return Alias(chars)


class LyingInt(int):
    def __eq__(self, other: object) -> bool:
        return True

    def __ne__(self, other: object) -> bool:
        return False

    def __hash__(self) -> int:
        return 0


class LyingTuple(tuple):  # type: ignore[type-arg]
    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(["_private"])


def function() -> None:
    pass


# -- the guards in this process ------------------------------------------------------------------


def test_lying_strings_fool_python_as_expected() -> None:
    """The premise: CPython's own getattr follows an alias's hash to the dangerous name."""
    assert getattr(function, alias("harmless", "__globals__")) is function.__globals__
    assert Evil("__globals__").startswith("_") is False


@pytest.mark.parametrize(
    "name", [Evil("__globals__"), alias("harmless", "__globals__"), alias("__name__", "__globals__")]
)
def test_getattr_reads_the_real_characters(name: str) -> None:
    chars = str.__str__(name)
    if chars == "__name__":
        assert guards.safe_getattr(function, name) == "function"  # the name it reads, not the hash it borrows
        return
    with pytest.raises(AttributeError) as refused:
        guards.safe_getattr(function, name)
    assert "__globals__" not in str(refused.value) or "not accessible" in str(refused.value)
    with pytest.raises(AttributeError):
        guards.safe_getattr(function, name, None) if chars.startswith("_") else guards.safe_getattr(function, name)
    assert guards.safe_hasattr(function, name) is hasattr(function, chars)  # by its characters: a bool


def test_getattr_takes_only_strings() -> None:
    for name in (7, b"__globals__", LyingInt(1), None):
        with pytest.raises(TypeError, match="attribute name must be a str"):
            guards.safe_getattr(function, name)


def test_exact_copies() -> None:
    copied = guards.exact_str(Evil("__x"), "name")
    assert type(copied) is str and copied == "__x" and copied.startswith("_")
    assert type(guards.exact_int(LyingInt(3), "n")) is int and guards.exact_int(LyingInt(3), "n") == 3
    with pytest.raises(TypeError):
        guards.exact_str(3, "name")


def test_import_checks_what_it_looks_up() -> None:
    safe_import = modules.make_import(modules.build_all({}))
    with pytest.raises(ImportError, match="'os' is not allowed"):
        safe_import(Evil("os"))
    with pytest.raises(ImportError, match="'harmless'"):
        safe_import(alias("harmless", "json"))  # the real characters are looked up, not the borrowed hash
    assert safe_import(Evil("json")).loads is json.loads
    with pytest.raises(ImportError, match="cannot import name '_default_decoder'"):
        safe_import("json", None, None, (Evil("_default_decoder"),))
    with pytest.raises(ImportError, match="cannot import name 'x'"):
        safe_import("json", None, None, (alias("x", "loads"),))
    with pytest.raises(TypeError, match="fromlist"):
        safe_import("json", None, None, LyingTuple(("loads",)))
    with pytest.raises(ImportError, match="relative"):
        safe_import("json", None, None, (), LyingInt(1))
    with pytest.raises(TypeError):
        safe_import("json", None, None, (), 0.0)


def test_write_guard_owns_by_real_module() -> None:
    namespace: dict[str, Any] = {"__name__": "repl"}
    exec("class Mine:\n    pass\ndef mine():\n    pass", namespace)
    for own in (namespace["Mine"], namespace["Mine"](), namespace["mine"]):
        assert ownership.write_guard(own) is own
    fake_owner = collections.namedtuple("P", "x", module=alias("json", "repl"))  # type: ignore[misc]
    for foreign in (collections.Counter, collections.Counter(), json, json.loads, print, fake_owner, function):
        with pytest.raises(AttributeError, match="read-only"):
            ownership.write_guard(foreign)


def test_type_gives_classes_but_no_metaclass() -> None:
    assert guards.sandbox_type(1) is int and guards.sandbox_type(Evil("x")) is Evil
    assert guards.sandbox_type(int) is guards.sandbox_type
    for cls in (collections.ChainMap, typing.Any):  # ABCMeta, typing's _AnyMeta: they build classes from dicts
        with pytest.raises(PermissionError, match="metaclass"):
            guards.sandbox_type(cls)
    with pytest.raises(PermissionError, match="type\\(name, bases, dict\\)"):
        guards.sandbox_type("X", (), {})


def test_type_is_a_standin_that_answers_isinstance() -> None:
    standin = guards.sandbox_type
    assert isinstance(int, standin) and isinstance(collections.ChainMap, standin) and isinstance(standin, standin)
    assert not isinstance(1, standin) and not isinstance(Evil("x"), standin)
    assert issubclass(standin, standin) and issubclass(type, standin) and not issubclass(int, standin)
    assert standin(standin) is standin and standin(Evil("x")) is Evil
    with pytest.raises(TypeError, match="must be a class"):
        issubclass(1, standin)
    assert standin[int] == typing.Type[int]  # noqa: UP006  # not type[int], which calls type
    with pytest.raises(TypeError, match="cannot be instantiated"):
        standin[int]("X", (), {})

    class Liar:
        @property
        def __class__(self) -> type:  # type: ignore[override]  # isinstance would believe this
            return type

    assert isinstance(Liar(), type) and not isinstance(Liar(), standin)


def _repl_namespace(code: str) -> dict[str, Any]:
    """Run ``code`` as the REPL's own (its classes and functions get the REPL's module name)."""
    namespace: dict[str, Any] = {"__name__": "repl"}
    exec(code, namespace)
    return namespace


def test_private_names_are_the_repls_own_only() -> None:
    import random

    ns = _repl_namespace(
        "import random\n"
        "class Base:\n    _kind = 'base'\n    def _helper(self):\n        return 1\n"
        "class Mine(Base):\n    def __init__(self):\n        self._n = 1\n"
        "class Rand(random.Random):\n    pass\n"
        "def fn():\n    pass\n"
        "fn._calls = 2\n"
    )
    mine, rand = ns["Mine"](), ns["Rand"]()
    assert ownership.read_private(mine, "_n") == 1 and ownership.read_private(mine, "_helper")() == 1
    assert ownership.read_private(ns["Mine"], "_kind") == "base" and ownership.read_private(ns["fn"], "_calls") == 2
    for obj in (mine, ns["Mine"], ns["fn"]):
        assert ownership.write_private(obj, "_new") is obj
    for obj, name in [
        (rand, "_randbelow"),  # a library's method, on the REPL's subclass
        (ns["Rand"], "_randbelow"),
        (random.Random(), "_randbelow"),
        (json, "_default_decoder"),
        (print, "_x"),
        (function, "_x"),  # a function, but not the REPL's
        (collections.Counter(), "_keep_positive"),
    ]:
        with pytest.raises(AttributeError, match="not accessible"):
            ownership.read_private(obj, name)
        with pytest.raises(AttributeError, match="not accessible"):
            ownership.write_private(obj, name)
    with pytest.raises(AttributeError, match="has no attribute"):
        ownership.read_private(ns["Mine"], "_missing")
    # getattr and setattr go the same way, on the real characters of the name
    assert guards.safe_getattr(mine, Evil("_n")) == 1
    with pytest.raises(AttributeError, match="not accessible"):
        guards.safe_getattr(rand, Evil("_randbelow"))
    with pytest.raises(AttributeError, match="not accessible"):
        safe_builtins.safe_setattr(rand, Evil("_randbelow"), print)
    with pytest.raises(AttributeError, match="has no attribute '_helper'"):
        guards.safe_getattr(rand, alias("_helper", "_randbelow"))  # its characters, not the hash it borrows


def test_reserved_names_cannot_be_named() -> None:
    for name in (*INJECTED_NAMES, "__builtins__", "__name__", "_getattr_", "_print", "_tmp0", "__x", "x__roles__"):
        assert name_refusal(name) is not None and not is_user_name(name), name
    for name in ("_", "_x", "_tmp", "_cache_dict", "x_", "printed", "_private1"):
        assert name_refusal(name) is None and is_user_name(name), name
    assert not is_user_name(Evil("_x")) and not is_user_name(1)


def test_format_methods_are_swapped_wherever_they_come_from() -> None:
    formatter = guards.FORMATTER
    for template in ("{0}", "{0.real}"):
        for value in (template.format, Evil(template).format, super(Evil, Evil(template)).format):  # type: ignore[misc]
            swapped = formatting.replace_str_method(value, "format", formatter)
            assert swapped(1) == "1"
            if template == "{0}":  # CPython's own method, bound to an exact copy of a template that only looks up
                assert type(swapped) is type("".format) and type(swapped.__self__) is str
            else:
                assert type(swapped) is formatting.FormatMethod
    assert type(formatting.replace_str_method(str.format, "format", formatter)) is formatting.FormatMethod
    assert type(formatting.replace_str_method(str.format_map, "format_map", formatter)) is formatting.FormatMethod

    class Report:
        def format(self) -> str:
            return "mine"

    own = Report().format
    assert formatting.replace_str_method(own, "format", formatter) is own
    assert formatting.replace_str_method(format, "format", formatter) is format  # the builtin is safe


@pytest.mark.parametrize(
    ("template", "guarded"),
    [
        ("{} {name} {0:>10} {1!r}", False),
        ("{{0.__class__}} {0}", False),  # escaped braces are text
        ("{0.real}", True),
        ("{0[key]}", True),
        ("{0:{1}}", True),
        ("{0.__class__", True),  # does not parse: the guarded formatter raises CPython's error
    ],
)
def test_which_templates_take_the_guarded_formatter(template: str, guarded: bool) -> None:
    assert formatting.needs_guarded_formatter(template) is guarded


def test_guarded_formatter_applies_the_attribute_rules() -> None:
    format_ = guards.safe_getattr("{0.__init__.__globals__}", "format")
    with pytest.raises(AttributeError, match="__init__"):
        format_(function)
    assert guards.safe_getattr("{0.__class__.__name__}|{0.real}|{1[k]}", "format")(3, {"k": 4}) == "int|3|4"
    assert guards.safe_getattr(Evil("{a.real}"), "format_map")({"a": 1}) == "1"
    with pytest.raises(ValueError, match="positional"):
        guards.safe_getattr("{0.real}", "format_map")({})


def test_namespace_builtins_hand_out_copies() -> None:
    namespace: dict[str, Any] = {"__builtins__": {}, "_write_": print, "kept": 1, "__name__": "repl"}
    table = safe_builtins.make_namespace_builtins(namespace)
    names = table["globals"]()
    assert names == {"kept": 1}
    with pytest.raises(TypeError, match="read-only"):
        names["kept"] = 2
    with pytest.raises(PermissionError, match="only in code written in the REPL"):
        table["locals"]()  # called from this test, not from a cell


@pytest.mark.parametrize(
    "code",
    [
        "x.__class__ = int",
        "x.__name__ = 'y'",
        "del x.__doc__",
        "x.__init__ = f",
        "x.__getattr__",
        "x.__dict__ = {}",
        "x.__weakref__",
        "class A:\n    __slots__ = ()",
        "__name__ = 'x'",
        "x.__globals__",
        "_write_ = 1",
        "x.__private",
        "import _thread",
        "e.__traceback__",
        "e.__cause__ = None",
    ],
)
def test_compile_time_refusals_remain(code: str) -> None:
    with pytest.raises(RestrictedCodeError):
        compile_cell(code, "<cell-test>")


# -- the attack tables against a sandbox ----------------------------------------------------------


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def box(anyio_backend: str) -> AsyncIterator[Sandbox]:
    async with Sandbox(SandboxLimits(exec_timeout_s=5, kill_grace_s=2, memory_bytes=512 * 1024 * 1024)) as sandbox:
        yield sandbox


async def echo(prompts: list[str], model: str | None, spans: object = None) -> list[SubcallReply]:
    return [SubcallReply(text=f"echo {len(p)}") for p in prompts]


@pytest.mark.anyio
@pytest.mark.parametrize("category", sorted(CATEGORIES))
async def test_attack_tables_directly(box: Sandbox, category: str) -> None:
    problems = []
    for code, expected in CATEGORIES[category]:
        result = await box.execute(code, on_subcall=echo)
        got = result.error.type if result.error else None
        if expected == ANY_ERROR and got is None:
            problems.append(f"{code!r} should have failed; it printed {result.stdout[:300]!r}")
        elif expected != ANY_ERROR and got != expected:
            problems.append(f"{code!r}: expected {expected}, got {got}: {result.error and result.error.message[:300]}")
        if PWNED in result.stdout or PWNED in (result.final or ""):
            problems.append(f"{code!r} printed the escape marker: {result.stdout[:300]!r}")
        if result.restarted:
            problems.append(f"{code!r} restarted the sandbox")
    assert not problems, "\n".join(problems)
    assert (await box.execute("len('ok')")).stdout == "2\n"


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("code", "final", "error", "noted"),
    [
        ("answer = 'Paris'\nFINAL_VAR(answer)", "Paris", None, True),  # the value, as models often pass it
        ("answer = 'a long answer.'\nFINAL_VAR(answer)", "a long answer.", None, False),
        ("total = 6\nFINAL_VAR(total)", "6", None, False),
        ("rows = [1, 2]\nFINAL_VAR(rows)", "[1, 2]", None, False),
        ("y = 5\nname = 'y'\nFINAL_VAR(name)", "5", None, False),  # a str naming a variable: the variable
        ("_kept = 'x'\nFINAL_VAR('_kept')", "x", None, False),
        ("FINAL_VAR('missing')", None, "NameError", False),  # the name in quotes: the variable must exist
        ("FINAL_VAR('__builtins__')", None, "NameError", False),
        ("FINAL_VAR('_write_')", None, "NameError", False),
        ("name = '__builtins__'\nFINAL_VAR(name)", "__builtins__", None, True),  # never an internal
        ("name = '_write_'\nFINAL_VAR(name)", "_write_", None, True),
        ("name = 'context'\nFINAL_VAR(name)", "context", None, True),  # a value names the code's own only
        ("class Evil(str):\n    pass\nFINAL_VAR(Evil('__builtins__'))", "__builtins__", None, False),
        ("class S:\n    def __str__(self):\n        return 'shown'\nFINAL_VAR(S())", "shown", None, False),
        ("FINAL_VAR(llm_query)", "<function llm_query>", None, False),
        ("FINAL_VAR(7)", "7", None, False),
        ("FINAL_VAR('x', 'y')", None, "TypeError", False),
        ("f = FINAL_VAR\nf('answer')", "Paris", None, False),  # not a literal at the call: by value
    ],
)
async def test_final_var_takes_a_name_or_a_value(
    box: Sandbox, code: str, final: str | None, error: str | None, noted: bool
) -> None:
    await box.execute("answer = 'Paris'")
    result = await box.execute(code)
    assert (result.error and result.error.type) == error, result.error
    assert result.final == final
    assert any("names no variable" in note for note in result.notes) is noted, result.notes


@pytest.mark.anyio
async def test_lying_values_reach_output_as_their_characters(box: Sandbox) -> None:
    code = (
        "class Text(str):\n"
        "    def __add__(self, other):\n        return 1\n"
        "    def __len__(self):\n        return 0\n"
        "    def __str__(self):\n        return self\n"
        "    def __repr__(self):\n        return self\n"
        "class Shown:\n"
        "    def __repr__(self):\n        return Text('shown')\n"
        "    def __str__(self):\n        return Text('printed')\n"
        "print(Shown(), Text('two'), sep=Text('|'))\nFINAL(Text('the answer'))\nShown()"
    )
    result = await box.execute(code)
    assert result.error is None, result.error
    assert result.stdout == "printed|two\nshown\n"
    assert result.final == "the answer"
    failed = await box.execute("raise ValueError(Shown())")
    assert failed.error is not None and failed.error.message == "printed" and not failed.restarted


@pytest.mark.anyio
async def test_sleep_counts_as_compute(box: Sandbox) -> None:
    short = await box.execute("import time\ntime.sleep(0.01)\nprint('slept')")
    assert short.error is None and short.stdout == "slept\n"
    long = await box.execute("kept = 1\ntime.sleep(100)", timeout=0.5)
    assert long.timed_out and long.error is not None and long.error.type == "TimeoutError" and not long.restarted
    assert (await box.execute("kept")).stdout == "1\n"
