"""Naming why a cell behaved differently in the sandbox: which construct the policy refused.

The sandbox says why it refused something in its error messages; this module
turns those messages into short, stable cause names (``builtin type()``,
``attribute .format``, ``import sys``...) so refusals can be counted and ranked.
It reads the message only, so it works for any version of the policy; an
unknown message falls back to its error type and first words.
"""

from __future__ import annotations

import builtins
import re
from dataclasses import dataclass

PYTHON_BUILTINS = frozenset(dir(builtins))


@dataclass(frozen=True)
class Error:
    type: str
    message: str

    @property
    def family(self) -> str:
        """The type compared between the two sides: ``ModuleNotFoundError`` is an ``ImportError`` on both."""
        return "ImportError" if self.type == "ModuleNotFoundError" else self.type


_RESTRICTED_REASONS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r'"(?P<x>[^"]+)" is an invalid attribute name because it starts with "_"'), "attribute .{x}"),
    (re.compile(r'"(?P<x>[^"]+)" is an invalid variable name because it starts with "_'), "name {x}"),
    (re.compile(r'"(?P<x>[^"]+)" is an invalid variable name because names like _name_ are reserved'), "name {x}"),
    (re.compile(r'"(?P<x>[^"]+)" is an invalid name to import'), "import {x}"),
    (re.compile(r'"(?P<x>[^"]+)" is an invalid variable name because it ends with "__roles__"'), "name {x}"),
    (re.compile(r'"(?P<x>[^"]+)" is not accessible in the sandbox'), "attribute .{x}"),
    (re.compile(r'"(?P<x>[^"]+)" is a reserved name'), "reserved name {x}"),
    (re.compile(r"(?P<x>exec|eval)\(\) calls are not allowed"), "{x}() call"),
    (re.compile(r'keyword argument "metaclass"'), "class metaclass="),
    (re.compile(r"nested too deeply|too large to compile"), "code too large or deep"),
)

_RUNTIME_REASONS: tuple[tuple[str, re.Pattern[str], str], ...] = (
    ("PermissionError", re.compile(r"^(?P<x>\w+)\(\) is not available in the sandbox"), "builtin {x}()"),
    ("ImportError", re.compile(r"import of '(?P<x>[^']+)' is not allowed"), "import {x}"),
    ("ImportError", re.compile(r"cannot import name '(?P<x>[^']+)' from '(?P<m>[^']+)'"), "from {m} import {x}"),
    ("ImportError", re.compile(r"relative imports"), "relative import"),
    ("AttributeError", re.compile(r"^(?P<x>\w+\.\w+) is not available in the sandbox"), "module attribute {x}"),
    ("AttributeError", re.compile(r"attribute '(?P<x>[^']+)' of exceptions"), "exception attribute .{x}"),
    ("AttributeError", re.compile(r"attribute '(?P<x>[^']+)' is not accessible"), "getattr(.., '{x}')"),
    ("AttributeError", re.compile(r"attribute '(?P<x>_[^']+)' of '[^']+' objects is not accessible"), "attribute .{x}"),
    ("AttributeError", re.compile(r"'(?P<x>[^']+)' objects are read-only"), "attribute write on {x}"),
    ("AttributeError", re.compile(r"(?P<x>\w+) is read-only"), "attribute write on {x}"),
    (
        "AttributeError",
        re.compile(r"module '(?P<m>[^']+)' has no attribute '(?P<x>[^']+)'"),
        "module attribute {m}.{x}",
    ),
    ("NameError", re.compile(r"name '(?P<x>[^']+)' is not defined"), "missing builtin {x}"),
    ("TypeError", re.compile(r"cannot be copied or pickled"), "copying a REPL helper"),
)


def refusal_causes(error: Error) -> list[str]:
    """Cause names if ``error`` is the sandbox refusing something, else an empty list.

    A ``NameError`` counts only for a name Python itself provides (a builtin the
    sandbox left out); other names are the code's own (or an earlier refusal's) doing.
    """
    message = re.sub(r"^the sandbox refused this code: ", "", error.message)
    if error.type == "RestrictedCodeError":
        causes = []
        for reason in message.split("; "):
            reason = re.sub(r"^Line \d+: ", "", reason.strip())
            for pattern, name in _RESTRICTED_REASONS:
                match = pattern.search(reason)
                if match:
                    causes.append(name.format(**match.groupdict()))
                    break
            else:
                causes.append(f"refused: {reason[:60]}")
        return sorted(set(causes))
    for kind, pattern, name in _RUNTIME_REASONS:
        if error.family != kind:
            continue
        match = pattern.search(message)
        if match is None:
            continue
        if kind == "NameError" and match.group("x") not in PYTHON_BUILTINS:
            return []
        return [name.format(**match.groupdict())]
    if "in the sandbox" in message:
        return [f"{error.type}: {message[:60]}"]
    return []
