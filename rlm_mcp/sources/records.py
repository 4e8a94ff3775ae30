"""JSON and JSON Lines: a list of records, each one document.

Each record is written back as compact JSON (``json.loads(doc.partition("\\n")[2])``
gives it back) after a header that cites it: ``data.jsonl:17`` is the record on
line 17 of a JSON Lines file, ``data.json[16]`` the element at index 16 of a
JSON array. A JSON file that is not an array is one record. Both formats are
read as streams (an array element at a time), so a file of any size costs the
server one record of memory; the text lands in a derived file for the worker.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

from rlm_mcp.errors import InvalidInput
from rlm_mcp.sources.derived import PartsWriter

LINE_SUFFIXES = (".jsonl", ".ndjson")
JSON_SUFFIX = ".json"
READ_CHUNK = 1024 * 1024
_WHITESPACE = " \t\n\r"
_NUMBER_CHARS = frozenset("0123456789.eE+-")


def kind_of(name: str) -> str | None:
    lower = name.lower()
    if lower.endswith(LINE_SUFFIXES):
        return "jsonl"
    if lower.endswith(JSON_SUFFIX):
        return "json"
    return None


def _compact(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _text(source: Path, encoding: str, errors: str) -> io.TextIOWrapper:
    return io.TextIOWrapper(source.open("rb"), encoding=encoding, errors=errors, newline="")


def _decode_error(name: str, encoding: str) -> InvalidInput:
    return InvalidInput(f"{name} is not valid {encoding}; load it again with errors='replace' or the right encoding")


def write_jsonl(source: Path, name: str, writer: PartsWriter, *, encoding: str, errors: str) -> None:
    try:
        with _text(source, encoding, errors) as lines:
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                try:
                    value = json.loads(line)
                except ValueError as exc:
                    raise InvalidInput(
                        f"{name} line {number} is not valid JSON ({exc}); fix it, or load with format='text'"
                    ) from None
                writer.add(f"{name}:{number}", _compact(value))
    except UnicodeDecodeError:
        raise _decode_error(name, encoding) from None


class _Buffer:
    """A window on a text stream, refilled as the parser moves on."""

    def __init__(self, stream: io.TextIOWrapper):
        self.stream = stream
        self.text = ""
        self.pos = 0
        self.eof = False

    def more(self) -> bool:
        if self.eof:
            return False
        chunk = self.stream.read(READ_CHUNK)
        if not chunk:
            self.eof = True
            return False
        self.text = self.text[self.pos :] + chunk
        self.pos = 0
        return True

    def peek(self) -> str:
        """The next character that is not whitespace ('' at the end)."""
        while True:
            while self.pos < len(self.text) and self.text[self.pos] in _WHITESPACE:
                self.pos += 1
            if self.pos < len(self.text):
                return self.text[self.pos]
            if not self.more():
                return ""


def _may_continue(value: object, text: str, end: int) -> bool:
    """A number that ends where the buffer does (or before more number characters) may be cut short."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return end == len(text) or text[end] in _NUMBER_CHARS


def write_json(source: Path, name: str, writer: PartsWriter, *, encoding: str, errors: str) -> None:
    decoder = json.JSONDecoder()
    try:
        with _text(source, encoding, errors) as stream:
            buf = _Buffer(stream)
            if buf.peek() == "\ufeff":
                buf.pos += 1
            if buf.peek() != "[":
                rest = buf.text[buf.pos :] + stream.read()
                try:
                    writer.add(name, _compact(json.loads(rest)))
                except ValueError as exc:
                    raise InvalidInput(f"{name} is not valid JSON ({exc}); fix it or load with format='text'") from None
                return
            buf.pos += 1
            index = 0
            while True:
                ch = buf.peek()
                if ch == "]":
                    buf.pos += 1
                    break
                if ch == "":
                    raise InvalidInput(f"{name} ends before its closing ']' (after {index} elements); is it cut short?")
                if index and ch == ",":
                    buf.pos += 1
                    buf.peek()
                elif index:
                    raise InvalidInput(f"{name}: expected ',' or ']' after element {index - 1}")
                while True:
                    try:
                        value, end = decoder.raw_decode(buf.text, buf.pos)
                    except json.JSONDecodeError as exc:
                        if buf.more():
                            continue
                        raise InvalidInput(
                            f"{name}: element {index} is not valid JSON ({exc.msg}); fix it, or load with format='text'"
                        ) from None
                    if _may_continue(value, buf.text, end) and buf.more():
                        continue  # a number cut by the end of the chunk: read on and parse it again
                    break
                writer.add(f"{name}[{index}]", _compact(value))
                index += 1
                buf.pos = end
            if buf.peek() != "":
                raise InvalidInput(f"{name}: unexpected text after the closing ']'")
    except UnicodeDecodeError:
        raise _decode_error(name, encoding) from None
