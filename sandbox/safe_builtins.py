"""The builtins user code sees: a fresh dict per namespace, holding only safe names.

Missing on purpose: ``open``, ``exec``, ``eval``, ``compile``, ``type``, ``vars``,
``globals``, ``locals``, ``setattr``, ``delattr``, ``input``, ``breakpoint``,
``memoryview``. The most common of those are present as stubs that raise
``PermissionError`` with a hint, so a model reading the error knows what to do
instead of guessing at a ``NameError``.
"""

from __future__ import annotations

import builtins
import types
from collections.abc import Callable
from typing import Any

from sandbox.policy import GUARDED_READS, attribute_allowed

_PLAIN = (
    "abs",
    "all",
    "any",
    "ascii",
    "bin",
    "bool",
    "bytearray",
    "bytes",
    "callable",
    "chr",
    "classmethod",
    "complex",
    "dict",
    "dir",
    "divmod",
    "enumerate",
    "filter",
    "float",
    "format",
    "frozenset",
    "hash",
    "hex",
    "id",
    "int",
    "isinstance",
    "issubclass",
    "iter",
    "len",
    "list",
    "map",
    "max",
    "min",
    "next",
    "object",
    "oct",
    "ord",
    "pow",
    "property",
    "range",
    "repr",
    "reversed",
    "round",
    "set",
    "slice",
    "sorted",
    "staticmethod",
    "str",
    "sum",
    "super",
    "tuple",
    "zip",
    "Ellipsis",
    "NotImplemented",
    "True",
    "False",
    "None",
)

_EXCEPTIONS = tuple(
    name
    for name, value in vars(builtins).items()
    if isinstance(value, type) and issubclass(value, BaseException) and not name.startswith("_")
)

_UNAVAILABLE = {
    "open": "open() is not available in the sandbox: the corpus is already loaded in `context`",
    "exec": "exec() is not available in the sandbox",
    "eval": "eval() is not available in the sandbox",
    "compile": "compile() is not available in the sandbox",
    "input": "input() is not available in the sandbox",
    "type": "type() is not available in the sandbox; use isinstance(x, str) or SHOW_VARS()",
    "vars": "vars() is not available in the sandbox; use SHOW_VARS()",
    "globals": "globals() is not available in the sandbox; use SHOW_VARS()",
    "locals": "locals() is not available in the sandbox",
    "setattr": "setattr() is not available in the sandbox; assign with obj.name = value",
    "delattr": "delattr() is not available in the sandbox",
    "help": "help() is not available in the sandbox",
    "exit": "exit() is not available in the sandbox; call FINAL(answer) to finish",
    "quit": "quit() is not available in the sandbox; call FINAL(answer) to finish",
}

_MISSING = object()


def _unavailable(name: str, message: str) -> Callable[..., Any]:
    def stub(*args: Any, **kwargs: Any) -> Any:
        raise PermissionError(message)

    stub.__name__ = stub.__qualname__ = name
    return stub


def _refuse_attribute(name: object) -> None:
    raise AttributeError(f"attribute {name!r} is not accessible in the sandbox")


def guarded_read(obj: Any, name: str) -> Any:
    """``obj.name`` for a name in ``GUARDED_READS``: refused on exceptions, native elsewhere."""
    if isinstance(obj, BaseException):
        raise AttributeError(f"attribute {name!r} of exceptions is not accessible in the sandbox")
    return getattr(obj, name)


def safe_getattr(obj: Any, name: str, default: Any = _MISSING) -> Any:
    """``getattr`` under the same name rules as ``obj.name`` in code."""
    if not attribute_allowed(name):
        _refuse_attribute(name)
    if name in GUARDED_READS and isinstance(obj, BaseException):
        return guarded_read(obj, name)
    if default is _MISSING:
        return getattr(obj, name)
    return getattr(obj, name, default)


def safe_hasattr(obj: Any, name: str) -> bool:
    if not attribute_allowed(name):
        _refuse_attribute(name)
    return hasattr(obj, name)


def make_write_guard(user_module: str) -> Callable[[Any], Any]:
    """``_write_``: attribute writes go to the user's own objects only.

    Modules (our proxies), classes that user code did not define, and builtin
    or library callables are refused so that nothing the worker itself relies
    on can be patched from the REPL.
    """

    def write_guard(obj: Any) -> Any:
        owner = obj.__module__ if isinstance(obj, type | types.FunctionType) else type(obj).__module__
        if owner != user_module:
            raise AttributeError(f"{type(obj).__name__!r} objects are read-only in the sandbox")
        return obj

    return write_guard


def make_builtins(extra: dict[str, Any]) -> dict[str, Any]:
    """A fresh builtins dict: nothing in it is shared with the worker or other namespaces."""
    table: dict[str, Any] = {name: getattr(builtins, name) for name in _PLAIN + _EXCEPTIONS}
    table.update({name: _unavailable(name, message) for name, message in _UNAVAILABLE.items()})
    table["getattr"] = safe_getattr
    table["hasattr"] = safe_hasattr
    table["__build_class__"] = builtins.__build_class__
    table.update(extra)
    return table
