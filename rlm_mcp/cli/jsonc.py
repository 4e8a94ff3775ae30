"""JSON with comments (VS Code's ``mcp.json``): read it, and change one member without touching the rest.

A client configuration is the user's file: it may hold comments, trailing
commas and its own layout, and ``install`` must change one entry of it, not
reformat it. So the file is never re-serialised. Instead:

* comments and trailing commas are blanked out with spaces of the same length
  (newlines kept), so the standard library's ``json`` parses the result and its
  error positions (line, column) are the user's;
* the byte spans of the members that matter are found on that blanked copy
  with ``json``'s own scanner (``scanstring`` for keys, ``raw_decode`` for
  values), and the edit splices new text into the original.

Everything outside the edited member stays byte for byte, comments included.
A comment *inside* a member that is replaced or removed goes with it, and
:class:`Edit` says so.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

_DECODER = json.JSONDecoder()
_WHITESPACE = " \t\r\n"


class JSONCError(ValueError):
    """The text is not JSON with comments; the message names the line and column."""


def blank(text: str) -> tuple[str, str]:
    """``(code, plain)``: the text with comments blanked, and also with trailing commas blanked.

    Both keep every character's offset, so positions found in them apply to ``text``.
    """
    out = list(text)
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == '"':
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
            i += 1
        elif text.startswith("//", i):
            end = text.find("\n", i)
            end = n if end < 0 else end
            out[i:end] = " " * (end - i)
            i = end
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            if end < 0:
                line, col = position(text, i)
                raise JSONCError(f"a /* comment at line {line} column {col} is never closed")
            end += 2
            out[i:end] = ["\n" if ch == "\n" else " " for ch in text[i:end]]
            i = end
        else:
            i += 1
    code = "".join(out)
    plain = list(code)
    for match in re.finditer(r'"(?:[^"\\]|\\.)*"|,(?=\s*[}\]])', code, re.S):
        if match.group(0) == ",":
            plain[match.start()] = " "
    return code, "".join(plain)


def position(text: str, offset: int) -> tuple[int, int]:
    """1-based line and column of ``offset``."""
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def loads(text: str) -> Any:
    """Parse JSON with ``//`` and ``/* */`` comments and trailing commas."""
    _, plain = blank(text)
    try:
        return json.loads(plain)
    except json.JSONDecodeError as exc:
        raise JSONCError(f"{exc.msg} at line {exc.lineno} column {exc.colno}") from None


@dataclass(frozen=True)
class Member:
    key: str
    key_start: int
    value_start: int
    value_end: int


@dataclass(frozen=True)
class ObjectSpan:
    start: int
    """Offset of ``{``."""
    end: int
    """Offset of ``}``."""
    members: list[Member]

    def get(self, key: str) -> Member | None:
        found = [m for m in self.members if m.key == key]
        return found[-1] if found else None  # the last duplicate is the one json.loads keeps


def _skip(text: str, i: int) -> int:
    while i < len(text) and text[i] in _WHITESPACE:
        i += 1
    return i


def object_at(plain: str, start: int) -> ObjectSpan:
    """The members of the object whose ``{`` is at ``start`` (in the fully blanked text)."""
    members: list[Member] = []
    i = _skip(plain, start + 1)
    if plain[i] == "}":
        return ObjectSpan(start, i, members)
    while True:
        key_start = i
        key, i = json.decoder.scanstring(plain, i + 1)  # type: ignore[attr-defined]
        i = _skip(plain, _skip(plain, i) + 1)  # past the colon
        _, value_end = _DECODER.raw_decode(plain, i)
        members.append(Member(key, key_start, i, value_end))
        i = _skip(plain, value_end)
        if plain[i] == "}":
            return ObjectSpan(start, i, members)
        i = _skip(plain, i + 1)  # past the comma


@dataclass
class Edit:
    """The new text, and whether user comments inside the replaced or removed span were lost."""

    text: str
    comments_lost: bool = False
    notes: list[str] = field(default_factory=list)


class Document:
    """A JSONC document whose top level is an object, edited by splicing."""

    def __init__(self, text: str):
        self.text = text
        self.code, self.plain = blank(text)
        self.data = loads(text) if text.strip() else {}
        if not isinstance(self.data, dict):
            raise JSONCError("the top level is not an object")
        self.newline = "\r\n" if "\r\n" in text else "\n"
        self.unit = _indent_unit(text)

    @property
    def has_comments(self) -> bool:
        return self.code != self.text

    def _top(self) -> ObjectSpan:
        return object_at(self.plain, _skip(self.plain, 0))

    def _render(self, value: Any, indent: str) -> str:
        rendered = json.dumps(value, indent=self.unit, ensure_ascii=False)
        return rendered.replace("\n", self.newline + indent)

    def set_member(self, key: str, name: str, value: Any) -> Edit:
        """The text with ``data[key][name] = value``, creating ``key`` as an object when missing."""
        if not self.text.strip():
            document = {key: {name: value}}
            return Edit(json.dumps(document, indent=self.unit, ensure_ascii=False) + self.newline)
        top = self._top()
        outer = top.get(key)
        if outer is None:
            return self._insert(top, key, {name: value})
        if self.plain[outer.value_start] != "{":
            raise JSONCError(f"{key!r} is not an object")
        inner = object_at(self.plain, outer.value_start)
        existing = inner.get(name)
        if existing is None:
            return self._insert(inner, name, value)
        indent = self._line_indent(existing.key_start)
        old = slice(existing.value_start, existing.value_end)
        lost = self.code[old] != self.text[old]
        text = self.text[: old.start] + self._render(value, indent) + self.text[old.stop :]
        return Edit(text, comments_lost=lost)

    def remove_member(self, key: str, name: str) -> Edit | None:
        """The text without ``data[key][name]``, or None when there is no such member."""
        if not self.text.strip():
            return None
        outer = self._top().get(key)
        if outer is None or self.plain[outer.value_start] != "{":
            return None
        inner = object_at(self.plain, outer.value_start)
        member = inner.get(name)
        if member is None:
            return None
        index = inner.members.index(member)
        start = self._line_start_if_blank(member.key_start)
        inline = start == member.key_start and start > 0 and self.text[start - 1] != "\n"
        after = _skip(self.code, member.value_end)
        if self.code[after] == "," and inline:  # {"a": 1, "rlm": {...}, "b": 2}: one space goes with it
            before = member.key_start
            while self.code[before - 1] in " \t":
                before -= 1
            spans = [
                (before, after + 1) if self.code[before - 1] != "{" else (start, _skip_inline(self.code, after + 1))
            ]
        elif self.code[after] == ",":
            spans = [(start, self._end_of_blank_line(start, after + 1))]
        elif index > 0:  # the last member goes, so the comma before it must too
            comma = self.code.index(",", inner.members[index - 1].value_end, member.key_start)
            if inline:
                spans = [(comma, member.value_end)]
            else:
                spans = [(comma, comma + 1), (start, self._end_of_blank_line(start, member.value_end))]
        else:
            spans = [(start, member.value_end if inline else self._end_of_blank_line(start, member.value_end))]
        text = self.text
        lost = any(self.code[a:b] != self.text[a:b] for a, b in spans)
        for a, b in reversed(spans):
            text = text[:a] + text[b:]
        return Edit(text, comments_lost=lost)

    def _end_of_blank_line(self, start: int, end: int) -> int:
        """``end``, or past the line break after it when the removal leaves that line empty."""
        if start > 0 and self.text[start - 1] != "\n":  # something stays before it on its line
            return end
        i = _skip_inline(self.text, end)
        if self.text.startswith("\r\n", i):
            return i + 2
        if self.text.startswith("\n", i):
            return i + 1
        return end

    # -- splicing ------------------------------------------------------------------------

    def _insert(self, obj: ObjectSpan, name: str, value: Any) -> Edit:
        """Add ``"name": value`` as the last member of ``obj``: on its own line, or inline in a one-line object."""
        key = json.dumps(name, ensure_ascii=False)
        last = obj.members[-1] if obj.members else None
        has_comma = last is not None and self.code[_skip(self.code, last.value_end)] == ","
        if "\n" not in self.text[obj.start : obj.end] and (last is not None or "\n" not in self.text.strip()):
            # {"a": 1} stays on one line, as does a whole file written on one
            member = f"{key}: {json.dumps(value, ensure_ascii=False)}"
            if last is None:
                return Edit(self.text[: obj.start + 1] + member + self.text[obj.start + 1 :])
            if has_comma:  # {"a": 1,}  ->  {"a": 1, "rlm": ...,}
                comma = _skip(self.code, last.value_end)
                return Edit(self.text[: comma + 1] + f" {member}," + self.text[comma + 1 :])
            return Edit(self.text[: last.value_end] + f", {member}" + self.text[last.value_end :])
        outer_indent = self._line_indent(obj.start)
        indent = self._line_indent(last.key_start) if last is not None else outer_indent + self.unit
        member = f"{key}: {self._render(value, indent)}{',' if has_comma else ''}"
        close_line = self.text.rfind("\n", 0, obj.end) + 1
        if not self.text[close_line : obj.end].strip():  # '}' alone on its line: the member goes before that line
            text = self.text[:close_line] + indent + member + self.newline + self.text[close_line:]
        else:
            text = self.text[: obj.end] + self.newline + indent + member + self.newline + outer_indent
            text += self.text[obj.end :]
        if last is not None and not has_comma:
            text = text[: last.value_end] + "," + text[last.value_end :]
        return Edit(text)

    def _line_indent(self, offset: int) -> str:
        line_start = self.text.rfind("\n", 0, offset) + 1
        head = self.text[line_start:offset]
        return head[: len(head) - len(head.lstrip(" \t"))]

    def _line_start_if_blank(self, offset: int) -> int:
        """The start of ``offset``'s line when only whitespace precedes it there, else ``offset``."""
        line_start = self.text.rfind("\n", 0, offset) + 1
        return line_start if not self.text[line_start:offset].strip() else offset


def _skip_inline(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \t":
        i += 1
    return i


def _indent_unit(text: str) -> str:
    """The file's indentation step: a tab, or the smallest run of leading spaces (2 when none)."""
    widths = []
    for line in text.splitlines():
        head = line[: len(line) - len(line.lstrip(" \t"))]
        if head.startswith("\t"):
            return "\t"
        if head and line.strip():
            widths.append(len(head))
    return " " * (min(widths) if widths else 2)
