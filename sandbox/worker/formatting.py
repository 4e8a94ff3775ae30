"""``str.format`` and ``str.format_map`` for user code, walking fields only as code itself may.

CPython's ``str.format`` reads ``{0.attr}`` and ``{0[key]}`` inside C, past every
guard: ``"{0.__init__.__globals__}".format(f)`` is the classic escape
(CVE-2023-41039). Code never gets the real method: every read of ``format`` or
``format_map`` goes through the read guard, which hands out a
:class:`FormatMethod` in place of ``str``'s own (bound or unbound). It formats
the template's real characters (a str subclass is copied first), and:

* a template whose fields hold no ``.`` or ``[`` and whose specs nest no field
  only looks arguments up by position or name, so code gets CPython's own method
  bound to it (or, unbound, the call goes to CPython's ``str.format``) at full speed;
* any other template runs through :class:`SandboxFormatter`, where ``{0.name}``
  is ``getattr`` under the sandbox's attribute rules (``{0.__class__}`` is
  ``type(0)``, ``{0.__globals__}`` and ``{0.gi_frame}`` are refused) and
  ``{0[key]}`` is ``obj[key]``, exactly what a subscript in code does.

So a format string can reach nothing the same code could not reach directly.
"""

from __future__ import annotations

import _string  # type: ignore[import-not-found]  # the C parser str.format itself uses
import string
import types
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from typing import Any

_STR_METHODS = {"format": str.format, "format_map": str.format_map}
_CACHED_TEMPLATE_CHARS = 2000


class SandboxFormatter(string.Formatter):
    """``string.Formatter`` whose attribute walks go through ``read_attribute`` (the sandbox's getattr)."""

    def __init__(self, read_attribute: Callable[[Any, str], Any]):
        self.read_attribute = read_attribute

    def get_field(self, field_name: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> tuple[Any, Any]:
        first, rest = _string.formatter_field_name_split(field_name)
        obj = self.get_value(first, args, kwargs)
        for is_attribute, key in rest:
            obj = self.read_attribute(obj, key) if is_attribute else obj[key]
        return obj, first


class _PositionalRefused:
    """The positional arguments of ``format_map``: there are none, as CPython says."""

    def __getitem__(self, index: int) -> Any:
        raise ValueError("Format string contains positional fields")


_NO_POSITIONAL = _PositionalRefused()


def _walks(template: str) -> bool:
    for _, field, spec, _ in _string.formatter_parser(template):
        if field is not None and ("." in field or "[" in field):
            return True
        if spec and "{" in spec:
            return True
    return False


@lru_cache(maxsize=512)
def _walks_cached(template: str) -> bool:
    return _walks(template)


def needs_guarded_formatter(template: str) -> bool:
    """True when ``template`` reads attributes or items, or nests fields in a spec (or does not parse)."""
    try:
        return _walks_cached(template) if len(template) <= _CACHED_TEMPLATE_CHARS else _walks(template)
    except ValueError:  # let the guarded formatter raise CPython's error, after reading nothing it may not
        return True


def format_string(formatter: SandboxFormatter, template: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    if needs_guarded_formatter(template):
        return formatter.vformat(template, args, kwargs)
    return str.format(template, *args, **kwargs)


def format_map(formatter: SandboxFormatter, template: str, mapping: Any) -> str:
    if needs_guarded_formatter(template):
        return formatter.vformat(template, _NO_POSITIONAL, mapping)  # type: ignore[arg-type]
    return str.format_map(template, mapping)


class FormatMethod:
    """What code gets for ``s.format``, ``s.format_map``, ``str.format``, ``str.format_map``.

    Bound (``template`` set) or unbound (the template is the first argument, as
    with ``str.format(template, ...)``). Exposes nothing but its call.
    """

    __slots__ = ("_formatter", "_name", "_template")

    def __init__(self, formatter: SandboxFormatter, name: str, template: str | None):
        self._formatter = formatter
        self._name = name
        self._template = template

    def __call__(self, *args: Any, **kwargs: Any) -> str:
        template = self._template
        if template is None:
            if not args:
                raise TypeError(f"unbound method str.{self._name}() needs an argument")
            if not issubclass(type(args[0]), str):
                raise TypeError(
                    f"descriptor '{self._name}' for 'str' objects doesn't apply to a '{type(args[0]).__name__}' object"
                )
            template, args = str.__str__(args[0]), args[1:]  # its real characters, never its methods
        if self._name == "format":
            return format_string(self._formatter, template, args, kwargs)
        if len(args) != 1 or kwargs:
            raise TypeError("format_map() takes exactly one argument")
        return format_map(self._formatter, template, args[0])

    def __reduce_ex__(self, protocol: Any) -> Any:
        raise TypeError(f"str.{self._name} cannot be copied or pickled in the sandbox")

    def __repr__(self) -> str:
        if self._template is None:
            return f"<method '{self._name}' of 'str' objects>"
        return f"<built-in method {self._name} of str object>"


def bound_method(template: str, name: str, formatter: SandboxFormatter) -> Any:
    """``template.format`` (or ``format_map``) for code; ``template`` is an exact str.

    A template that only looks arguments up gets CPython's own bound method, at full
    speed: it is bound to this template for good (a builtin method cannot be rebound,
    and its ``__self__`` is not readable), so it can only ever look arguments up.
    """
    if needs_guarded_formatter(template):
        return FormatMethod(formatter, name, template)
    return getattr(template, name)


def replace_str_method(value: Any, name: str, formatter: SandboxFormatter) -> Any:
    """``value`` (what ``getattr(obj, name)`` gave), with ``str``'s own format/format_map swapped out.

    Anything else named ``format`` (a method of the user's own class, say) is returned as it is.
    """
    real = _STR_METHODS[name]
    if value is real:
        return FormatMethod(formatter, name, None)
    if type(value) is types.BuiltinMethodType and value.__name__ == name:
        bound_to = value.__self__
        if issubclass(type(bound_to), str):
            return bound_method(str.__str__(bound_to), name, formatter)
    return value
