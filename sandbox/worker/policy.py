"""What code may say: RestrictedPython's checks, with guards only where security needs them.

RestrictedPython rejects at compile time every name and attribute that starts
with ``_`` (so ``f.__globals__``, ``e.__traceback__``, ``x.__bases__`` never
compile), ``exec``/``eval`` calls and a few risky statements. Its default
transformer also routes every attribute read, item access, iteration and
unpacking through Python-level guard functions, which costs 2-4x on the tight
loops a root model writes over a corpus.

This policy keeps every compile-time check and drops the runtime guards whose
only job is Zope's object-level permissions, which this sandbox does not use:

* attribute *reads* with a literal name are native once the name passes the
  checks below; what an object hands out is bounded instead by what is put in
  the namespace (read-only module proxies with explicit names, helpers that
  expose nothing but their call);
* item access, iteration and unpacking are native;
* attribute *writes* still go through ``_write_`` so modules, helpers and
  library classes cannot be patched;
* reads of the few names in ``GUARDED_READS`` go through ``_read_guarded_``
  (``sandbox.worker.guards``), which decides on the object: ``e.obj`` is refused on
  exceptions, ``s.format``/``s.format_map`` of a str hand out the sandbox's
  formatter, ``x.__class__`` is ``type(x)``, ``e.__cause__``/``e.__context__``
  are read on exceptions only, ``obj.__dict__`` on the REPL's own instances
  and functions only, and a special method a REPL class may define
  (``super().__init__``, ``self.__repr__``, ``Base.__init__(self)``) only on the
  REPL's own classes and instances: read from a class, it applies only to
  instances of the REPL's classes.

Four dunders are plain read-only data on classes, functions and modules and may
be read anywhere: ``__name__``, ``__qualname__``, ``__doc__``, ``__module__``; so
may the named-tuple API (``_asdict``, ``_replace``, ``_make``, ``_fields``).
The global ``__name__`` reads as ``"__main__"``, as in an interactive session.
Names that reach frames or code objects (``gi_frame``, ``f_back``, ``mro``, ...)
are refused wherever they appear. Guarded names cost a call only where they
appear in the code; every other literal attribute read stays native.

Private names (one leading underscore, as ordinary Python uses them):

* a *variable, function, argument or class* may be named ``_x`` unless the name
  has the form the sandbox and RestrictedPython keep for themselves: ``_x_``
  (``_write_``, ``_getattr_``, every guard this module injects), ``_print`` and
  ``_tmp<n>``. Double-underscore names stay refused, so nothing the sandbox puts
  in the namespace (``__builtins__``, ``__rlm_echo__``) can be named, shadowed or
  read;
* an *attribute* ``obj._x`` is read through ``_read_private_`` and written
  through ``_write_private_``: only on the REPL's own classes, their instances
  and its functions, and only where the name is the REPL's own (defined by a
  class written in the REPL, or found on the instance itself), never where a
  library class defines it (``random.Random._randbelow`` on a subclass). So
  ``self._cache`` costs one guard call; ``self.cache`` stays native. Inside a
  class, ``self.__x`` and ``__x`` are checked as CPython compiles them, mangled
  to the private name ``_Class__x``.

This module holds the rules (which names, which attributes, which hooks); the
compiler that applies them to a cell's syntax tree is :mod:`sandbox.worker.compiler`,
and the guards that apply them at run time are :mod:`sandbox.worker.guards` and
:mod:`sandbox.worker.ownership`, which import the rules from here and nothing else
of the compiler (nor RestrictedPython's transformer).
"""

from __future__ import annotations

from RestrictedPython.transformer import INSPECT_ATTRIBUTES

from sandbox.protocol.names import is_private_name
from sandbox.protocol.names import is_user_name as is_user_name  # the one rule (the parent's snapshot check uses it)
from sandbox.protocol.names import name_refusal as name_refusal

# The module name of everything code in the REPL defines (classes, functions); the write guard and
# the super() guard use it to tell the user's own objects from the sandbox's and the libraries'.
USER_MODULE = "repl"

# Attribute names refused on every object, in addition to anything starting with "_".
# mro() hands out the class hierarchy.
BLOCKED_ATTRIBUTES = frozenset(INSPECT_ATTRIBUTES) | {
    "mro",
    "f_trace_lines",
    "f_trace_opcodes",
    "tb_lasti",
    "gi_running",
    "cr_running",
}

# Dunders that are plain data wherever Python defines them (a str or None on classes, functions and
# modules; whatever the user stored on their own objects): readable, never writable.
READ_ONLY_DUNDERS = frozenset({"__name__", "__qualname__", "__doc__", "__module__"})

# The public API of named tuples, spelled with a leading underscore so as not to clash with field
# names: read natively on any object (methods and tuples of names; nothing else in reach defines
# them), written only like any private name (on the REPL's own classes).
NAMEDTUPLE_API = frozenset({"_asdict", "_replace", "_make", "_fields", "_field_defaults"})

# Special methods a class written in the REPL may define (with def, or by assignment in the class
# body), and read on its own classes and instances (see sandbox.worker.guards._read_special). Defining
# them only affects the user's own objects. __index__, __int__, __float__,
# __del__, __getattr__/__getattribute__, __reduce__ and descriptors stay out: each lets an object
# run code inside C operations or library code that does not expect it.
SPECIAL_METHODS = frozenset(
    {
        "__init__",
        "__post_init__",
        "__repr__",
        "__str__",
        "__format__",
        "__len__",
        "__iter__",
        "__next__",
        "__reversed__",
        "__contains__",
        "__getitem__",
        "__setitem__",
        "__delitem__",
        "__missing__",
        "__eq__",
        "__ne__",
        "__lt__",
        "__le__",
        "__gt__",
        "__ge__",
        "__hash__",
        "__bool__",
        "__add__",
        "__sub__",
        "__mul__",
        "__truediv__",
        "__floordiv__",
        "__mod__",
        "__pow__",
        "__and__",
        "__or__",
        "__xor__",
        "__neg__",
        "__pos__",
        "__abs__",
        "__radd__",
        "__rsub__",
        "__rmul__",
        "__rtruediv__",
        "__iadd__",
        "__isub__",
        "__imul__",
        "__call__",
        "__enter__",
        "__exit__",
    }
)

# The exception an exception was raised from or while handling (an exception code could have
# caught itself, under the same rules: ``obj`` guarded, ``__traceback__`` refused), whether it is
# shown, and the notes added to it. Read on exceptions only, never written.
EXCEPTION_CHAIN = frozenset({"__cause__", "__context__", "__suppress_context__", "__notes__"})

# ``obj.__dict__``: the live attribute dict of an instance or function written in the REPL (what
# ``self.__dict__.update(kw)`` needs); refused on everything else, classes included. Never assigned.
INSTANCE_DICT = "__dict__"

# Attribute names whose reads go through READ_GUARD (see the module doc and sandbox.worker.guards).
# ``obj`` is harmless on most objects, but on an exception it hands out what library code was
# working on (AttributeError.obj, the CVE-2024-47532 route).
GUARDED_READS = (
    frozenset({"obj", "format", "format_map", "__class__", INSTANCE_DICT}) | EXCEPTION_CHAIN | SPECIAL_METHODS
)

# Private names a library puts into classes that code defines (ABCMeta's cache on a subclass of
# typing.Mapping, fractions.Fraction, ...): found in the REPL's own class, but not the REPL's.
LIBRARY_PRIVATE_NAMES = frozenset({"_abc_impl"})

# The names compiled code calls, and the hooks the REPL injects. Each has a form user code can
# never name (``_x_`` or a dunder), so none can be read, shadowed or redefined from the REPL.
WRITE_GUARD = "_write_"
READ_GUARD = "_read_guarded_"
PRIVATE_READ_GUARD = "_read_private_"
PRIVATE_WRITE_GUARD = "_write_private_"
ECHO_HOOK = "__rlm_echo__"
FINAL_VAR_BY_NAME = "__rlm_final_var__"
INJECTED_NAMES = (WRITE_GUARD, READ_GUARD, PRIVATE_READ_GUARD, PRIVATE_WRITE_GUARD, ECHO_HOOK, FINAL_VAR_BY_NAME)

_READABLE_HINT = (
    "readable dunders: __name__, __qualname__, __doc__, __module__, __class__; __dict__ of the REPL's own objects"
)


def attribute_refusal(name: str, *, read: bool = True, runtime: bool = False) -> str | None:
    """Why ``obj.<name>`` is refused, or None. ``name`` must be an exact str (see sandbox.worker.guards).

    A private name (``_x``) passes here: whether the object is the REPL's own is
    decided at run time, by the private guards in ``sandbox.worker.guards``.
    """
    if name in READ_ONLY_DUNDERS or name in ("__class__", INSTANCE_DICT) or name in EXCEPTION_CHAIN:
        return None if read else f'"{name}" is read-only in the sandbox'
    if name in SPECIAL_METHODS and runtime:  # decided on the object by the read guard
        return None if read else f'"{name}" is read-only in the sandbox'
    if name.endswith("__roles__"):
        return f'"{name}" is not accessible in the sandbox'
    if is_private_name(name):
        return None
    if name.startswith("_") and name != "_":
        where = "an invalid attribute name" if not runtime else "not accessible in the sandbox"
        return f'"{name}" is {where} because it starts with "_" ({_READABLE_HINT})'
    if name in BLOCKED_ATTRIBUTES:
        return f'"{name}" is not accessible in the sandbox'
    return None
