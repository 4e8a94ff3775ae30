"""The runtime guards compiled code calls, and the rule every one of them follows.

A value user code hands a guard may be an instance of its own subclass of ``str``
(or ``int``, ``tuple``, ...) whose methods answer as they like: ``startswith``
says no, ``__eq__`` says yes to everything, ``__hash__`` borrows the hash of
``"__globals__"`` so that CPython's own dict lookups land there. So a guard
never asks the object anything. It copies the value to its exact builtin type
(``str.__str__`` copies a subclass's real characters without calling any method
it defines), checks the copy, and hands the copy, never the original, to the
real operation. Types are read with ``type()``, never ``isinstance()``, which
consults ``obj.__class__``; class modules are read through ``type``'s own
descriptor, never through the class.
"""

from __future__ import annotations

import builtins
import types
from collections.abc import Callable
from typing import Any

from sandbox import formatting
from sandbox.policy import GUARDED_READS, SPECIAL_METHODS, USER_MODULE, attribute_refusal

_MISSING = object()
_CLASS_MODULE = type.__dict__["__module__"]
_CLASS_NAME = type.__dict__["__name__"]
_SELF_CLASS = super.__dict__["__self_class__"]


def exact_str(value: object, what: str) -> str:
    """``value`` as an exact ``str``: a subclass is copied by its characters, anything else is a TypeError."""
    if type(value) is str:
        return value
    if issubclass(type(value), str):
        return str.__str__(value)  # type: ignore[arg-type]
    raise TypeError(f"{what} must be a str, not {type(value).__name__}")


def exact_int(value: object, what: str) -> int:
    if type(value) is int:
        return value
    if issubclass(type(value), int):
        return int.__int__(value)  # type: ignore[arg-type]
    raise TypeError(f"{what} must be an int, not {type(value).__name__}")


def class_module(cls: type) -> object:
    """``cls.__module__`` as ``type`` stores it (a class cannot redefine how it is read)."""
    return _CLASS_MODULE.__get__(cls)


def is_user_class(cls: type) -> bool:
    """Defined by code in the REPL (its module is the REPL's, as an exact str)."""
    module = class_module(cls)
    return type(module) is str and module == USER_MODULE


def is_user_object(obj: object) -> bool:
    """A class or function defined in the REPL, or an instance of such a class."""
    kind = type(obj)
    if issubclass(kind, type):
        return is_user_class(obj)  # type: ignore[arg-type]
    if kind is types.FunctionType:
        module = types.FunctionType.__dict__["__module__"].__get__(obj)
        return type(module) is str and module == USER_MODULE
    return is_user_class(kind)


# -- type() and x.__class__ ------------------------------------------------------------------------


def sandbox_type(*args: Any, **kwargs: Any) -> type:
    """One-argument ``type(x)``: the class of ``x``.

    The class of a class is a metaclass, which builds classes with any special
    method from a dict (the three-argument form). So ``type(cls)`` answers with
    this function for ordinary classes and refuses classes with another metaclass.
    """
    if len(args) != 1 or kwargs:
        raise PermissionError(
            "type(name, bases, dict) is not available in the sandbox; define a class with a class statement"
        )
    kind = type(args[0])
    if issubclass(kind, type):
        if kind is type:
            return sandbox_type  # type: ignore[return-value]
        name = _CLASS_NAME.__get__(args[0])
        raise PermissionError(f"the metaclass of {name!r} ({kind.__name__}) is not available in the sandbox")
    return kind


sandbox_type.__name__ = sandbox_type.__qualname__ = "type"


# -- attribute reads -------------------------------------------------------------------------------


def _refuse(name: str, reason: str) -> AttributeError:
    return AttributeError(f"attribute {name!r} is not accessible in the sandbox: {reason}")


def _read_exception_obj(obj: Any, name: str) -> Any:
    # AttributeError.obj and friends hand out what library code was working on (CVE-2024-47532);
    # super() of an exception subclass would read the same descriptor.
    if issubclass(type(obj), BaseException) or type(obj) is super:
        raise AttributeError(f"attribute {name!r} of exceptions is not accessible in the sandbox")
    return getattr(obj, name)


def _read_str_method(obj: Any, name: str) -> Any:
    if type(obj) is str:  # the common case, "...".format(...): no need to build the real method first
        return formatting.bound_method(obj, name, FORMATTER)
    return formatting.replace_str_method(getattr(obj, name), name, FORMATTER)


def _read_class(obj: Any, name: str) -> Any:
    return sandbox_type(obj)


def _read_super_special(obj: Any, name: str) -> Any:
    # super().__init__(...) and friends, for the user's own classes only: on anything else they
    # would re-initialise or expose the internals of library and sandbox objects.
    if type(obj) is not super:
        raise _refuse(name, "only super().<special method> of a class defined in the REPL may be read")
    owner = _SELF_CLASS.__get__(obj)
    if owner is None or not is_user_class(owner):
        raise _refuse(name, "only super().<special method> of a class defined in the REPL may be read")
    return getattr(obj, name)


_READERS: dict[str, Callable[[Any, str], Any]] = {
    "obj": _read_exception_obj,
    "format": _read_str_method,
    "format_map": _read_str_method,
    "__class__": _read_class,
    **{special: _read_super_special for special in SPECIAL_METHODS},
}
assert set(_READERS) == GUARDED_READS


def guarded_read(obj: Any, name: str) -> Any:
    """``obj.name`` for a literal name in ``GUARDED_READS`` (the compiled code passes an exact str)."""
    return _READERS[name](obj, name)


def safe_getattr(obj: Any, name: Any, default: Any = _MISSING) -> Any:
    """``getattr`` under the same rules as ``obj.name`` in code, on the name's real characters."""
    key = exact_str(name, "attribute name")
    refusal = attribute_refusal(key, runtime=True)
    if refusal:
        raise AttributeError(refusal)
    try:
        return guarded_read(obj, key) if key in _READERS else getattr(obj, key)
    except AttributeError:
        if default is _MISSING:
            raise
        return default


def safe_hasattr(obj: Any, name: Any) -> bool:
    """``hasattr`` for any name (``hasattr(x, '__iter__')`` is a common check): it hands out only a bool."""
    return builtins.hasattr(obj, exact_str(name, "attribute name"))


# -- attribute writes ------------------------------------------------------------------------------


def write_guard(obj: Any) -> Any:
    """``_write_``: attribute writes go to the user's own objects only.

    Modules (our proxies), classes that user code did not define, and builtin or
    library callables are refused so that nothing the worker itself relies on can
    be patched from the REPL.
    """
    if not is_user_object(obj):
        raise AttributeError(f"{type(obj).__name__!r} objects are read-only in the sandbox")
    return obj


# What str.format/format_map in code run through: attribute walks under safe_getattr's rules.
FORMATTER = formatting.SandboxFormatter(safe_getattr)
