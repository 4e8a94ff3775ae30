"""Typed reads of a frame from the worker: a field that is missing or of the wrong type is a protocol violation.

A worker that still runs our code sends every field with its type; a frame
that does not is from code that escaped, so it is refused whole
(:class:`~sandbox.protocol.ProtocolError`) instead of being coerced into
something that looks like an answer. Types are checked exactly (``type(x) is
int``): JSON only yields plain ``str``/``int``/``float``/``bool``/``list``/
``dict``/``None``, and ``True`` is not a count.
"""

from __future__ import annotations

import math
from typing import Any

from sandbox.protocol import ProtocolError


def clean_text(value: Any, limit: int | None = None) -> str:
    """A str that is safe to encode as UTF-8 (user code can build lone surrogates)."""
    text = value if isinstance(value, str) else str(value)
    if limit is not None and len(text) > limit:
        text = text[:limit]
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


class Fields:
    """The fields of one frame (``what`` names it in errors), each read with the type it must have."""

    def __init__(self, frame: Any, what: str):
        if type(frame) is not dict:
            raise ProtocolError(f"{what} is not a JSON object")
        self.frame = frame
        self.what = what

    def _get(self, key: str, types: tuple[type, ...], optional: bool) -> Any:
        if key not in self.frame:
            raise ProtocolError(f"{self.what} has no {key!r} field")
        value = self.frame[key]
        if value is None and optional:
            return None
        if type(value) not in types:
            raise ProtocolError(f"{self.what}: {key!r} is a {type(value).__name__}, not {types[0].__name__}")
        return value

    def text(self, key: str, limit: int | None) -> str:
        return clean_text(self._get(key, (str,), False), limit)

    def optional_text(self, key: str, limit: int | None) -> str | None:
        value = self._get(key, (str,), True)
        return None if value is None else clean_text(value, limit)

    def count(self, key: str) -> int:
        value = self._get(key, (int,), False)
        if value < 0:
            raise ProtocolError(f"{self.what}: {key!r} is negative")
        return value

    def optional_count(self, key: str) -> int | None:
        return None if self._get(key, (int,), True) is None else self.count(key)

    def number(self, key: str) -> float:
        value = float(self._get(key, (float, int), False))
        if not math.isfinite(value):
            raise ProtocolError(f"{self.what}: {key!r} is not a finite number")
        return value

    def flag(self, key: str) -> bool:
        return self._get(key, (bool,), False)

    def items(self, key: str) -> list[Any]:
        return self._get(key, (list,), False)

    def optional_items(self, key: str) -> list[Any] | None:
        return self._get(key, (list,), True)

    def texts(self, key: str, limit: int | None) -> list[str]:
        values = self.items(key)
        if not all(type(v) is str for v in values):
            raise ProtocolError(f"{self.what}: {key!r} holds something other than strings")
        return [clean_text(v, limit) for v in values]

    def mapping(self, key: str) -> dict[str, Any]:
        return self._get(key, (dict,), False)

    def optional_mapping(self, key: str) -> dict[str, Any] | None:
        return self._get(key, (dict,), True)
