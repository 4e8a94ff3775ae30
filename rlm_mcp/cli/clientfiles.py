"""A client's configuration file, read and edited in its own syntax without losing the user's content.

JSON files (Claude Desktop, Cursor, Windsurf, Claude Code) and VS Code's JSON
with comments go through :mod:`rlm_mcp.cli.jsonc`, which splices the one entry in
or out and leaves every other byte as it was. Codex's ``config.toml`` goes
through tomlkit, which keeps comments, order and layout of a TOML document
(the standard library's ``tomllib`` only reads).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import tomlkit
from tomlkit.exceptions import TOMLKitError

from rlm_mcp.cli import jsonc
from rlm_mcp.errors import InvalidInput

Syntax = Literal["json", "jsonc", "toml"]


@dataclass
class Change:
    """A file's new text, and what the user should know about it."""

    text: str
    notes: list[str] = field(default_factory=list)


class ClientFile:
    """The servers table (``key``) of one configuration file; the file itself is only read here."""

    def __init__(self, path: Path, key: str, syntax: Syntax, title: str):
        self.path = path
        self.key = key
        self.syntax = syntax
        self.title = title
        self.existed = path.exists()
        self.text = path.read_text(encoding="utf-8") if self.existed else ""
        self._json: jsonc.Document | None = None
        self._toml: tomlkit.TOMLDocument | None = None
        try:
            if syntax == "toml":
                self._toml = tomlkit.parse(self.text)
            else:
                self._json = jsonc.Document(self.text)
        except (jsonc.JSONCError, TOMLKitError) as exc:
            what = "TOML" if syntax == "toml" else "JSON"
            raise InvalidInput(
                f"{path} is not valid {what} ({exc}); fix it or move it away, then run this again"
            ) from None
        servers = self._servers_raw()
        if servers is not None and not isinstance(servers, dict):
            raise InvalidInput(f"{path}: {key!r} is not a table of servers; fix it or move it away")

    def _servers_raw(self) -> Any:
        if self._toml is not None:
            value = self._toml.get(self.key)
            return value.unwrap() if hasattr(value, "unwrap") else value
        assert self._json is not None
        return self._json.data.get(self.key)

    def servers(self) -> dict[str, Any]:
        """Every server entry of the file, by name."""
        return dict(self._servers_raw() or {})

    def with_entry(self, name: str, server: dict[str, Any]) -> Change:
        if self._toml is not None:
            return Change(_toml_with(self._toml, self.key, name, server))
        assert self._json is not None
        try:
            edit = self._json.set_member(self.key, name, server)
        except jsonc.JSONCError as exc:  # e.g. "servers": null
            raise InvalidInput(f"{self.path}: {exc}; fix it or move it away") from None
        notes = []
        if edit.comments_lost:
            notes.append(f"comments inside the old {name!r} entry could not be kept")
        if self._json.has_comments and self.syntax == "json":
            notes.append(f"the file has comments, which {self.title} documents no support for (they are kept)")
        return Change(edit.text, notes)

    def without_entry(self, name: str) -> Change | None:
        """The file without ``name``'s entry, or None when it has none."""
        if name not in self.servers():
            return None
        if self._toml is not None:
            del self._toml[self.key][name]  # type: ignore[union-attr]
            return Change(tomlkit.dumps(self._toml))
        assert self._json is not None
        edit = self._json.remove_member(self.key, name)
        assert edit is not None
        notes = [f"comments inside the {name!r} entry went with it"] if edit.comments_lost else []
        return Change(edit.text, notes)


def _toml_with(document: tomlkit.TOMLDocument, key: str, name: str, server: dict[str, Any]) -> str:
    """``[key.name]`` with the server's fields, its ``env`` as a sub-table; the rest of the document as it was."""
    servers = document.get(key)
    if servers is None:
        servers = tomlkit.table(is_super_table=True)
        document[key] = servers
    table = tomlkit.table()
    for field_name, value in server.items():
        if isinstance(value, dict):
            sub = tomlkit.table()
            for sub_key, sub_value in value.items():
                sub[sub_key] = sub_value
            table[field_name] = sub
        else:
            table[field_name] = value
    table.add(tomlkit.nl())  # a blank line before whatever table follows
    if name in servers:
        servers[name] = table
    else:
        servers.append(name, table)
    return tomlkit.dumps(document)
