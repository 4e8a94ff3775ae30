"""Sandboxed code against plain CPython, side by side: the same operations, one of each in turn.

A plain ``python`` process and a sandbox each hold the same corpus, read by the
same loader (so the comparison is of the guards, not of how loading left the
allocator). For each repeat of each operation the plain process runs it, then
the sandbox does: the machine's load falls on both alike, and the ratio is
taken pair by pair. Each operation times itself with ``time.process_time()``
(CPU time, which other processes on the machine disturb far less than the
clock on the wall). Both keep one namespace across the operations, as a
session does: what an operation leaves (a list of chunks) lives until the
next one replaces it, in both.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from benchmarks import harness, stats
from benchmarks.micro import ROOT, _sample

OPS = {
    "regex over the corpus": "n = len(re.findall(r'\\b[a-z]{3}ing\\b|\\bqu[a-z]+', context))",
    "split and filter lines": "n = sum(1 for line in context.splitlines() if 'ab' in line and len(line) > 40)",
    "Counter over tokens": "n = len(Counter(context[:20_000_000].split()).most_common(20))",
    "pure-Python loop with dict updates": (
        "d = {}\nfor w in context[:8_000_000].split():\n    d[w] = d.get(w, 0) + 1\nn = len(d)"
    ),
    "slicing chunks": (
        "chunks = [context[i:i + 100_000] for i in range(0, len(context), 100_000)]\n"
        "n = sum(len(c) for c in chunks) + sum(c.count('a') for c in chunks[::10])"
    ),
}
TIMED = (
    "import re\nfrom collections import Counter\nimport time\nt0 = time.process_time()\n{op}\n"
    "t = time.process_time() - t0\nprint(t, n)"
)
PLAIN = """
import sys, json, os
sys.path.insert(0, sys.argv[2])
from sandbox.worker import loader
spec = loader.DocumentSpec('corpus', '', 'utf-8', 'strict')
context = loader.read_document(os.open(sys.argv[1], os.O_RDONLY), spec)
print('ready', flush=True)
ns = {'context': context, '__name__': 'plain', 'print': lambda *a, **k: None}
for line in sys.stdin:
    exec(compile(json.loads(line), '<op>', 'exec'), ns)
    print(json.dumps(ns['t']), flush=True)
"""


async def guarded(work: Path, target: harness.Target, size_mb: int, repeats: int = 3) -> list[dict[str, Any]]:
    """Each operation ``repeats`` times in plain CPython and in the sandbox, in turn; CPU seconds and ratios."""
    path = _sample(work, "ascii", size_mb)
    plain = subprocess.Popen(
        [sys.executable, "-c", PLAIN, str(path), str(ROOT)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert plain.stdin is not None and plain.stdout is not None
    try:
        assert plain.stdout.readline().strip() == "ready"
        times: dict[str, dict[str, list[float]]] = {name: {"plain": [], "sandbox": []} for name in OPS}
        async with harness.server(target, work) as srv:
            sid = (await srv.call("load_context", path=str(path)))["session_id"]
            for _ in range(repeats):
                for name, op in OPS.items():
                    code = TIMED.format(op=op)
                    plain.stdin.write(json.dumps(code) + "\n")
                    plain.stdin.flush()
                    times[name]["plain"].append(float(plain.stdout.readline()))
                    out = await srv.call("repl_exec", session_id=sid, code=code)
                    if out["error"]:
                        raise RuntimeError(f"{name}: {out['error']}")
                    times[name]["sandbox"].append(float(out["stdout"].split()[0]))
    finally:
        plain.kill()
        plain.wait()
    rows = []
    for name, pair in times.items():
        ratio = stats.ratios(pair["sandbox"], pair["plain"])
        rows.append(
            {
                "op": name,
                "plain_s": round(statistics.median(pair["plain"]), 4),
                "sandbox_s": round(statistics.median(pair["sandbox"]), 4),
                "ratio": ratio["median"],
                "ratio_spread": ratio,
            }
        )
    return rows
