"""Snapshots of REPL variables: plain data out of one worker, checked as untrusted, into a fresh one.

The worker encodes (it is hostile: whatever it sends is refused unless exactly
well formed), the server checks, and a fresh worker rebuilds. Through real
sandboxes; the parser's refusals also on hand-made replies, and on a hostile
frame written on a worker's real channel.
"""

from __future__ import annotations

import collections
import json
from pathlib import Path

import pytest
from escape import channel_of, frame

from sandbox import Sandbox, SandboxError, SandboxLimits
from sandbox.protocol import ProtocolError
from sandbox.snapshot_check import Restored, Snapshot
from sandbox.worker.repl import RESERVED
from sandbox.worker.snapshot import FACTORIES, MAX_NESTING, decode

pytestmark = pytest.mark.anyio


def inject(pid: int, data: bytes) -> None:
    """Write ``data`` on a worker's channel as code that escaped inside it could (skip where we may not)."""
    try:
        channel = channel_of(pid)
    except PermissionError as exc:
        pytest.skip(f"taking a worker's channel from outside needs CAP_SYS_PTRACE: {exc}")
    with channel:
        channel.sendall(data)


VALUES = """
import collections, re
row = {'id': 7, 'tags': ('a', 'b'), 'score': 0.5, 'ok': True, 'none': None, 'raw': b'\\x00\\xff', 1: 'one'}
rows = [row, row]
labels = collections.Counter('abracadabra')
groups = collections.defaultdict(list)
groups['x'].append(1)
order = collections.OrderedDict([('z', 1), ('a', 2)])
recent = collections.deque([1, 2, 3], maxlen=3)
odd = {frozenset({1, 2}), (1, (2, 3))}
huge = 10 ** 5000
weird = float('nan')
text = '\\ud800 lone surrogate, and accents: é, 中'
_cache = {'seen': [1, 2]}
def helper():
    return 1
class Box:
    pass
boxed = Box()
loop = []
loop.append(loop)
class Name(str):
    pass
liar = Name('x')
deep = []
cursor = deep
for _ in range(1200):
    cursor.append([])
    cursor = cursor[0]
"""


async def test_plain_data_survives_a_fresh_worker_and_the_rest_is_named_with_a_reason() -> None:
    async with Sandbox(SandboxLimits(exec_timeout_s=10)) as box:
        assert (await box.execute(VALUES)).error is None
        snapshot = await box.snapshot(1024 * 1024)
    skipped = dict(snapshot.skipped)
    assert set(skipped) == {"collections", "re", "helper", "Box", "Name", "boxed", "loop", "liar", "huge", "deep"}
    assert skipped["re"] == "a module: import it again" and "define it again" in skipped["helper"]
    assert skipped["boxed"] == "a Box object, not plain data" and "cycle" in skipped["loop"]
    assert "subclass of a builtin type" in skipped["liar"] and "bits" in skipped["huge"]
    assert f"deeper than {MAX_NESTING}" in skipped["deep"]
    # Stored and read back as JSON, checked again: what a resume does.
    stored = Snapshot.parse(json.loads(json.dumps(snapshot.to_message())), 1024 * 1024)
    async with Sandbox() as fresh:
        restored = await fresh.restore(stored)
        assert restored.failed == [] and "rows" in restored.names and "cursor" in restored.names
        assert "_cache" in restored.names  # a private name is the code's own variable (as policy allows)
        check = await fresh.execute(
            "print(rows[0] is rows[1], rows[0]['tags'], rows[0]['raw'], rows[0][1], labels.most_common(1),\n"
            "      dict(groups), groups['new'], list(order), recent.maxlen, sorted(odd, key=str), weird != weird,\n"
            "      text == '\\ud800 lone surrogate, and accents: é, 中', type(labels).__name__, _cache)"
        )
    assert check.error is None, check.error
    assert check.stdout == (
        "True ('a', 'b') b'\\x00\\xff' one [('a', 5)] {'x': [1]} [] ['z', 'a'] 3 "
        "[(1, (2, 3)), frozenset({1, 2})] True True Counter {'seen': [1, 2]}\n"
    )
    # What a fresh worker rebuilds is plain data of exact builtin types, all the way down: nothing the
    # REPL's guards would refuse to hand out (no function, class, module, or object of a user class).
    values, failed = decode(stored.to_message(), RESERVED)
    assert failed == [] and set(values) == set(stored.variables)
    assert_plain(list(values.values()))


PLAIN = {type(None), bool, int, float, str, bytes, list, tuple, dict, set, frozenset}
PLAIN |= {collections.Counter, collections.OrderedDict, collections.defaultdict, collections.deque}


def assert_plain(root: object) -> None:
    pending, seen = [root], set()
    while pending:
        value = pending.pop()
        if id(value) in seen:
            continue
        seen.add(id(value))
        assert type(value) in PLAIN, type(value)
        if isinstance(value, collections.defaultdict):
            assert value.default_factory is None or any(value.default_factory is f for f in FACTORIES.values())
        if isinstance(value, dict):
            pending.extend(value.keys())
            pending.extend(value.values())
        elif isinstance(value, list | tuple | set | frozenset | collections.deque):
            pending.extend(value)


async def test_a_snapshot_never_puts_the_sandbox_s_own_names_into_a_worker() -> None:
    # Past the parent's check (built by hand here), the fresh worker refuses them too.
    snapshot = Snapshot(
        nodes=[["i", 1], ["s", "x"]], variables={"_getattr_": 0, "__builtins__": 0, "_print": 1, "_kept": 0}
    )
    async with Sandbox() as box:
        restored = await box.restore(snapshot)
        assert restored.names == ["_kept"]
        assert dict(restored.failed) == dict.fromkeys(("_getattr_", "__builtins__", "_print"), "a reserved name")
        result = await box.execute("print(_kept, len('abc'))\nprint([1, 2])")
        assert result.error is None and result.stdout == "1 3\n[1, 2]\n"


async def test_the_size_limit_skips_what_does_not_fit_and_keeps_the_rest() -> None:
    async with Sandbox() as box:
        code = "small = [1, 2, 3]\nbig = 'x' * 300_000\nafter = {'k': 'v'}\nmany = list(range(100_000))"
        assert (await box.execute(code)).error is None
        snapshot = await box.snapshot(100_000)
    assert set(snapshot.variables) == {"small", "after"} and snapshot.size <= 100_000
    skipped = dict(snapshot.skipped)
    assert skipped["big"].startswith("too large") and skipped["many"].startswith("too large")


@pytest.mark.parametrize(
    ("reply", "problem"),
    [
        ({"nodes": [["l", [1]], ["n"]], "variables": {"a": 0}, "skipped": []}, "earlier nodes"),  # forward
        ({"nodes": [["l", [0]]], "variables": {"a": 0}, "skipped": []}, "earlier nodes"),  # itself
        ({"nodes": [["n"], ["l", [True]]], "variables": {"a": 1}, "skipped": []}, "earlier nodes"),  # a bool
        ({"nodes": [["i", True]], "variables": {"a": 0}, "skipped": []}, "malformed"),
        ({"nodes": [["i", 1.5]], "variables": {"a": 0}, "skipped": []}, "malformed"),
        ({"nodes": [["f", "1e9"]], "variables": {"a": 0}, "skipped": []}, "malformed"),
        ({"nodes": [["y", "zz"]], "variables": {"a": 0}, "skipped": []}, "malformed"),
        ({"nodes": [["pickle", "gASV"]], "variables": {"a": 0}, "skipped": []}, "tagged node"),
        ({"nodes": [["D", "os.system", []]], "variables": {"a": 0}, "skipped": []}, "malformed"),
        ({"nodes": [["n"], ["d", [0]]], "variables": {"a": 1}, "skipped": []}, "key without a value"),
        ({"nodes": [["q", -1, []]], "variables": {"a": 0}, "skipped": []}, "malformed"),
        ({"nodes": [["n"]], "variables": {"_write_": 0}, "skipped": []}, "could not have"),  # the sandbox's
        ({"nodes": [["n"]], "variables": {"__builtins__": 0}, "skipped": []}, "could not have"),
        ({"nodes": [["n"]], "variables": {"_tmp0": 0}, "skipped": []}, "could not have"),
        ({"nodes": [["n"]], "variables": {"a b": 0}, "skipped": []}, "could not have"),
        ({"nodes": [["n"]], "variables": {"a": 1}, "skipped": []}, "refers to no node"),
        ({"nodes": [["n"]], "variables": {"a": 0}, "skipped": [["a"]]}, "a name and a reason"),
        ({"nodes": [["s", "x" * 5000]], "variables": {"a": 0}, "skipped": []}, "over its limit"),
        ({"nodes": [["n"]] * 2000, "variables": {}, "skipped": []}, "more nodes"),
        ({"nodes": [["n"]], "variables": {"a": 0}}, "no 'skipped' field"),
    ],
)
def test_a_reply_that_is_not_exactly_well_formed_is_refused(reply: dict, problem: str) -> None:
    with pytest.raises(ProtocolError, match=problem):
        Snapshot.parse({"op": "snapshot", **reply}, 4000)


def test_a_restore_report_naming_what_was_not_sent_is_refused() -> None:
    sent = Snapshot(nodes=[["n"]], variables={"a": 0})
    assert Restored.parse({"restored": ["a"], "failed": []}, sent).names == ["a"]
    with pytest.raises(ProtocolError, match="not sent"):
        Restored.parse({"restored": ["a", "os"], "failed": []}, sent)


async def test_a_value_that_cannot_be_rebuilt_fails_alone() -> None:
    # Well formed, but a list cannot be a dict key: only the variables holding it fail.
    snapshot = Snapshot.parse(
        {
            "nodes": [["n"], ["l", [0]], ["s", "v"], ["d", [1, 2]], ["t", [3]], ["i", 5]],
            "variables": {"bad": 3, "worse": 4, "good": 5, "context": 5},
            "skipped": [],
        },
        4000,
    )
    async with Sandbox() as box:
        restored = await box.restore(snapshot)
        assert restored.names == ["good"]
        reasons = dict(restored.failed)
        assert (
            "TypeError" in reasons["bad"]
            and "TypeError" in reasons["worse"]
            and reasons["context"] == ("a reserved name")
        )
        assert (await box.execute("print(good, type(context).__name__)")).stdout == "5 str\n"


async def test_a_hostile_snapshot_frame_gets_the_worker_replaced(tmp_path: Path) -> None:
    async with Sandbox(SandboxLimits(exec_timeout_s=5, kill_grace_s=1)) as box:
        assert (await box.execute("kept = [1, 2]")).error is None  # request 1
        assert box.pid is not None
        old = box.pid
        forged = {"op": "snapshot", "id": 2, "nodes": [["l", [1]], ["n"]], "variables": {"kept": 0}, "skipped": []}
        inject(old, frame(json.dumps(forged).encode()))  # read as the answer to request 2
        with pytest.raises(SandboxError, match="restarted"):
            await box.snapshot(4000)
        assert box.pid != old
        after = await box.execute("kept")
        assert after.restarted and after.error is not None and after.error.type == "NameError"
        assert any("saving variables" in note for note in after.notes)
