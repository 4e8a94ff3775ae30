"""Which names user code may define: the one rule, shared by the worker's policy and the parent's snapshot check.

:mod:`sandbox.worker.policy` refuses any other name at compile time. A snapshot
(:mod:`sandbox.worker.snapshot`) saves and restores exactly these names, and the parent
(:mod:`sandbox.snapshot_check`) checks a snapshot's names with this same function. It
lives in the protocol because both processes must agree on it, and so the parent never
imports the worker's code (or RestrictedPython) to apply it.
"""

from __future__ import annotations

import re

# Names RestrictedPython's own transformer generates or reserves.
_RESTRICTED_PYTHON_NAMES = re.compile(r"_print|_tmp[0-9]+")


def is_private_name(name: str) -> bool:
    """``_x``: one leading underscore, then not another (``__x`` and dunders are not private names)."""
    return len(name) > 1 and name[0] == "_" and name[1] != "_"


def name_refusal(name: str) -> str | None:
    """Why code may not use ``name`` as a variable, function, argument or class name; None if it may."""
    if name == "_" or not name.startswith("_"):
        if name.endswith("__roles__"):
            return f'"{name}" is an invalid variable name because it ends with "__roles__"'
        return None
    if not is_private_name(name):
        return f'"{name}" is an invalid variable name because it starts with "__"'
    if name.endswith("_") or _RESTRICTED_PYTHON_NAMES.fullmatch(name):
        return f'"{name}" is an invalid variable name because names like _name_ are reserved for the sandbox'
    return None


def is_user_name(name: object) -> bool:
    """A name user code can define (and so may see in ``globals()``, ``vars()``, ``FINAL_VAR``)."""
    return type(name) is str and name_refusal(name) is None
