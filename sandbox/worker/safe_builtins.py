"""The builtins user code sees: a fresh dict per namespace, holding only safe names.

Missing on purpose: ``open``, ``exec``, ``eval``, ``compile``, ``input``,
``breakpoint``, ``memoryview``; stubs raise ``PermissionError`` with a hint, so a
model reading the error knows what to do instead of guessing at a ``NameError``.

Present in a sandboxed form (see :mod:`sandbox.worker.guards`): ``getattr``,
``hasattr``, ``setattr`` and ``delattr`` follow the attribute rules of code on
the name's real characters; ``type`` is :class:`sandbox.worker.guards.SandboxType`:
``type(x)`` is the class of ``x`` (the three-argument form is refused) and
``isinstance(x, type)`` works; ``globals()``, ``locals()`` and ``vars()`` return a
read-only copy of the code's own names (those code can define: never a guard or
``__builtins__``), and ``vars(obj)`` the same of an instance of a class defined
in the REPL; ``dir()`` lists the code's names. ``hasattr`` answers for any name:
it hands out only a bool.
"""

from __future__ import annotations

import builtins
import sys
from collections.abc import Callable
from typing import Any, NoReturn

from sandbox.worker import guards, ownership
from sandbox.worker.policy import attribute_refusal, is_private_name, is_user_name

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
    "help": "help() is not available in the sandbox",
    "breakpoint": "breakpoint() is not available in the sandbox",
    "exit": "exit() is not available in the sandbox; call FINAL(answer) to finish",
    "quit": "quit() is not available in the sandbox; call FINAL(answer) to finish",
}


def _unavailable(name: str, message: str) -> Callable[..., Any]:
    def stub(*args: Any, **kwargs: Any) -> Any:
        raise PermissionError(message)

    stub.__name__ = stub.__qualname__ = name
    return stub


def _checked_name(obj: Any, name: Any) -> str:
    key = guards.exact_str(name, "attribute name")
    refusal = attribute_refusal(key, read=False, runtime=True)
    if refusal:
        raise AttributeError(refusal)
    if is_private_name(key):
        ownership.write_private(obj, key)
    else:
        ownership.write_guard(obj)
    return key


def safe_setattr(obj: Any, name: Any, value: Any) -> None:
    """``setattr`` under the rules of ``obj.name = value`` in code: the user's own objects, plain names."""
    builtins.setattr(obj, _checked_name(obj, name), value)


def safe_delattr(obj: Any, name: Any) -> None:
    builtins.delattr(obj, _checked_name(obj, name))


class NamespaceCopy(dict):  # type: ignore[type-arg]
    """What ``globals()``, ``locals()`` and ``vars()`` return: a copy of the code's own names.

    A copy, so nothing the sandbox keeps in the namespace (guards, ``__builtins__``)
    is handed out and nothing can be planted in it; read-only, so code that means to
    define a variable through it learns at once that it did not.
    """

    __slots__ = ()

    def _read_only(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError("globals(), locals() and vars() are read-only copies in the sandbox; assign names directly")

    __setitem__ = __delitem__ = __ior__ = _read_only
    update = pop = popitem = setdefault = clear = _read_only


def _user_names(mapping: dict[Any, Any]) -> dict[str, Any]:
    """The names code itself can define (``_tmp`` included): never a guard, hook or ``__builtins__``."""
    return {k: v for k, v in mapping.items() if is_user_name(k)}


def make_namespace_builtins(namespace: dict[str, Any]) -> dict[str, Any]:
    """``globals``, ``locals``, ``vars`` and ``dir`` over ``namespace``, the REPL's globals."""

    def caller_names(what: str) -> dict[str, Any]:
        # The frame that called the builtin (directly, or through a C function such as map()).
        # Only the REPL's own code: a library frame would hand out the library's local variables.
        frame = sys._getframe(2)
        if frame.f_globals is not namespace or not frame.f_code.co_filename.startswith("<cell-"):
            raise PermissionError(f"{what} is available only in code written in the REPL")
        return _user_names(frame.f_locals)

    def globals_() -> NamespaceCopy:
        return NamespaceCopy(_user_names(namespace))

    def locals_() -> NamespaceCopy:
        return NamespaceCopy(caller_names("locals()"))

    def vars_(*args: Any) -> Any:
        if not args:
            return NamespaceCopy(caller_names("vars()"))
        if len(args) > 1:
            raise TypeError(f"vars expected at most 1 argument, got {len(args)}")
        obj = args[0]
        if issubclass(type(obj), type) or not ownership.is_user_class(type(obj)):
            raise PermissionError(
                "vars(obj) is available in the sandbox only for instances of classes defined in the REPL"
            )
        return NamespaceCopy(_user_names(builtins.vars(obj)))

    def dir_(*args: Any) -> list[str]:
        if args:
            return builtins.dir(*args)
        return sorted(caller_names("dir()"))

    table = {"globals": globals_, "locals": locals_, "vars": vars_, "dir": dir_}
    for name, function in table.items():
        function.__name__ = function.__qualname__ = name
    return table


def make_builtins(extra: dict[str, Any], namespace: dict[str, Any]) -> dict[str, Any]:
    """A fresh builtins dict: nothing in it is shared with the worker or other namespaces."""
    table: dict[str, Any] = {name: getattr(builtins, name) for name in _PLAIN + _EXCEPTIONS}
    table.update({name: _unavailable(name, message) for name, message in _UNAVAILABLE.items()})
    table.update(make_namespace_builtins(namespace))
    table["type"] = guards.sandbox_type
    table["getattr"] = guards.safe_getattr
    table["hasattr"] = guards.safe_hasattr
    table["setattr"] = safe_setattr
    table["delattr"] = safe_delattr
    table["__build_class__"] = builtins.__build_class__
    table.update(extra)
    return table
