"""``python -m benchmarks``: run the suite offline (or on real models with ``--bedrock``) and write BENCHMARKS.md."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

from benchmarks import corpora, crowd, guarded, harness, mapreduce, micro, report, run, savings, starts
from benchmarks.tasks import all_tasks
from rlm_mcp.testing.bedrock import ConverseFake

ROOT = Path(__file__).resolve().parent.parent
FULL_SIZES = (10_000, 100_000, 1_000_000, 10_000_000)
QUICK_SIZES = (10_000, 100_000)
BEDROCK_SIZES = (10_000, 100_000, 1_000_000)  # real models cost real money: 10M tokens only when asked


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    return (
        f"{platform.system()} {platform.release()}, {cpu}, {os.cpu_count()} cores, {memory:.0f} GiB, "
        f"Python {platform.python_version()}"
    )


def commit() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    return (done.stdout.strip() or "unknown") + (" (with uncommitted changes)" if dirty else "")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes only (a few minutes): to check the suite")
    parser.add_argument("--bedrock", action="store_true", help="real models on Amazon Bedrock (needs credentials)")
    parser.add_argument("--root-model", default=harness.ROOT_MODEL, help="root model id (with --bedrock)")
    parser.add_argument("--sub-model", default=harness.SUB_MODEL, help="sub-model id (with --bedrock)")
    parser.add_argument(
        "--only", choices=("tasks", "micro", "savings"), help="run one half of the suite (or only the savings figures)"
    )
    parser.add_argument("--sizes", help="corpus sizes in tokens, comma-separated (default 10K to 10M)")
    parser.add_argument("--sub-latency", type=float, default=0.1, help="simulated seconds per sub-call (offline)")
    parser.add_argument("--load-mb", type=int, help="size of the large-file loads (default 1024; not in --quick)")
    parser.add_argument("--trec", type=Path, default=ROOT.parent / "shared" / "data" / "trec", help="TREC files")
    parser.add_argument("--work", type=Path, help="scratch directory for corpora (default: a temporary one)")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results.json")
    parser.add_argument("--report", type=Path, default=ROOT / "BENCHMARKS.md")
    parser.add_argument("--plot", type=Path, default=ROOT / "benchmarks" / "scaling.png")
    parser.add_argument("--report-only", action="store_true", help="rewrite BENCHMARKS.md from --results")
    return parser.parse_args(argv)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


async def main(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    quick = args.quick
    default = QUICK_SIZES if quick else (BEDROCK_SIZES if args.bedrock else FULL_SIZES)
    sizes = tuple(int(s) for s in args.sizes.split(",")) if args.sizes else default
    trec = corpora.read_trec(args.trec) if (args.trec / "train_5500.label").exists() else None
    if trec is None:
        log(f"TREC files not found in {args.trec}: the OOLONG tasks are left out")
    loadavg = os.getloadavg()
    results: dict[str, Any] = {
        "meta": {
            "command": shlex.join(["python3", "-m", "benchmarks", *sys.argv[1:]]),
            "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "commit": commit(),
            "machine": machine(),
            "loadavg": " ".join(f"{x:.2f}" for x in loadavg),
            "loaded": loadavg[0] > 0.5 * (os.cpu_count() or 1),
            "mode": "real models on Amazon Bedrock" if args.bedrock else "offline (Converse fake, scripted root)",
            "root_model": args.root_model,
            "sub_model": args.sub_model,
            "sub_latency_s": args.sub_latency,
        },
        "tasks": [],
        "micro": {},
    }
    fake = None if args.bedrock else ConverseFake().start()
    target = harness.Target(None if fake is None else fake.url, args.root_model, args.sub_model)
    try:
        if args.only in (None, "tasks"):
            for tokens in sizes:
                for task in all_tasks(trec):
                    log(f"task {task.name} at {tokens:,} tokens")
                    row = await run.run_task(task, tokens, work, target, fake, args.sub_latency)
                    log(f"  score {row['score']}, {row['sub_calls']} sub-calls, {row['wall_s']} s")
                    results["tasks"].append(row)
        if args.only == "savings" and fake is not None:
            log("micro: resuming and the sub-call cache")
            results["micro"]["savings"] = await savings.measure(work, fake, target)
        if args.only in (None, "micro") and fake is not None:
            m = results["micro"]
            log("micro: starting a sandbox worker (forked, from nothing, a bare interpreter)")
            m["worker_start"] = await starts.worker_start(rounds=5 if quick else 20)
            log("micro: loading a 200 MB file, side by side with open().read()")
            m["load"] = await micro.load(work, target, 200, repeats=3 if quick else 5, kinds=("ascii",))
            if not quick:
                load_mb = args.load_mb or 1024
                log(f"micro: loading {load_mb} MB files")
                m["load"] += await micro.load(work, target, load_mb, repeats=3)
            log("micro: sessions sharing a file")
            m["shared"] = await micro.shared(work, target, 32 if quick else 256)
            log("micro: repl_exec round trip")
            m["repl"] = await micro.repl_overhead(work, target, calls=200 if quick else 500)
            log("micro: sandboxed code against plain CPython")
            m["guarded"] = await guarded.guarded(work, target, 24 if quick else 100, repeats=3 if quick else 7)
            log("micro: 32 simultaneous loads over HTTP")
            m["crowd"] = await crowd.concurrent_loads(work, target, 32, rounds=1 if quick else 3)
            log("micro: fan-out")
            m["fan_out"] = await micro.fan_out(work, fake, target)
            log("micro: root tokens against corpus size")
            m["root_tokens"] = await micro.root_tokens(work, fake, target, (100, 10_240 if quick else 102_400))
            log("micro: resuming and the sub-call cache")
            m["savings"] = await savings.measure(work, fake, target)
            log("micro: map-reduce helpers against hand-written fan-out")
            m["map_reduce"] = await mapreduce.measure(
                work, target, fake, trec, 10_000 if quick else 100_000, args.sub_latency
            )
            log("micro: real model-written code, in the sandbox and in plain CPython")
            m["compat"] = await compat_share()
            if trec is not None:
                log("micro: parallel speed-up")
                m["speedup"] = await micro.parallel_speedup(work, fake, target, trec, 100_000 if quick else 1_000_000)
    finally:
        if fake is not None:
            fake.stop()
    return results


async def compat_share() -> dict[str, Any]:
    """The compatibility corpus replayed on both sides (``python -m benchmarks.compat`` lists the cells)."""
    from benchmarks.compat import report as compat_report
    from benchmarks.compat.corpus import load_corpus
    from benchmarks.compat.replay import run_corpus

    return compat_report.summary(await run_corpus(load_corpus()))


def write(results: dict[str, Any], args: argparse.Namespace) -> None:
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(results, indent=1) + "\n")
    plotted = bool(results.get("tasks")) and report.plot(results["tasks"], args.plot)
    if results.get("tasks") and not plotted:
        log("matplotlib is not installed (pip install -e '.[bench]'): BENCHMARKS.md has no plot")
    name = Path(os.path.relpath(args.plot, args.report.parent)).as_posix() if plotted else None
    args.report.write_text(report.markdown(results, name))
    log(f"wrote {args.results} and {args.report}")


def cli(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.report_only:
        write(json.loads(args.results.read_text()), args)
        return
    if args.work is not None:
        args.work.mkdir(parents=True, exist_ok=True)
        results = anyio.run(main, args, args.work.resolve())
    else:
        with tempfile.TemporaryDirectory(prefix="rlm-bench-") as tmp:
            results = anyio.run(main, args, Path(tmp).resolve())
    write(results, args)


if __name__ == "__main__":
    cli()
