"""Plain-data snapshots of the REPL's variables, so a stopped run can go on in a fresh worker.

The worker encodes its variables (:func:`encode`); the parent checks the reply as
untrusted data (:meth:`sandbox.snapshot_check.Snapshot.parse`) and keeps it; later the parent sends it to
a fresh worker, which rebuilds the values (:func:`decode`). Nothing is pickled:
only plain data of exact builtin types survives (``None``, ``bool``, ``int``,
``float``, ``str``, ``bytes``, ``list``, ``tuple``, ``dict``, ``set``,
``frozenset``, and ``collections.Counter``/``defaultdict``/``OrderedDict``/
``deque``); anything else (a function, a module, an object of a class the code
defined, a ``str`` subclass) is listed as skipped, with the reason.

The format is a flat table of nodes, each a JSON array ``[tag, ...]`` whose
containers name their items by the index of an *earlier* node. So the table is
acyclic by construction, shared references survive, and however deep the data
nests, the frame stays four levels deep (the channel refuses frames nested past
:data:`~sandbox.protocol.MAX_DEPTH`). Variables map names to node indexes.

``"n"`` None · ``["b", bool]`` · ``["i", int]`` · ``["f", float | "nan" | "inf" | "-inf"]`` · ``["s", str]`` ·
``["y", hex]`` bytes · ``["l"|"t"|"S"|"F", [refs]]`` list, tuple, set, frozenset ·
``["d"|"O"|"C", [k, v, k, v, ...]]`` dict, OrderedDict, Counter · ``["D", factory | None, [k, v, ...]]``
defaultdict · ``["q", maxlen | None, [refs]]`` deque.
"""

from __future__ import annotations

import math
import types
from collections import Counter, OrderedDict, defaultdict, deque
from collections.abc import Callable, Iterable, Mapping
from json.encoder import encode_basestring_ascii  # type: ignore[attr-defined]
from typing import Any

from sandbox.protocol.names import is_user_name
from sandbox.protocol.snapshots import FACTORY_NAMES, FLOATS, MAX_INT_BITS, MAX_NODES, MAX_VARIABLES

MAX_NESTING = 1000
"""Containers nested deeper than this are skipped (encoding walks them with an explicit stack, not recursion)."""
_TYPES: dict[str, Callable[[], Any]] = {t.__name__: t for t in (int, float, str, list, dict, set, tuple, Counter)}
FACTORIES: dict[str, Callable[[], Any]] = {name: _TYPES[name] for name in FACTORY_NAMES}
"""The factories a snapshot may name (:data:`~sandbox.protocol.snapshots.FACTORY_NAMES`, which the parent checks
against), resolved here; a name added there without a type here fails when this module is imported."""
_SEQUENCES = {list: "l", tuple: "t", set: "S", frozenset: "F"}
_MAPPINGS = {dict: "d", OrderedDict: "O", Counter: "C"}
_LEAVES = frozenset({type(None), bool, int, float, str, bytes})


class _Skip(Exception):
    """This variable cannot be saved; the message says why."""


class _Full(_Skip):
    """This variable does not fit in what is left of the byte budget."""


def _what(value: object) -> str:
    """Why ``value`` is not plain data, in words the root can act on."""
    kind = type(value)
    if issubclass(kind, types.ModuleType):
        return "a module: import it again"
    if kind in (types.FunctionType, types.BuiltinFunctionType, types.MethodType, type):
        return "a function or class: define it again"
    if any(issubclass(kind, base) for base in (str, int, float, bytes, list, tuple, dict, set, frozenset, deque)):
        return f"a {kind.__name__}, a subclass of a builtin type: only exact builtin types are saved"
    return f"a {kind.__name__} object, not plain data"


class _Encoder:
    """Builds the node table, one variable at a time, within a byte budget."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.nodes: list[list[Any]] = []
        self.size = 2
        self.memo: dict[int, int] = {}
        self._memo_order: list[int] = []

    def add(self, value: object, node: list[Any], size: int) -> int:
        """Append ``node`` (at most ``size`` bytes as compact JSON, with its comma)."""
        if self.size + size > self.max_bytes or len(self.nodes) >= MAX_NODES:
            raise _Full
        self.size += size
        self.nodes.append(node)
        index = len(self.nodes) - 1
        self.memo[id(value)] = index
        self._memo_order.append(id(value))
        return index

    def variable(self, value: object) -> int:
        """The node of ``value``, its items first (an explicit stack: no recursion, however deep)."""
        nodes_before, memo_before, size_before = len(self.nodes), len(self._memo_order), self.size
        try:
            return self._encode(value)
        except _Full:
            self._rollback(nodes_before, memo_before, size_before)
            room = max(self.max_bytes - size_before, 0)
            raise _Skip(
                f"too large for the snapshot (over the {room:,} of {self.max_bytes:,} bytes left, "
                f"or more than {MAX_NODES - nodes_before:,} more values)"
            ) from None
        except BaseException:
            self._rollback(nodes_before, memo_before, size_before)
            raise

    def _rollback(self, nodes_before: int, memo_before: int, size_before: int) -> None:
        """Forget a variable that could not be saved: its nodes, and the values they stood for."""
        del self.nodes[nodes_before:]
        for key in self._memo_order[memo_before:]:
            self.memo.pop(key, None)
        del self._memo_order[memo_before:]
        self.size = size_before

    def _encode(self, root: object) -> int:
        """Depth first with an explicit stack; strings and ints, most of any state, are encoded inline (speed)."""
        if type(root) in _LEAVES:
            return self.memo.get(id(root)) if id(root) in self.memo else self.add(root, *self._leaf(root))
        memo, nodes, order, limit = self.memo, self.nodes, self._memo_order, self.max_bytes
        stack: list[list[Any]] = []
        """Containers being encoded: [the value, its items, the next item's position, the refs so far]."""
        active: set[int] = set()
        self._open(root, stack, active)
        while True:
            frame = stack[-1]
            items, position, refs = frame[1], frame[2], frame[3]
            descended = False
            for position in range(position, len(items)):  # noqa: B020 (the frame keeps where it stopped)
                item = items[position]
                key = id(item)
                ref = memo.get(key)
                if ref is None:
                    kind = type(item)
                    if kind is str:
                        if len(item) > limit - self.size:
                            raise _Full
                        size = 7 + len(encode_basestring_ascii(item))
                        if self.size + size > limit or len(nodes) >= MAX_NODES:
                            raise _Full
                        self.size += size
                        nodes.append(["s", item])
                        ref = memo[key] = len(nodes) - 1
                        order.append(key)
                    elif kind is int and -(10**15) < item < 10**15:
                        size = 7 + len(int.__repr__(item))
                        if self.size + size > limit or len(nodes) >= MAX_NODES:
                            raise _Full
                        self.size += size
                        nodes.append(["i", item])
                        ref = memo[key] = len(nodes) - 1
                        order.append(key)
                    elif kind in _LEAVES:
                        ref = self.add(item, *self._leaf(item))
                    elif key in active:
                        raise _Skip("it contains itself (a cycle)")
                    else:
                        frame[2] = position + 1
                        self._open(item, stack, active)
                        descended = True
                        break
                refs.append(ref)
            if descended:
                continue
            container = stack.pop()[0]
            active.discard(id(container))
            ref = self.add(container, *self._container(container, refs))
            if not stack:
                return ref
            stack[-1][3].append(ref)

    def _open(self, container: object, stack: list[list[Any]], active: set[int]) -> None:
        if len(stack) >= MAX_NESTING:
            raise _Skip(f"it is nested deeper than {MAX_NESTING} levels")
        items = self._items(container)
        active.add(id(container))
        stack.append([container, items, 0, []])

    @staticmethod
    def _items(value: object) -> list[object]:
        """The items of a container (keys and values alternating for mappings); anything else is skipped."""
        kind = type(value)
        if kind in _SEQUENCES:
            return list(value)  # type: ignore[call-overload]
        if kind is deque:
            return list(deque.__iter__(value))  # type: ignore[arg-type]
        if kind in _MAPPINGS or kind is defaultdict:
            if kind is defaultdict:
                factory = value.default_factory  # type: ignore[attr-defined]
                if factory is not None and not any(factory is f for f in FACTORIES.values()):
                    raise _Skip("a defaultdict whose default is not a plain type")
            return [x for pair in dict.items(value) for x in pair]  # type: ignore[arg-type]
        raise _Skip(_what(value))

    def _leaf(self, value: object) -> tuple[list[Any], int]:
        """The node of a plain value and its exact size (``["t",...]`` and a comma: 7 bytes around the value)."""
        kind = type(value)
        if value is None:
            return ["n"], 6
        if kind is bool:
            return ["b", value], 12
        if kind is int:
            if int.bit_length(value) > MAX_INT_BITS:  # type: ignore[arg-type]
                raise _Skip(f"an int of more than {MAX_INT_BITS:,} bits")
            return ["i", value], 7 + len(int.__repr__(value))  # type: ignore[arg-type]
        if kind is float:
            text = float.__repr__(value)  # type: ignore[arg-type]
            return (["f", value], 7 + len(text)) if math.isfinite(value) else (["f", text], 9 + len(text))  # type: ignore[arg-type]
        if kind is str:
            if len(value) > self.max_bytes - self.size:  # type: ignore[arg-type]
                raise _Full
            return ["s", value], 7 + len(encode_basestring_ascii(value))  # what the channel sends  # type: ignore[arg-type]
        if kind is bytes:
            if 2 * len(value) > self.max_bytes - self.size:  # type: ignore[arg-type]
                raise _Full
            return ["y", bytes.hex(value)], 9 + 2 * len(value)  # type: ignore[arg-type]
        raise _Skip(_what(value))

    def _container(self, value: object, refs: list[int]) -> tuple[list[Any], int]:
        """The node of a container and a bound on its size (every ref as long as the largest index yet)."""
        size = 9 + len(refs) * len(str(len(self.nodes)))
        kind = type(value)
        if kind in _SEQUENCES:
            return [_SEQUENCES[kind], refs], size
        if kind in _MAPPINGS:
            return [_MAPPINGS[kind], refs], size
        if kind is deque:
            maxlen = value.maxlen  # type: ignore[attr-defined]
            return ["q", maxlen, refs], size + 1 + len(str(maxlen))
        factory = value.default_factory  # type: ignore[attr-defined]
        name = None if factory is None else next(n for n, f in FACTORIES.items() if f is factory)
        return ["D", name, refs], size + 3 + len(str(name))


def encode(namespace: Mapping[str, object], reserved: Iterable[str], max_bytes: int) -> dict[str, Any]:
    """The worker's side: ``namespace``'s variables as a node table of at most ``max_bytes`` (JSON)."""
    encoder = _Encoder(max_bytes)
    variables: dict[str, int] = {}
    skipped: list[list[str]] = []
    hidden = set(reserved)
    for name, value in list(namespace.items()):
        if not is_user_name(name) or name in hidden:  # the sandbox's own names are never saved
            continue
        if len(variables) + len(skipped) >= MAX_VARIABLES:
            skipped.append([name, f"more than {MAX_VARIABLES} variables"])
            break
        try:
            variables[name] = encoder.variable(value)
        except _Skip as why:
            skipped.append([name, str(why)])
        except RecursionError:
            skipped.append([name, "nested too deeply"])
        except Exception as exc:  # the code's own objects may raise anything: this variable is not saved
            skipped.append([name, f"could not be read ({type(exc).__name__})"])
    return {"nodes": encoder.nodes, "variables": variables, "skipped": skipped}


def decode(message: Mapping[str, Any], reserved: Iterable[str]) -> tuple[dict[str, object], list[list[str]]]:
    """The fresh worker's side: the values of a snapshot the parent checked, and the names that failed."""
    built: list[object] = []
    failed_nodes: dict[int, str] = {}
    for index, node in enumerate(message["nodes"]):
        try:
            built.append(_build(node, built, failed_nodes))
        except Exception as exc:  # e.g. a list as a dict key: this node, and whatever holds it, fail
            built.append(None)
            failed_nodes[index] = f"could not be rebuilt ({type(exc).__name__}: {str(exc)[:100]})"
    values: dict[str, object] = {}
    failed: list[list[str]] = []
    hidden = set(reserved)
    for name, ref in message["variables"].items():
        if name in hidden or not is_user_name(name):
            failed.append([name, "a reserved name"])
        elif ref in failed_nodes:
            failed.append([name, failed_nodes[ref]])
        else:
            values[name] = built[ref]
    return values, failed


def _build(node: list[Any], built: list[object], failed: dict[int, str]) -> object:
    tag = node[0]
    if tag == "n":
        return None
    if tag in ("b", "i", "s"):
        return node[1]
    if tag == "f":
        return FLOATS[node[1]] if type(node[1]) is str else float(node[1])
    if tag == "y":
        return bytes.fromhex(node[1])
    refs = node[-1]
    broken = next((failed[r] for r in refs if r in failed), None)
    if broken is not None:
        raise ValueError(broken)
    items = [built[r] for r in refs]
    pairs = list(zip(items[::2], items[1::2], strict=True)) if tag in ("d", "O", "C", "D") else []
    if tag == "l":
        return items
    if tag == "t":
        return tuple(items)
    if tag == "S":
        return set(items)
    if tag == "F":
        return frozenset(items)
    if tag == "d":
        return dict(pairs)
    if tag == "O":
        return OrderedDict(pairs)
    if tag == "C":
        counter: Counter[Any] = Counter()
        dict.update(counter, pairs)  # the counts as saved, whatever they are (Counter.update would add them)
        return counter
    if tag == "D":
        result: defaultdict[Any, Any] = defaultdict(None if node[1] is None else FACTORIES[node[1]])
        result.update(pairs)
        return result
    if tag == "q":
        return deque(items, node[1])
    raise ValueError(f"unknown tag {tag!r}")
