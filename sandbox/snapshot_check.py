"""The parent's side of snapshots (:mod:`sandbox.worker.snapshot`): what a worker sends is untrusted data.

A snapshot is refused whole unless it is exactly what :func:`sandbox.worker.snapshot.encode`
writes: known tags, exact JSON types, references only to earlier nodes (so no
cycle can be described), names code could have, and a size within the limit.
The same check runs again on a snapshot read back from the store before it is
sent to a fresh worker. The tags, bounds and the rule for names come from
:mod:`sandbox.protocol` (the worker's encoder uses the same ones); nothing here
imports the worker's code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sandbox.fields import Fields, clean_text
from sandbox.protocol import ProtocolError
from sandbox.protocol.names import is_user_name
from sandbox.protocol.snapshots import (
    FACTORY_NAMES,
    FLOATS,
    MAX_INT_BITS,
    MAX_NODES,
    MAX_REASON_CHARS,
    MAX_VARIABLES,
    TAGS,
)


def _refs(value: Any, index: int, what: str, pairs: bool = False) -> None:
    if type(value) is not list or not all(type(r) is int and 0 <= r < index for r in value):
        raise ProtocolError(f"{what}: node {index} refers to something other than earlier nodes")
    if pairs and len(value) % 2:
        raise ProtocolError(f"{what}: node {index} has a key without a value")


def _check_node(node: Any, index: int, what: str) -> None:
    """One node, exactly as :func:`encode` writes it; anything else is refused."""
    if type(node) is not list or not node or type(node[0]) is not str or node[0] not in TAGS:
        raise ProtocolError(f"{what}: node {index} is not a tagged node")
    tag, size = node[0], len(node)
    if tag in ("l", "t", "S", "F", "d", "O", "C"):
        _refs(node[1] if size == 2 else None, index, what, pairs=tag in ("d", "O", "C"))
        return
    if tag in ("D", "q"):
        _refs(node[2] if size == 3 else None, index, what, pairs=tag == "D")
        extra = node[1]
        if tag == "D" and (extra is None or (type(extra) is str and extra in FACTORY_NAMES)):
            return
        if tag == "q" and (extra is None or (type(extra) is int and extra >= 0)):
            return
        raise ProtocolError(f"{what}: node {index} ({tag!r}) is malformed")
    value = node[1] if size == 2 else None
    if tag == "n":
        ok = size == 1
    elif tag == "b":
        ok = type(value) is bool
    elif tag == "i":
        ok = type(value) is int and value.bit_length() <= MAX_INT_BITS  # type: ignore[union-attr]
    elif tag == "f":
        ok = type(value) is float or (type(value) is str and value in FLOATS)
    elif tag == "s":
        ok = type(value) is str
    else:
        ok = type(value) is str and _is_hex(value)  # type: ignore[arg-type]
    if not ok:
        raise ProtocolError(f"{what}: node {index} ({tag!r}) is malformed")


def _is_hex(text: str) -> bool:
    try:
        bytes.fromhex(text)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class Snapshot:
    """Variables saved as plain data, checked field by field; ``skipped`` says what was not saved, and why."""

    nodes: list[list[Any]]
    variables: dict[str, int]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    size: int = 0
    """Bytes of the node table as JSON."""

    @classmethod
    def parse(cls, raw: Any, max_bytes: int, what: str = "the snapshot") -> Snapshot:
        """A snapshot from the worker (or read back from the store): refused whole unless exactly well formed."""
        fields = Fields(raw, what)
        nodes, variables, skipped = fields.items("nodes"), fields.mapping("variables"), fields.items("skipped")
        too_many = len(nodes) > min(max(max_bytes // 4, 1), MAX_NODES)
        if too_many or len(variables) > MAX_VARIABLES or len(skipped) > MAX_VARIABLES:
            raise ProtocolError(f"{what} has more nodes or variables than its size allows")
        for index, node in enumerate(nodes):
            _check_node(node, index, what)
        size = len(json.dumps(nodes, separators=(",", ":")))
        if size > max_bytes:
            raise ProtocolError(f"{what} is {size:,} bytes, over its limit of {max_bytes:,}")
        names: dict[str, int] = {}
        for name, ref in variables.items():
            if not name.isidentifier() or not is_user_name(name) or len(name) > 200:
                raise ProtocolError(f"{what} names a variable {clean_text(name, 50)!r} that code could not have")
            if type(ref) is not int or not 0 <= ref < len(nodes):
                raise ProtocolError(f"{what}: variable {name!r} refers to no node")
            names[name] = ref
        reasons = []
        for entry in skipped:
            if type(entry) is not list or len(entry) != 2 or not all(type(x) is str for x in entry):
                raise ProtocolError(f"{what}: a skipped variable is not a name and a reason")
            reasons.append((clean_text(entry[0], 200), clean_text(entry[1], MAX_REASON_CHARS)))
        return cls(nodes=nodes, variables=names, skipped=reasons, size=size)

    def to_message(self) -> dict[str, Any]:
        return {"nodes": self.nodes, "variables": self.variables, "skipped": [list(s) for s in self.skipped]}


@dataclass(frozen=True)
class Restored:
    """What a fresh worker rebuilt from a snapshot, and what failed (name, reason)."""

    names: list[str]
    failed: list[tuple[str, str]]

    @classmethod
    def parse(cls, raw: Any, asked: Snapshot) -> Restored:
        fields = Fields(raw, "the restore report")
        names = fields.texts("restored", 200)
        failed = fields.items("failed")
        if not set(names) <= set(asked.variables) or len(failed) > len(asked.variables):
            raise ProtocolError("the restore report names variables that were not sent")
        reasons = []
        for entry in failed:
            if type(entry) is not list or len(entry) != 2 or not all(type(x) is str for x in entry):
                raise ProtocolError("the restore report: a failure is not a name and a reason")
            reasons.append((clean_text(entry[0], 200), clean_text(entry[1], MAX_REASON_CHARS)))
        return cls(names=names, failed=reasons)
