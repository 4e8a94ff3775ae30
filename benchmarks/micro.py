"""Micro-benchmarks for the targets of issue 5: loading, REPL steps, guarded code, fan-out, root cost.

Each compares against its floor in the same run, side by side: a fresh
``python -c "open(p).read()"`` for loading, a trivial MCP tool for a REPL step,
plain CPython for guarded code, the ideal wave time for fan-out.
"""

from __future__ import annotations

import gzip
import http.client
import json
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks import corpora, harness, stats
from benchmarks.tasks import Oracle, all_tasks, root_script
from rlm_mcp.testing.bedrock import ConverseFake, ConverseRequest, Reply, echo

MB = 1024 * 1024
KINDS = ("ascii", "non-latin", "mixed")
ROOT = Path(__file__).resolve().parent.parent


def _floor_read_s(path: Path) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", f"open({str(path)!r}).read()"], check=True)
    return time.perf_counter() - started


def _sample(work: Path, kind: str, size_mb: int) -> Path:
    path = work / f"load-{kind}-{size_mb}mb.txt"
    if not path.exists():
        if kind == "ascii":
            corpora.write_sized(path, size_mb * MB, corpora.ascii_line)
        elif kind == "non-latin":
            corpora.write_sized(path, size_mb * MB, corpora.non_latin_line)
        else:  # mostly ASCII, one CJK line at the very end: the worst case for widening
            corpora.write_sized(path, size_mb * MB, corpora.ascii_line)
            with path.open("a") as f:
                f.write("\u4e2d\u6587 at the end\n")
    return path


async def load(work: Path, target: harness.Target, size_mb: int, repeats: int = 3, kinds: tuple[str, ...] = KINDS):
    """Loading a big local file, side by side with the floor: each repeat runs a fresh ``open(p).read()`` and then
    one load (``load_context`` plus a first ``repl_exec``, a new session each time, closed after) on one running
    server; the ratio is taken per pair. Memory: peak of server plus the session's worker against the file."""
    rows = []
    for kind in kinds:
        path = _sample(work, kind, size_mb)
        size = path.stat().st_size
        floors, loads, peaks, servers, templates, chars = [], [], [], [], [], 0
        async with harness.server(target, work) as srv:
            await srv.call("list_sessions")
            before = srv.memory()["server_peak"]
            for _ in range(repeats + 1):  # the first pair warms the page cache and is dropped
                floors.append(_floor_read_s(path))
                started = time.perf_counter()
                loaded = await srv.call("load_context", path=str(path))
                await srv.call("repl_exec", session_id=loaded["session_id"], code="n = len(context)")
                loads.append(time.perf_counter() - started)
                memory = srv.memory()
                await srv.call("close_session", session_id=loaded["session_id"])
                peaks.append(memory["peak"])
                servers.append(memory["server_peak"])
                templates.append(memory["template_peak"])
                chars = loaded["chars"]
        floors, loads = floors[1:], loads[1:]
        rows.append(
            {
                "kind": kind,
                "file_bytes": size,
                "chars": chars,
                "floor_s": round(statistics.median(floors), 3),
                "load_s": round(statistics.median(loads), 3),
                "time_ratio": stats.ratios(loads, floors)["median"],
                "ratio_spread": stats.ratios(loads, floors),
                "peak_bytes": int(max(peaks)),
                "server_peak_bytes": int(max(servers)),
                "server_growth_bytes": int(max(servers) - before),
                "template_peak_bytes": int(max(templates)),
                "memory_ratio": round(max(peaks) / size, 3),
            }
        )
        if kind != "ascii":
            path.unlink()
    return rows


async def shared(work: Path, target: harness.Target, size_mb: int) -> dict[str, Any]:
    """Two sessions on one file: nothing is copied for a local file; a .gz is decompressed once."""
    path = _sample(work, "ascii", size_mb)
    gz_source = work / "shared.txt.gz"
    with path.open("rb") as src, gzip.open(gz_source, "wb", compresslevel=1) as dst:
        shutil.copyfileobj(src, dst, 8 * MB)
    out: dict[str, Any] = {"file_bytes": path.stat().st_size}
    async with harness.server(target, work) as srv:

        async def twice(source: Path) -> list[float]:
            times = []
            for _ in range(2):
                started = time.perf_counter()
                await srv.call("load_context", path=str(source))
                times.append(round(time.perf_counter() - started, 3))
            return times

        out["local_load_s"] = await twice(path)
        out["local_server_peak_bytes"] = srv.memory()["server_peak"]
        out["gzip_load_s"] = await twice(gz_source)
        derived = srv.data_dir / "corpora" / "derived"
        out["gzip_derived_files"] = len(list(derived.iterdir()))
        out["gzip_server_peak_bytes"] = srv.memory()["server_peak"]
    gz_source.unlink()
    return out


async def repl_overhead(work: Path, target: harness.Target, calls: int = 300) -> dict[str, Any]:
    """Round trip of a trivial repl_exec through MCP stdio, interleaved call by call with a trivial tool of the
    same server (the SDK's own cost): ``ours_ms`` is what rlm-mcp adds, pair by pair."""
    async with harness.server(target, work) as srv:
        sid = (await srv.call("load_context", content="hello"))["session_id"]
        times: dict[str, list[float]] = {"list_sessions": [], "repl_exec": []}
        for _ in range(calls):
            for name, args in (("list_sessions", {}), ("repl_exec", {"session_id": sid, "code": "x = 1"})):
                started = time.perf_counter()
                await srv.call(name, **args)
                times[name].append((time.perf_counter() - started) * 1000)
    warm = {name: values[calls // 10 :] for name, values in times.items()}
    results: dict[str, Any] = {
        name: {**stats.spread(values), "median_ms": round(statistics.median(values), 3)}
        for name, values in warm.items()
    }
    for name, values in warm.items():
        results[name]["p90_ms"] = round(stats.percentile(values, 0.9), 3)
    ours = [r - t for r, t in zip(warm["repl_exec"], warm["list_sessions"], strict=True)]
    results["ours_ms"] = stats.spread(ours)
    return results


async def fan_out(
    work: Path, fake: ConverseFake, target: harness.Target, n: int = 200, batches: int = 4
) -> dict[str, Any]:
    """200 sub-calls at 250 ms, concurrency 16, against the ideal: the first batch of a fresh server, and the
    median of the ``batches - 1`` after it; per-call overhead at zero latency, one by one."""
    out: dict[str, Any] = {"calls": n, "latency_s": 0.25, "concurrency": 16}
    code = f"r = llm_query_batched([f'p{{i}}' for i in range({n})])"

    def slow(request: ConverseRequest) -> Reply:
        return Reply(text="ok", delay_s=0.25)

    ideal = -(-n // 16) * 0.25
    async with harness.server(target, work, RLM_SUBCALL_CONCURRENCY="16") as srv:
        # No warm-up call: the first batch a client sends is measured as it comes.
        fake.respond = slow
        sid = (await srv.call("load_context", content="x"))["session_id"]
        walls = []
        for _ in range(batches):
            fake.max_in_flight = 0
            started = time.perf_counter()
            await srv.call("repl_exec", session_id=sid, code=code)
            walls.append(time.perf_counter() - started)
        first, later = walls[0], walls[1:]
        out.update(ideal_s=ideal, wall_s=round(statistics.median(later), 3), max_in_flight=fake.max_in_flight)
        out["first_wall_s"] = round(first, 3)
        out["first_ratio"] = round(first / ideal, 3)
        out["ratio"] = round(statistics.median(later) / ideal, 3)
        out["ratio_spread"] = stats.spread([w / ideal for w in later])
    async with harness.server(target, work, RLM_SUBCALL_CONCURRENCY="1") as srv:
        sid = (await srv.call("load_context", content="x"))["session_id"]
        fake.respond = echo
        await srv.call("repl_exec", session_id=sid, code="llm_query('warm')")
        walls = []
        for _ in range(3):
            started = time.perf_counter()
            await srv.call("repl_exec", session_id=sid, code=code)
            walls.append(time.perf_counter() - started)
        out["per_call_ms"] = round(statistics.median(walls) / n * 1000, 3)
    out["fake_floor_ms"] = round(_fake_floor_ms(fake, target.sub_model, n), 3)
    out["overhead_ms"] = round(out["per_call_ms"] - out["fake_floor_ms"], 3)
    out["amortized_ms"] = round((out["wall_s"] - out["ideal_s"]) / n * 1000, 3)
    return out


def _fake_floor_ms(fake: ConverseFake, model: str, n: int) -> float:
    """What the fake itself costs per call: the same request over one kept-alive HTTP connection, no boto3."""
    fake.respond = echo
    host, port = fake.url.removeprefix("http://").split(":")
    body = json.dumps(
        {"messages": [{"role": "user", "content": [{"text": "p1"}]}], "inferenceConfig": {"maxTokens": 4096}}
    )
    connection = http.client.HTTPConnection(host, int(port))
    connection.connect()
    connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    walls = []
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(n):
            connection.request("POST", f"/model/{model}/converse", body, {"Content-Type": "application/json"})
            connection.getresponse().read()
        walls.append(time.perf_counter() - started)
    connection.close()
    return statistics.median(walls) / n * 1000


async def root_tokens(
    work: Path, fake: ConverseFake, target: harness.Target, sizes_kb: tuple[int, ...]
) -> list[dict[str, Any]]:
    """The same scripted S-NIAH run at two corpus sizes: the root's input tokens should barely move."""
    task = next(t for t in all_tasks(None) if t.name == "s-niah")
    rows = []
    for kb in sizes_kb:
        directory = work / "corpora" / f"root-{kb}"
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        corpus = corpora.niah(directory, kb * 1024 // corpora.CHARS_PER_TOKEN)
        question = task.questions(corpus)[0]
        oracle = Oracle(question.answer, 0.0)
        fake.respond = root_script(question, oracle)
        async with harness.server(target, work / "corpora") as srv:
            sid = (await srv.call("load_context", path=str(corpus.path)))["session_id"]
            result = await srv.call("rlm_query", session_id=sid, query=question.query)
        rows.append(
            {
                "corpus_bytes": corpus.path.stat().st_size,
                "root_input_tokens": result["usage"]["root_input_tokens"],
                "sub_calls": result["sub_calls"],
                "correct": question.score(result["answer"]) == 1.0,
            }
        )
        shutil.rmtree(directory)
    return rows


async def parallel_speedup(
    work: Path, fake: ConverseFake, target: harness.Target, trec: list[tuple[str, str]], tokens: int
) -> dict[str, Any]:
    """OOLONG counting with sub-calls one at a time versus 16 at once, at 250 ms per sub-call."""
    task = next(t for t in all_tasks(trec) if t.name == "oolong")
    directory = work / "corpora" / "speedup"
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    corpus = task.build(directory, tokens)
    question = task.questions(corpus)[0]
    out: dict[str, Any] = {"tokens": tokens}
    for concurrency in (1, 16):
        oracle = Oracle(question.answer, 0.25)
        fake.respond = root_script(question, oracle)
        async with harness.server(target, work / "corpora", RLM_SUBCALL_CONCURRENCY=str(concurrency)) as srv:
            sid = (await srv.call("load_context", path=str(corpus.path)))["session_id"]
            started = time.perf_counter()
            result = await srv.call("rlm_query", session_id=sid, query=question.query)
            out[f"wall_s_c{concurrency}"] = round(time.perf_counter() - started, 3)
            out["sub_calls"] = result["sub_calls"]
    out["speedup"] = round(out["wall_s_c1"] / out["wall_s_c16"], 2)
    shutil.rmtree(directory)
    return out
