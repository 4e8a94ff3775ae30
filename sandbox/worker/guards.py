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
import typing
from collections.abc import Callable
from typing import Any

from sandbox.worker import formatting
from sandbox.worker.ownership import class_name, read_instance_dict, read_private, read_special
from sandbox.worker.policy import (
    EXCEPTION_CHAIN,
    GUARDED_READS,
    NAMEDTUPLE_API,
    SPECIAL_METHODS,
    attribute_refusal,
    is_private_name,
)

_MISSING = object()
# What ``type[int]`` and ``type | None`` give in the sandbox: typing's alias of ``type`` refuses to be
# called (``type[int]`` is a types.GenericAlias that calls the real ``type``: the three-argument form).
_UNCALLABLE_TYPE = typing.Type  # noqa: UP006
_UNION = typing.Union


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


# -- type() and x.__class__ ------------------------------------------------------------------------


class SandboxType:
    """What code sees as ``type``: the class of an object, a class in ``isinstance``, an annotation.

    One-argument ``type(x)`` is the class of ``x``. The class of a class is a
    metaclass, which builds classes with any special method from a dict (the
    three-argument form), so ``type(cls)`` answers with this object for ordinary
    classes and refuses classes with another metaclass. ``isinstance(x, type)``
    and ``issubclass(c, type)`` answer as for the real ``type``; ``type[int]`` is
    ``typing.Type[int]``, which cannot be called. Nothing else is exposed: the
    real ``type`` is never handed out.
    """

    __slots__ = ()
    __module__ = "builtins"
    __name__ = __qualname__ = "type"
    __doc__ = type.__doc__

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if len(args) != 1 or kwargs:
            raise PermissionError(
                "type(name, bases, dict) is not available in the sandbox; define a class with a class statement"
            )
        obj = args[0]
        kind = type(obj)
        if issubclass(kind, type):
            if kind is type:
                return self
            name = class_name(obj)
            raise PermissionError(f"the metaclass of {name!r} ({kind.__name__}) is not available in the sandbox")
        return self if obj is self else kind

    def __instancecheck__(self, obj: Any) -> bool:
        # The real class of obj, never obj.__class__ (which isinstance would consult).
        return obj is self or issubclass(type(obj), type)

    def __subclasscheck__(self, cls: Any) -> bool:
        if cls is self:
            return True
        if not issubclass(type(cls), type):
            raise TypeError("issubclass() arg 1 must be a class")
        return issubclass(cls, type)

    def __getitem__(self, item: Any) -> Any:
        return _UNCALLABLE_TYPE[item]

    def __or__(self, other: Any) -> Any:
        return _UNION[_UNCALLABLE_TYPE, other]

    def __ror__(self, other: Any) -> Any:
        return _UNION[other, _UNCALLABLE_TYPE]

    def __reduce_ex__(self, protocol: Any) -> Any:
        raise TypeError("type cannot be copied or pickled in the sandbox")

    def __repr__(self) -> str:
        return "<class 'type'>"


sandbox_type = SandboxType()


# -- attribute reads -------------------------------------------------------------------------------


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


def _read_exception_chain(obj: Any, name: str) -> Any:
    # What an exception was raised from or during (another exception, under the same rules), and its
    # notes; read through BaseException's own descriptors and the exception's own attributes.
    if not issubclass(type(obj), BaseException):
        raise AttributeError(f"{type(obj).__name__!r} object has no attribute {name!r}")
    descriptor = BaseException.__dict__.get(name)
    return object.__getattribute__(obj, name) if descriptor is None else descriptor.__get__(obj)


_READERS: dict[str, Callable[[Any, str], Any]] = {
    "obj": _read_exception_obj,
    "format": _read_str_method,
    "format_map": _read_str_method,
    "__class__": _read_class,
    "__dict__": read_instance_dict,
    **{chain: _read_exception_chain for chain in EXCEPTION_CHAIN},
    **{special: read_special for special in SPECIAL_METHODS},
}
assert set(_READERS) == GUARDED_READS


def guarded_read(obj: Any, name: str) -> Any:
    """``obj.name`` for a literal name in ``GUARDED_READS`` (the compiled code passes an exact str)."""
    return _READERS[name](obj, name)


def _read_private_name(obj: Any, name: str) -> Any:
    return getattr(obj, name) if name in NAMEDTUPLE_API else read_private(obj, name)


def safe_getattr(obj: Any, name: Any, default: Any = _MISSING) -> Any:
    """``getattr`` under the same rules as ``obj.name`` in code, on the name's real characters."""
    key = exact_str(name, "attribute name")
    refusal = attribute_refusal(key, runtime=True)
    if refusal:
        raise AttributeError(refusal)
    try:
        if key in _READERS:
            return guarded_read(obj, key)
        return _read_private_name(obj, key) if is_private_name(key) else getattr(obj, key)
    except AttributeError:
        if default is _MISSING:
            raise
        return default


def safe_hasattr(obj: Any, name: Any) -> bool:
    """``hasattr`` for any name (``hasattr(x, '__iter__')`` is a common check): it hands out only a bool."""
    return builtins.hasattr(obj, exact_str(name, "attribute name"))


# What str.format/format_map in code run through: attribute walks under safe_getattr's rules.
FORMATTER = formatting.SandboxFormatter(safe_getattr)
