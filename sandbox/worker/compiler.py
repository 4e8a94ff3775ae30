"""The compiler of a cell: RestrictedPython's transformer, with the policy of :mod:`sandbox.worker.policy`.

Apart from the policy because the rules (which names and attributes code may use, the
hooks it calls) are read by the run-time guards too, while this module is the one that
walks the syntax tree: it refuses what the rules refuse, at compile time, and rewrites
the reads and writes the rules guard into calls of the injected hooks. What it keeps and
drops of RestrictedPython's own transformer, and why, is said in the policy's docstring.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from types import CodeType

from RestrictedPython.transformer import RestrictingNodeTransformer, copy_locations

from sandbox.protocol.names import is_private_name, name_refusal
from sandbox.worker.policy import (
    ECHO_HOOK,
    FINAL_VAR_BY_NAME,
    GUARDED_READS,
    NAMEDTUPLE_API,
    PRIVATE_READ_GUARD,
    PRIVATE_WRITE_GUARD,
    READ_GUARD,
    SPECIAL_METHODS,
    WRITE_GUARD,
    attribute_refusal,
)


class RestrictedCodeError(Exception):
    """Code was refused at compile time; ``errors`` lists each reason with its line."""

    def __init__(self, errors: list[str]):
        super().__init__("; ".join(errors))
        self.errors = errors


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
