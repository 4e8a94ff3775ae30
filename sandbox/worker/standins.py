"""Modules code asks for but uses only in passing: the harmless part of each, and a clear word on the rest.

Real model code imports ``sys`` to print to ``sys.stderr`` or read
``sys.maxsize``, ``typing`` for annotations, ``traceback`` to show what failed,
``dataclasses`` for a record type. The real modules hand out the interpreter
(``sys.modules``, ``sys._getframe``), evaluate strings (``typing.get_type_hints``),
walk frames (``traceback.extract_stack``) or generate code from names
(``dataclasses.make_dataclass``). So each is a proxy (see :mod:`sandbox.worker.modules`)
holding the names listed in :data:`sandbox.protocol.modules.STANDIN_MODULES`; anything
else raises an ``AttributeError`` that says it is not available in the sandbox, with a
hint where there is a better way.
"""

from __future__ import annotations

import dataclasses
import keyword
import sys
from collections.abc import Callable, Mapping
from typing import Any

from sandbox.worker import guards, ownership
from sandbox.worker.describe import describe_exception

# Modules the compiler imports on its own: ``from __future__ import annotations`` runs an import.
FUTURE_NAMES = ("annotations", "division", "absolute_import", "print_function", "generator_stop")

HINTS: Mapping[str, str] = {
    "sys.exit": "call FINAL(answer) to finish",
    "sys.stdin": "there is no input in the sandbox",
    "sys.exc_info": "catch the exception with `except Exception as e:`",
    "sys.setrecursionlimit": "the recursion limit is fixed",
    "sys.modules": "import one of the available modules instead",
    "sys.path": "import one of the available modules instead",
    "collections.abc": "write `from collections.abc import Iterable` (or use typing.Iterable)",
    "typing.TypedDict": "use a dict, or a @dataclass",
    "dataclasses.make_dataclass": "define the class with a class statement and @dataclass",
}


class TextSink:
    """``sys.stdout``/``sys.stderr`` in the sandbox: what is written goes to the captured output."""

    __slots__ = ("_write", "name")
    encoding = "utf-8"

    def __init__(self, name: str, write: Callable[[str], int]):
        self.name = name
        self._write = write

    def write(self, text: Any) -> int:
        return self._write(guards.exact_str(text, "write() argument"))

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False

    def __repr__(self) -> str:
        return f"<sandbox {self.name}>"


def dataclass(cls: Any = None, /, **options: Any) -> Any:
    """``@dataclass`` for classes defined in the REPL.

    The real decorator adds methods to the class it is given and generates their
    source from the field names: on a library class it would patch the library, and
    a field name that is not an identifier would be code. So it takes only plain
    classes written in the REPL whose annotated names are identifiers.
    """

    def wrap(target: Any) -> Any:
        if type(target) is not type or not ownership.is_user_class(target):
            raise PermissionError("dataclass() applies in the sandbox only to classes defined in the REPL")
        namespace = type.__dict__["__dict__"].__get__(target)
        annotations = namespace.get("__annotations__", {})
        if type(annotations) is not dict or not all(
            type(name) is str and name.isidentifier() and not keyword.iskeyword(name) for name in annotations
        ):
            raise PermissionError("dataclass() takes only fields named by identifiers in the sandbox")
        return dataclasses.dataclass(target, **options)

    return wrap if cls is None else wrap(cls)


def _traceback_functions(write: Callable[[str], int]) -> dict[str, Any]:
    """``traceback`` on the exception being handled, showing only the REPL's own lines (as errors are shown)."""

    def exception_of(exc: Any, value: Any) -> BaseException:
        exc = exc if value is _UNSET else value
        if not issubclass(type(exc), BaseException):
            raise TypeError(f"expected an exception, not {type(exc).__name__}")
        return exc  # type: ignore[no-any-return]

    def format_exception(exc: Any, /, value: Any = _UNSET, tb: Any = None, limit: Any = None, chain: Any = True):
        text = describe_exception(exception_of(exc, value))["traceback"] or ""
        return [line + "\n" for line in text.split("\n")]

    def format_exception_only(exc: Any, /, value: Any = _UNSET) -> list[str]:
        return format_exception(exc, value)[-1:]

    def format_exc(limit: Any = None, chain: Any = True) -> str:
        current = sys.exc_info()[1]
        return "NoneType: None\n" if current is None else "".join(format_exception(current))

    def print_exc(limit: Any = None, file: Any = None, chain: Any = True) -> None:
        (write if file is None else file.write)(format_exc())

    def print_exception(exc: Any, /, value: Any = _UNSET, tb: Any = None, limit: Any = None, file: Any = None):
        (write if file is None else file.write)("".join(format_exception(exc, value)))

    functions = {
        "format_exc": format_exc,
        "print_exc": print_exc,
        "format_exception": format_exception,
        "format_exception_only": format_exception_only,
        "print_exception": print_exception,
    }
    for name, function in functions.items():
        function.__qualname__ = name
    return functions


_UNSET: Any = object()


def extras(write: Callable[[str], int]) -> dict[str, dict[str, Any]]:
    """The names of the stand-ins that are not the real module's: output streams, the guarded decorators."""
    return {
        "sys": {"stdout": TextSink("stdout", write), "stderr": TextSink("stderr", write), "argv": [""]},
        "dataclasses": {"dataclass": dataclass},
        "traceback": _traceback_functions(write),
    }
