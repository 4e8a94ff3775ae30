"""Which objects are the REPL's own, and the guards that let code act on those only.

Code may write attributes, read and write private attributes (``self._count``),
read special methods (``Base.__init__``, ``self.__repr__``) and ``__dict__`` only
on what the REPL itself defined: its classes, their instances, its functions. A
class is the REPL's when ``type`` says its module is the REPL's (read through
``type``'s own descriptor: a class cannot redefine how it is read, and code can
never write ``__module__``). A private name must also be the REPL's own: the
first class of the MRO that defines it must be one the REPL wrote, so a
library's private method, slot or planted attribute stays out of reach even on
the REPL's subclass of that library class. Like every guard (see
:mod:`sandbox.worker.guards`), these never call a method of the object they are given.
"""

from __future__ import annotations

import types
from typing import Any

from sandbox.worker.policy import LIBRARY_PRIVATE_NAMES, USER_MODULE

_CLASS_MODULE = type.__dict__["__module__"]
_CLASS_NAME = type.__dict__["__name__"]
_CLASS_DICT = type.__dict__["__dict__"]
_CLASS_MRO = type.__dict__["__mro__"]
_FUNCTION_DICT = types.FunctionType.__dict__["__dict__"]
_FUNCTION_MODULE = types.FunctionType.__dict__["__module__"]
_SELF_CLASS = super.__dict__["__self_class__"]
_THIS_CLASS = super.__dict__["__thisclass__"]


def class_name(cls: type) -> str:
    """``cls.__name__`` as ``type`` stores it."""
    return _CLASS_NAME.__get__(cls)  # type: ignore[no-any-return]


def not_accessible(name: str, reason: str) -> AttributeError:
    return AttributeError(f"attribute {name!r} is not accessible in the sandbox: {reason}")


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
        module = _FUNCTION_MODULE.__get__(obj)
        return type(module) is str and module == USER_MODULE
    return is_user_class(kind)


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
# walk of the MRO, and their instances are writable. A class's MRO and module never change (code
# cannot assign ``__bases__`` or ``__module__``), so neither does the answer. Keyed by id (each
# entry holds its class, so the id stays its own): a lookup never asks a class for its hash or
# equality. Cleared when it outgrows its bound (code can create classes in a loop).
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
    # The cache lookup inline first: this runs for every self._x in code.
    if _OWN_MRO.get(id(type(obj))) is type(obj) or _all_own(type(obj)):
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


# -- attribute writes (obj.x = value) --------------------------------------------------------------


def write_guard(obj: Any) -> Any:
    """``_write_``: attribute writes go to the user's own objects only.

    Modules (our proxies), classes that user code did not define, and builtin or
    library callables are refused so that nothing the worker itself relies on can
    be patched from the REPL.
    """
    if _OWN_MRO.get(id(type(obj))) is type(obj) or _all_own(type(obj)) or is_user_object(obj):
        return obj
    raise AttributeError(f"{type(obj).__name__!r} objects are read-only in the sandbox")


# -- special methods and __dict__ ------------------------------------------------------------------


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


def read_special(obj: Any, name: str) -> Any:
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
            raise not_accessible(name, _SPECIAL_HINT)
        return super.__getattribute__(obj, name)
    if issubclass(kind, type):
        if _defined_by(_CLASS_MRO.__get__(obj), name) is None:
            raise AttributeError(f"type object {_CLASS_NAME.__get__(obj)!r} has no attribute {name!r}")
        return SpecialMethod(obj, name)
    if not is_user_class(kind):
        raise not_accessible(name, _SPECIAL_HINT)
    return object.__getattribute__(obj, name)


def read_instance_dict(obj: Any, name: str) -> Any:
    # The attributes of the REPL's own instance or function: what vars(obj) lists, live. Never a
    # class's namespace (descriptors, generated methods) nor anything of a module or library object.
    kind = type(obj)
    if kind is types.FunctionType and is_user_object(obj):
        return _FUNCTION_DICT.__get__(obj)
    if issubclass(kind, type) or not is_user_class(kind):
        raise not_accessible(name, "only the __dict__ of instances and functions defined in the REPL may be read")
    return object.__getattribute__(obj, name)
