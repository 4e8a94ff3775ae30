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
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from types import CodeType

from RestrictedPython.transformer import INSPECT_ATTRIBUTES, RestrictingNodeTransformer, copy_locations

from sandbox.protocol.names import is_private_name, name_refusal
from sandbox.protocol.names import is_user_name as is_user_name  # the one rule (the parent's snapshot check uses it)

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


class RestrictedCodeError(Exception):
    """Code was refused at compile time; ``errors`` lists each reason with its line."""

    def __init__(self, errors: list[str]):
        super().__init__("; ".join(errors))
        self.errors = errors


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


def _names_a_variable(node: ast.Call) -> bool:
    """``FINAL_VAR("name")``: one positional argument, a str literal."""
    return (
        isinstance(node.func, ast.Name)
        and node.func.id == "FINAL_VAR"
        and len(node.args) == 1
        and not node.keywords
        and isinstance(node.args[0], ast.Constant)
        and type(node.args[0].value) is str
    )


_NEW_SCOPES = (
    ast.FunctionDef,
    ast.AsyncFunctionDef,
    ast.Lambda,
    ast.ClassDef,
    ast.ListComp,
    ast.SetComp,
    ast.DictComp,
    ast.GeneratorExp,
)


def _class_scope_names(body: list[ast.stmt]) -> list[ast.Name]:
    """The names a class body evaluates or binds in the class's own namespace (not in its methods).

    An annotated name (``__call__: int``) is left out: with ``@dataclass`` it would be a field.
    """
    found, stack = [], [statement for statement in body if not isinstance(statement, _NEW_SCOPES)]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Name):
            found.append(node)
        children = [node.annotation, node.value] if isinstance(node, ast.AnnAssign) else ast.iter_child_nodes(node)
        stack.extend(child for child in children if child is not None and not isinstance(child, _NEW_SCOPES))
    return found


class SandboxTransformer(RestrictingNodeTransformer):
    """RestrictedPython's checks with native reads, iteration and unpacking (see module doc)."""

    def __init__(self) -> None:
        super().__init__()
        self.class_scope_specials: set[int] = set()
        """Name nodes of special methods in a class body (``__hash__ = None``, ``__radd__ = __add__``)."""
        self.classes: list[str] = []
        """The classes the visitor is inside, innermost last (for private name mangling)."""

    def mangled(self, name: str) -> str:
        """``name`` as CPython compiles it here: ``__x`` inside class ``A`` is ``_A__x`` (a private name)."""
        if self.classes and name.startswith("__") and not name.endswith("__"):
            owner = self.classes[-1].lstrip("_")
            if owner:
                return f"_{owner}{name}"
        return name

    def check_name(self, node: ast.AST, name: str | None, allow_magic_methods: bool = False) -> None:
        if name is None:
            return
        name = self.mangled(name)
        if allow_magic_methods and name in SPECIAL_METHODS and getattr(node, "col_offset", 0) != 0:
            return
        if id(node) in self.class_scope_specials:
            return
        if refusal := name_refusal(name):
            self.error(node, refusal)

    def check_import_names(self, node: ast.ImportFrom | ast.Import) -> ast.AST:
        # A module or imported name starting with "_" is an internal (``_thread``, ``_strptime``,
        # ``json._default_decoder``); the name it is bound to follows the variable rules.
        for alias in node.names:
            if any(part.startswith("_") for part in alias.name.split(".")):
                self.error(node, f'"{alias.name}" is an invalid name to import because it starts with "_"')
        return super().check_import_names(node)

    def visit_Name(self, node: ast.Name) -> ast.AST:
        if isinstance(node.ctx, ast.Load):
            self.used_names[node.id] = True
            if node.id == "print":  # a plain builtin here, not RestrictedPython's collector
                return node
            if node.id == "__name__":  # `if __name__ == "__main__":` runs, as in an interactive session
                constant = ast.Constant("__main__")
                copy_locations(constant, node)
                return constant
        self.check_name(node, node.id)
        return node

    def visit_Attribute(self, node: ast.Attribute) -> ast.AST:
        load = isinstance(node.ctx, ast.Load)
        guarded = load and node.attr in GUARDED_READS
        attr = self.mangled(node.attr)  # what CPython will read: self.__x in class A is self._A__x
        if is_private_name(attr) and not (load and attr in NAMEDTUPLE_API):
            node = self.node_contents_visit(node)
            guard = PRIVATE_READ_GUARD if load else PRIVATE_WRITE_GUARD
            call = ast.Call(func=ast.Name(guard, ast.Load()), args=[node.value, ast.Constant(attr)], keywords=[])
            if load:
                copy_locations(call, node)
                return call
            copy_locations(call, node.value)
            node.value = call
            return node
        if node.attr in SPECIAL_METHODS:
            if not load:
                self.error(node, f'"{node.attr}" is read-only in the sandbox (define it in the class body)')
        elif refusal := attribute_refusal(node.attr, read=load):
            self.error(node, refusal)
        node = self.node_contents_visit(node)
        if guarded:
            read = ast.Call(
                func=ast.Name(READ_GUARD, ast.Load()), args=[node.value, ast.Constant(node.attr)], keywords=[]
            )
            copy_locations(read, node)
            return read
        if load:
            return node
        guard = ast.Call(func=ast.Name(WRITE_GUARD, ast.Load()), args=[node.value], keywords=[])
        copy_locations(guard, node.value)
        node.value = guard
        return node

    def visit_Subscript(self, node: ast.Subscript) -> ast.AST:
        return self.node_contents_visit(node)

    def guard_iter(self, node):  # type: ignore[no-untyped-def]
        return self.node_contents_visit(node)

    def visit_Assign(self, node: ast.Assign) -> ast.AST:
        return self.node_contents_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> ast.AST:
        # An attribute target was already wrapped in _write_ by visit_Attribute.
        return self.node_contents_visit(node)

    def visit_With(self, node: ast.With) -> ast.AST:
        return self.node_contents_visit(node)

    def visit_Call(self, node: ast.Call) -> ast.AST:
        if isinstance(node.func, ast.Name) and node.func.id in ("exec", "eval"):
            self.error(node, f"{node.func.id}() calls are not allowed")
        node = self.node_contents_visit(node)
        if _names_a_variable(node):
            # FINAL_VAR("answer") written with the name in quotes: the variable must exist (a typo is
            # an error, not the answer "answr"). FINAL_VAR(answer) passes a value (see sandbox.worker.repl).
            node.func = ast.Name(FINAL_VAR_BY_NAME, ast.Load())
            copy_locations(node.func, node)
        return node

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        self.check_name(node, node.name, allow_magic_methods=True)
        self.check_function_argument_names(node)
        return self.node_contents_visit(node)

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.AST:
        self.check_name(node, node.name)
        if any(keyword.arg == "metaclass" for keyword in node.keywords):
            self.error(node, 'the keyword argument "metaclass" is not allowed')
        # A special method may be bound in the class body by assignment as well as by def: its
        # name lives in the class's namespace only (none is a global or builtin code could reach).
        self.class_scope_specials.update(
            id(name) for name in _class_scope_names(node.body) if name.id in SPECIAL_METHODS
        )
        self.classes.append(node.name)
        try:
            return self.node_contents_visit(node)
        finally:
            self.classes.pop()

    def visit_AnnAssign(self, node: ast.AnnAssign) -> ast.AST:
        return self.node_contents_visit(node)

    def visit_Nonlocal(self, node: ast.Nonlocal) -> ast.AST:
        for name in node.names:
            self.check_name(node, name)
        return node

    def visit_Module(self, node: ast.Module) -> ast.AST:
        return self.node_contents_visit(node)


@dataclass(frozen=True)
class CompiledCell:
    code: CodeType
    filename: str
    source: str


def _echo_last_expression(tree: ast.Module) -> None:
    """Show the value of a trailing expression, as an interactive interpreter does."""
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = tree.body[-1]
        call = ast.Call(func=ast.Name(ECHO_HOOK, ast.Load()), args=[last.value], keywords=[])
        copy_locations(call, last.value)
        last.value = call


def compile_cell(source: str, filename: str) -> CompiledCell:
    """Parse, check and compile one cell of user code.

    Raises ``SyntaxError`` for code that does not parse, ``RestrictedCodeError``
    for code the policy refuses, and ``RecursionError``/``MemoryError``
    (re-raised as ``RestrictedCodeError``) for expressions too deep or too large
    to compile.
    """
    try:
        tree = ast.parse(source, filename=filename, mode="exec")
        transformer = SandboxTransformer()
        tree = transformer.visit(tree)
        if transformer.errors:
            raise RestrictedCodeError(transformer.errors)
        _echo_last_expression(tree)
        ast.fix_missing_locations(tree)
        code = compile(tree, filename, "exec", dont_inherit=True)
    except (RecursionError, MemoryError) as exc:
        kind = "nested too deeply" if isinstance(exc, RecursionError) else "too large"
        raise RestrictedCodeError([f"the code is {kind} to compile; split it into smaller statements"]) from None
    except ValueError as exc:  # e.g. source with NUL bytes
        raise SyntaxError(str(exc)) from None
    return CompiledCell(code=code, filename=filename, source=source)
