"""The JSONC editor behind install/uninstall: comments and layout kept, one member spliced in or out."""

from __future__ import annotations

import json

import pytest

from rlm_mcp.cli.jsonc import Document, JSONCError, loads

ENTRY = {"type": "stdio", "command": "/opt/rlm/bin/rlm-mcp", "args": ["serve"], "env": {"RLM_SUB_MODEL": "x"}}

# name: (text, whether uninstall gives back exactly the text)
FILES = {
    "vscode-style": ('{\n\t// mine\n\t"servers": {\n\t\t"a": {"command": "x"}, // keep\n\t\t/* b */\n\t},\n}\n', True),
    "plain": ('{\n  "servers": {\n    "a": {"command": "b"}\n  },\n  "x": 1\n}\n', True),
    "crlf": ('{\r\n    "servers": {\r\n        "a": 1\r\n    }\r\n}\r\n', True),
    "one line": ('{"servers": {"a": 1}}', True),
    "one line, trailing comma": ('{"servers": {"a": 1,}}', True),
    "strings that look like comments": ('{"servers": {"u": "http://x//y /* no */"}, "k": "a,}"}', True),
    "escaped quotes": ('{"servers": {"q": "say \\"hi\\" // not a comment"}}', True),
    "no servers yet": ('{\n  // nothing yet\n  "inputs": []\n}', False),
    "empty servers": ('{\n  "servers": {}\n}\n', False),
    "empty file": ("", False),
    "empty object": ("{}", False),
    "block comment in an empty object": ('{"servers": { /* none */ }}', False),
}


@pytest.mark.parametrize("name", FILES)
def test_set_then_remove_changes_only_the_entry(name: str) -> None:
    text, exact = FILES[name]
    original = loads(text) if text.strip() else {}
    added = Document(text).set_member("servers", "rlm", ENTRY)
    data = loads(added.text)
    assert data["servers"]["rlm"] == ENTRY
    assert {k: v for k, v in data.items() if k != "servers"} == {k: v for k, v in original.items() if k != "servers"}
    assert {k: v for k, v in data["servers"].items() if k != "rlm"} == original.get("servers", {})
    assert not added.comments_lost

    replaced = Document(added.text).set_member("servers", "rlm", {"command": "other"})
    assert loads(replaced.text)["servers"]["rlm"] == {"command": "other"}

    removed = Document(added.text).remove_member("servers", "rlm")
    assert removed is not None and loads(removed.text) == {**original, "servers": original.get("servers", {})}
    if exact:
        assert removed.text == text
    assert Document(removed.text).remove_member("servers", "rlm") is None


def test_comments_outside_the_entry_survive_and_inside_it_are_reported() -> None:
    text = '{\n  "servers": {\n    "rlm": {"command": "old"} /* mine */,\n    "b": 2 // two\n  }\n}\n'
    edit = Document(text).set_member("servers", "rlm", {"command": "new"})
    assert "/* mine */" in edit.text and "// two" in edit.text and not edit.comments_lost
    inside = '{"servers": {"rlm": {"command": "old" /* gone */}}}'
    assert Document(inside).set_member("servers", "rlm", {"command": "new"}).comments_lost
    assert Document(inside).remove_member("servers", "rlm").comments_lost  # type: ignore[union-attr]


def test_the_file_keeps_its_indentation() -> None:
    four = '{\n    "servers": {\n        "a": 1\n    }\n}\n'
    assert '\n        "rlm": {\n            "type"' in Document(four).set_member("servers", "rlm", ENTRY).text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"a": 1 /* open', "never closed"),
        ('{"a": }', "line 1 column 7"),
        ('{\n  "a": [1,\n  2\n}', "line 4 column 1"),
        ("[1, 2]", "not an object"),
    ],
)
def test_broken_files_are_refused_with_the_users_position(text: str, message: str) -> None:
    with pytest.raises(JSONCError, match=message):
        Document(text)


def test_what_it_reads_is_what_json_reads_without_the_comments() -> None:
    text = '// top\n{"a": [1, 2,], /* x */ "b": {"c": "//", "d": "/*",},}\n'
    assert loads(text) == json.loads('{"a": [1, 2], "b": {"c": "//", "d": "/*"}}')
    with pytest.raises(JSONCError):
        Document('{"servers": []}').set_member("servers", "rlm", ENTRY)
