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
import typing
from collections.abc import Callable
from typing import Any

from sandbox import formatting
from sandbox.policy import (
    EXCEPTION_CHAIN,
    GUARDED_READS,
    LIBRARY_PRIVATE_NAMES,
    NAMEDTUPLE_API,
    SPECIAL_METHODS,
    USER_MODULE,
    attribute_refusal,
    is_private_name,
)

_MISSING = object()
_CLASS_MODULE = type.__dict__["__module__"]
_CLASS_NAME = type.__dict__["__name__"]
_CLASS_DICT = type.__dict__["__dict__"]
_CLASS_MRO = type.__dict__["__mro__"]
_FUNCTION_DICT = types.FunctionType.__dict__["__dict__"]
_SELF_CLASS = super.__dict__["__self_class__"]
_THIS_CLASS = super.__dict__["__thisclass__"]
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
            name = _CLASS_NAME.__get__(obj)
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


def _read_exception_chain(obj: Any, name: str) -> Any:
    # What an exception was raised from or during (another exception, under the same rules), and its
    # notes; read through BaseException's own descriptors and the exception's own attributes.
    if not issubclass(type(obj), BaseException):
        raise AttributeError(f"{type(obj).__name__!r} object has no attribute {name!r}")
    descriptor = BaseException.__dict__.get(name)
    return object.__getattribute__(obj, name) if descriptor is None else descriptor.__get__(obj)


def _read_instance_dict(obj: Any, name: str) -> Any:
    # The attributes of the REPL's own instance or function: what vars(obj) lists, live. Never a
    # class's namespace (descriptors, generated methods) nor anything of a module or library object.
    kind = type(obj)
    if kind is types.FunctionType and is_user_object(obj):
        return _FUNCTION_DICT.__get__(obj)
    if issubclass(kind, type) or not is_user_class(kind):
        raise _refuse(name, "only the __dict__ of instances and functions defined in the REPL may be read")
    return object.__getattribute__(obj, name)


_SPECIAL_HINT = "special methods are readable only on classes defined in the REPL and their instances"


class SpecialMethod:
    """``Base.__init__``, ``Exception.__init__``, ``dict.__setitem__`` read from a class: applies to the REPL's own.

    Unbound, a special method would re-initialise or change any object it is handed:
    a library's, the sandbox's own helpers, or (through the code ``dataclass``
    generates, which the sandbox did not compile) write attributes past every
    guard. So it is called only with an instance of a class written in the REPL
    that is an instance of the class it was read from, exactly what
    ``super().__init__`` allows. Exposes nothing but its call.
    """

    __slots__ = ("_cls", "_name")

    def __init__(self, cls: type, name: str):
        self._cls = cls
        self._name = name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        cls, name = self._cls, self._name
        # The real MRO, by identity: never a metaclass's __subclasscheck__ (ABC registrations).
        if not args or not is_user_class(type(args[0])) or not any(k is cls for k in _CLASS_MRO.__get__(type(args[0]))):
            given = type(args[0]).__name__ if args else "nothing"
            raise TypeError(
                f"{_CLASS_NAME.__get__(cls)}.{name}() applies in the sandbox only to instances of classes "
                f"defined in the REPL that derive from {_CLASS_NAME.__get__(cls)!r}, not to {given}"
            )
        return type.__getattribute__(cls, name)(*args, **kwargs)

    def __reduce_ex__(self, protocol: Any) -> Any:
        raise TypeError("special methods cannot be copied or pickled in the sandbox")

    def __repr__(self) -> str:
        return f"<method {self._name!r} of {_CLASS_NAME.__get__(self._cls)!r} objects>"


def _read_special(obj: Any, name: str) -> Any:
    """``super().__init__``, ``self.__repr__``, ``Base.__init__``: the special methods of the REPL's own objects.

    Bound to an instance of a class written in the REPL (through super() or not), a
    special method acts on the user's own object; read from a class it is a
    :class:`SpecialMethod`. On library and sandbox objects it is refused: it would
    re-initialise or expose their internals.
    """
    kind = type(obj)
    if kind is super:
        owner = _SELF_CLASS.__get__(obj)
        if owner is None or not is_user_class(owner):
            raise _refuse(name, _SPECIAL_HINT)
        return super.__getattribute__(obj, name)
    if issubclass(kind, type):
        if _defined_by(_CLASS_MRO.__get__(obj), name) is None:
            raise AttributeError(f"type object {_CLASS_NAME.__get__(obj)!r} has no attribute {name!r}")
        return SpecialMethod(obj, name)
    if not is_user_class(kind):
        raise _refuse(name, _SPECIAL_HINT)
    return object.__getattribute__(obj, name)


_READERS: dict[str, Callable[[Any, str], Any]] = {
    "obj": _read_exception_obj,
    "format": _read_str_method,
    "format_map": _read_str_method,
    "__class__": _read_class,
    "__dict__": _read_instance_dict,
    **{chain: _read_exception_chain for chain in EXCEPTION_CHAIN},
    **{special: _read_special for special in SPECIAL_METHODS},
}
assert set(_READERS) == GUARDED_READS


def guarded_read(obj: Any, name: str) -> Any:
    """``obj.name`` for a literal name in ``GUARDED_READS`` (the compiled code passes an exact str)."""
    return _READERS[name](obj, name)


# -- private attributes (obj._x) --------------------------------------------------------------------


def _defined_by(mro: tuple[type, ...], name: str) -> type | None:
    """The first class of ``mro`` whose own namespace holds ``name`` (read through ``type``'s descriptor)."""
    for klass in mro:
        if name in _CLASS_DICT.__get__(klass):
            return klass
    return None


def _private_refusal(obj: Any, name: str) -> AttributeError:
    return AttributeError(
        f"attribute {name!r} of {type(obj).__name__!r} objects is not accessible in the sandbox: "
        'names starting with "_" are readable and writable only on classes, instances and functions '
        "defined in the REPL, where the REPL's own code defined them"
    )


def _private_owner(obj: Any, name: str) -> tuple[tuple[type, ...], bool]:
    """Where ``obj._x`` is looked up (an MRO), and whether ``obj`` is a class; refuses foreign objects.

    ``obj`` must be a class written in the REPL, an instance of one, or a function
    written in the REPL; and ``name`` must not be defined first by a class that the
    REPL did not write (a library's private method on a subclass) or be one a
    library plants in classes (``_abc_impl``).
    """
    if name in LIBRARY_PRIVATE_NAMES:
        raise _private_refusal(obj, name)
    kind = type(obj)
    if issubclass(kind, type):
        if not is_user_class(obj):
            raise _private_refusal(obj, name)
        mro, is_class = _CLASS_MRO.__get__(obj), True
    elif kind is types.FunctionType:
        if not is_user_object(obj):
            raise _private_refusal(obj, name)
        return (), False
    elif is_user_class(kind):
        mro, is_class = _CLASS_MRO.__get__(kind), False
    else:
        raise _private_refusal(obj, name)
    definer = _defined_by(mro, name)
    if definer is not None and not is_user_class(definer):
        raise _private_refusal(obj, name)
    if is_class and definer is None:
        raise AttributeError(f"type object {_CLASS_NAME.__get__(obj)!r} has no attribute {name!r}")
    return mro, is_class


# Classes written in the REPL whose whole MRO (but ``object``, which defines no private name) was
# written there too: every private name of their instances is the REPL's own, whatever the class
# namespaces hold (no library planted anything there), so the common ``self._count += 1`` needs no
# walk of the MRO, and their instances are writable. A class's MRO and
# module never change (code cannot assign ``__bases__`` or ``__module__``), so neither does the
# answer; the cache is cleared when it grows past its bound (code can create classes in a loop).
# Keyed by id (the entry holds the class, so the id stays its own): a lookup never asks a class for
# its hash or equality.
_OWN_MRO: dict[int, type] = {}
_OWN_MRO_LIMIT = 4096


def _all_own(kind: type) -> bool:
    if _OWN_MRO.get(id(kind)) is kind:
        return True
    mro = _CLASS_MRO.__get__(kind)
    own = (
        not issubclass(kind, type)
        and is_user_class(kind)
        and mro[-1] is object
        and all(is_user_class(klass) for klass in mro[:-1])
    )
    if own:
        if len(_OWN_MRO) >= _OWN_MRO_LIMIT:
            _OWN_MRO.clear()
        _OWN_MRO[id(kind)] = kind
    return own


def read_private(obj: Any, name: str) -> Any:
    """``_read_private_``: ``obj._x`` in code (``name`` is the compiled constant, an exact str)."""
    if _OWN_MRO.get(id(type(obj))) is type(obj) or _all_own(type(obj)):  # the dict lookup first: this is a hot path
        return getattr(obj, name)  # no class of the MRO can define __getattr__ or __getattribute__
    if type(obj) is super:
        return _read_super_private(obj, name)
    if type(obj) is types.FunctionType:
        _private_owner(obj, name)
        namespace = _FUNCTION_DICT.__get__(obj)
        if name in namespace:
            return namespace[name]
        raise AttributeError(f"'function' object has no attribute {name!r}")
    _, is_class = _private_owner(obj, name)
    # The generic lookups: the class's own definition or the instance's attribute, never a
    # library's __getattr__/__getattribute__ (code cannot define either).
    return type.__getattribute__(obj, name) if is_class else object.__getattribute__(obj, name)


def _read_super_private(obj: Any, name: str) -> Any:
    # super()._helper(): the REPL's own class, and the next definition after it is the REPL's too.
    self_class = _SELF_CLASS.__get__(obj)
    if self_class is None or name in LIBRARY_PRIVATE_NAMES or not is_user_class(self_class):
        raise _private_refusal(obj, name)
    mro = _CLASS_MRO.__get__(self_class)
    this_class = _THIS_CLASS.__get__(obj)
    following = mro[mro.index(this_class) + 1 :] if this_class in mro else ()
    definer = _defined_by(following, name)
    if definer is None:
        raise AttributeError(f"'super' object has no attribute {name!r}")
    if not is_user_class(definer):
        raise _private_refusal(obj, name)
    return super.__getattribute__(obj, name)


def write_private(obj: Any, name: str) -> Any:
    """``_write_private_``: ``obj._x = value`` and ``del obj._x`` in code; returns ``obj``."""
    if _OWN_MRO.get(id(type(obj))) is type(obj) or _all_own(type(obj)):
        return obj
    if issubclass(type(obj), type) and is_user_class(obj) and name not in LIBRARY_PRIVATE_NAMES:
        # A new class attribute is fine; one a library class defines first is not (see _private_owner).
        definer = _defined_by(_CLASS_MRO.__get__(obj), name)
        if definer is None or is_user_class(definer):
            return obj
        raise _private_refusal(obj, name)
    _private_owner(obj, name)
    return obj


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


# -- attribute writes ------------------------------------------------------------------------------


def write_guard(obj: Any) -> Any:
    """``_write_``: attribute writes go to the user's own objects only.

    Modules (our proxies), classes that user code did not define, and builtin or
    library callables are refused so that nothing the worker itself relies on can
    be patched from the REPL.
    """
    if _OWN_MRO.get(id(type(obj))) is type(obj) or _all_own(type(obj)) or is_user_object(obj):
        return obj
    raise AttributeError(f"{type(obj).__name__!r} objects are read-only in the sandbox")


# What str.format/format_map in code run through: attribute walks under safe_getattr's rules.
FORMATTER = formatting.SandboxFormatter(safe_getattr)
