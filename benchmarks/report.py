"""BENCHMARKS.md and its plot, generated from ``results.json`` so that a re-run is one command."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from benchmarks import goals
from benchmarks.savings import report_lines as savings_lines
from benchmarks.stats import shown

MB = 1024 * 1024


def _mb(n: int | float) -> str:
    return f"{n / MB:,.0f} MB" if n >= MB else f"{n / 1024:,.0f} KB"


def _tokens(n: int) -> str:
    return f"{n / 1e6:g}M" if n >= 1_000_000 else f"{n / 1e3:g}K"


def _met(ok: bool | None) -> str:
    return "n/a" if ok is None else ("**met**" if ok else "**not met**")


def targets(results: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(target, measured, verdict) for each target of issue 5 that this run measured."""
    rows: list[tuple[str, str, str]] = []
    micro = results.get("micro", {})
    loads = {row["kind"]: row for row in micro.get("load", [])}
    if "ascii" in loads:
        a = loads["ascii"]
        size = _mb(a["file_bytes"])
        rows.append(
            (
                f"load {size} of ASCII text in at most 2x a fresh `open(p).read()`",
                f"{a['load_s']} s vs {a['floor_s']} s: {a['time_ratio']}x",
                _met(a["time_ratio"] <= 2.0),
            )
        )
        rows.append(
            (
                "peak RSS of server + worker under 1.5x the corpus (ASCII)",
                f"{_mb(a['peak_bytes'])} for {size}: {a['memory_ratio']}x",
                _met(a["memory_ratio"] < 1.5),
            )
        )
        rows.append(
            (
                "the server holds no copy of the corpus",
                f"the server's peak grew by {_mb(a['server_growth_bytes'])} while loading {size} "
                f"(peak {_mb(a['server_peak_bytes'])}, most of it Python, boto3 and the MCP SDK)",
                _met(a["server_growth_bytes"] < 0.05 * a["file_bytes"]),
            )
        )
    for kind, label in (("non-latin", "Cyrillic and CJK"), ("mixed", "ASCII with one CJK line at the end")):
        if kind in loads:
            row = loads[kind]
            rows.append(
                (
                    f"report: {label} ({_mb(row['file_bytes'])}, {row['chars']:,} characters)",
                    f"{row['load_s']} s ({row['time_ratio']}x the floor), peak {_mb(row['peak_bytes'])} "
                    f"({row['memory_ratio']}x the file)",
                    "reported",
                )
            )
    if "repl" in micro:
        repl = micro["repl"]
        rows.append(
            (
                "repl_exec round trip through MCP stdio under 5 ms (median)",
                f"{repl['repl_exec']['median_ms']} ms (a trivial tool of the same server: "
                f"{repl['list_sessions']['median_ms']} ms)",
                _met(repl["repl_exec"]["median_ms"] < 5),
            )
        )
    if "guarded" in micro:
        ratios = [row["ratio"] for row in micro["guarded"]]
        median = statistics.median(ratios)
        rows.append(
            (
                "sandboxed code at most 1.3x plain CPython (median), no operation over 2x",
                f"median {median:.2f}x, worst {max(ratios):.2f}x",
                _met(median <= 1.3 and max(ratios) <= 2.0),
            )
        )
    if "crowd" in micro:
        c = micro["crowd"]
        rows.append(
            (
                f"report: wait of {c['clients']} simultaneous load_context calls over HTTP (p99, max)",
                f"p99 {c['p99_s']} s, max {c['max_s']} s, median {c['median_s']} s (one load alone: {c['alone_s']} s)",
                "reported",
            )
        )
    if "fan_out" in micro:
        fan = micro["fan_out"]
        rows.append(
            (
                "200 sub-calls at 250 ms, concurrency 16, within 1.15x of the ideal",
                f"{fan['wall_s']} s vs {fan['ideal_s']} s: {fan['ratio']}x (max in flight {fan['max_in_flight']})",
                _met(fan["ratio"] <= 1.15),
            )
        )
        rows.append(
            (
                "per-call overhead under 2 ms",
                f"{fan['overhead_ms']} ms: {fan['per_call_ms']} ms per sub-call one at a time at zero latency, less "
                f"{fan['fake_floor_ms']} ms that the fake's own HTTP server takes; {fan['amortized_ms']} ms per call "
                "beyond the ideal in the fan-out",
                _met(fan["overhead_ms"] < 2),
            )
        )
    if micro.get("root_tokens"):
        small, large = micro["root_tokens"][0], micro["root_tokens"][-1]
        change = abs(large["root_input_tokens"] - small["root_input_tokens"]) / small["root_input_tokens"]
        rows.append(
            (
                f"root input tokens at {_mb(small['corpus_bytes'])} vs {_mb(large['corpus_bytes'])} differ < 10%",
                f"{small['root_input_tokens']:,} vs {large['root_input_tokens']:,}: {change:.1%}",
                _met(change < 0.10),
            )
        )
    if "compat" in micro:
        c = micro["compat"]
        rows.append(
            (
                "harmless model-written RLM code runs as in plain CPython (every cell)",
                f"{c['harmless_same']}/{c['harmless_cells']} cells "
                f"({100 * c['harmless_same'] / max(c['harmless_cells'], 1):.1f}%) over {c['trajectories']} runs"
                + "".join(f"; refused: {cause} ({n['refused_cells']})" for cause, n in c["causes"].items())
                + (f"; harmful cells not refused: {c['harmful_not_refused']}" if c["harmful_cells"] else ""),
                _met(c["harmless_same"] == c["harmless_cells"] and c["harmful_not_refused"] == 0),
            )
        )
    if "savings" in micro:
        saved = micro["savings"]
        rows.append(
            (
                "a second identical run sends zero sub-calls",
                f"{saved['repeat']['sent']} sent, {saved['repeat']['cached']} from the cache",
                _met(saved["repeat"]["sent"] == 0),
            )
        )
        rows.append(
            (
                "a resumed run after a budget stop pays only the remaining sub-calls",
                f"{saved['stopped']['sent']} before the stop + {saved['resumed']['sent']} after it = "
                f"{saved['first']['sent']} for a whole run",
                _met(saved["stopped"]["sent"] + saved["resumed"]["sent"] == saved["first"]["sent"]),
            )
        )
    return rows


def _task_table(tasks: list[dict[str, Any]]) -> list[str]:
    out = [
        "| task | corpus | score | coverage | seen twice | sub-calls | root turns | root in / out tokens | "
        "sub in / out tokens | wall | speed-up | peak memory | est. cost |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in tasks:
        cost = "n/a" if r.get("cost_unknown") else f"${r['cost_usd']:.4f}"
        speed = "-" if r.get("speedup") is None else f"{r['speedup']}x"
        coverage = "n/a | n/a" if r["coverage"] is None else f"{r['coverage']:.1%} | {r['repeated']:.1%}"
        out.append(
            f"| {r['title']} | {_tokens(r['tokens'])} tokens | {r['score']:.3f} | {coverage} | "
            f"{r['sub_calls']:,} | {r['iterations']} | "
            f"{r['root_input_tokens']:,} / {r['root_output_tokens']:,} | "
            f"{r['sub_input_tokens']:,} / {r['sub_output_tokens']:,} | {r['wall_s']:.2f} s | {speed} | "
            f"{_mb(r['peak'])} | {cost} |"
        )
    return out


def _map_reduce(rows: list[dict[str, Any]]) -> list[str]:
    """The scripted tasks with hand-written fan-out against the same steps with ``split_chunks``/``llm_map``."""
    out = [
        "## Map-reduce helpers",
        "",
        f"Each scripted task at {_tokens(rows[0]['tokens'])} tokens, as written (its own chunking functions and "
        "`llm_query_batched`) and with `split_chunks`/`llm_map` in their place, step for step, in a fresh session "
        "each; then again with a sub-model whose first answer in a run is an error (Bedrock's "
        "`ModelErrorException`). The scripted roots cannot react to an error, so a run that fails repeats its last "
        "step up to the limit of 8 turns; a real root would spend at least one more turn retrying `e.failed`.",
        "",
        "| task | sub-model | variant | score | root turns | sub-calls (failed) | lines of root code | "
        "root output tokens | finished |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        out.append(
            f"| {r['title']} | {'first answer fails' if r['flaky'] else 'exact'} | {r['variant']} | "
            f"{r['score']:.3f} | {r['iterations']} | {r['sub_calls']} ({r['failed_sub_calls']}) | {r['code_lines']} | "
            f"{r['root_output_tokens']:,} | {'no' if r['incomplete'] else 'yes'} |"
        )
    out.append("")
    return out


def _compat(c: dict[str, Any]) -> list[str]:
    lines = [
        "## Real model-written code",
        "",
        "The compatibility corpus (`tests/compat/`, each cell with its source) replayed in order, run by run, in "
        "the sandbox and in plain CPython; a cell counts when its output and error are the same on both sides "
        "(`python -m benchmarks.compat --failures` lists the others, with why).",
        "",
        "| source | same as CPython |",
        "|---|---|",
    ]
    lines += [f"| {name} | {v['same']}/{v['cells']} |" for name, v in c["groups"].items()]
    causes = ", ".join(f"{cause} ({n['refused_cells']})" for cause, n in c["causes"].items()) or "none"
    lines += ["", f"Refused although harmless, by cause: {causes}.", ""]
    return lines


def plot(tasks: list[dict[str, Any]], path: Path) -> bool:
    """Time, memory and cost against corpus size, one line per task; False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib import ticker
    except ImportError:
        return False
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    panels = (
        ("wall time (s)", lambda r: r["wall_s"]),
        ("peak memory, server + worker (MB)", lambda r: r["peak"] / MB),
        ("estimated cost (USD)", lambda r: r["cost_usd"]),
    )
    for ax, (label, value) in zip(axes, panels, strict=True):
        for name in dict.fromkeys(r["task"] for r in tasks):
            rows = sorted((r for r in tasks if r["task"] == name), key=lambda r: r["tokens"])
            ax.plot([r["tokens"] for r in rows], [value(r) for r in rows], marker="o", label=name)
        ax.set_xscale("log")
        ax.set_yscale("log")
        # 1-2-5 steps, so a panel spanning less than a decade (memory) still gets labelled ticks.
        ax.yaxis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(ticker.NullFormatter())
        ax.set_xlabel("corpus size (tokens)")
        ax.set_title(label)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def markdown(results: dict[str, Any], plot_name: str | None) -> str:
    meta = results["meta"]
    micro = results.get("micro", {})
    lines = [
        "# Benchmarks",
        "",
        "Generated by `benchmarks/` from `benchmarks/results.json`; do not edit by hand. To re-run everything "
        "(offline, about ten minutes on 2 cores):",
        "",
        "```bash",
        'python3 -m pip install -e ".[dev,bench]" && python3 -m benchmarks',
        "```",
        "",
        f"- command: `{meta['command']}`",
        f"- when: {meta['date']}; commit `{meta['commit']}`",
        f"- machine: {meta['machine']}",
        f"- load average when the run started: {meta['loadavg']}"
        + (" (**a loaded machine: timings are noisy**)" if meta.get("loaded") else ""),
        f"- mode: {meta['mode']}",
        "",
        "How it works: each task starts the real server (`rlm-mcp` over MCP stdio, one process per corpus), loads "
        "the corpus with `load_context` and asks `rlm_query`. Offline, the root is a **scripted** program (the code a "
        "capable root writes: probe, chunk, `llm_query_batched`, aggregate in code, `FINAL`) and the sub-model an "
        "**oracle** that answers each prompt exactly from the text it was sent, both served by the local Converse "
        "fake through boto3, so the whole Bedrock code path runs. The scores therefore check that rlm-mcp delivers "
        "every chunk and every answer intact (an oracle cannot make up for a lost chunk), not what a model would "
        "score; tokens are the fake's estimate (4 characters per token) and costs apply the price table "
        f"({meta['root_model']} root, {meta['sub_model']} sub-model) to them. Sub-calls take "
        f"{meta['sub_latency_s']} s each (simulated model latency), 16 at a time. `--bedrock` runs the same tasks "
        "with real models instead (see below).",
        "",
    ]
    rows = targets(results)
    if rows:
        lines += ["## Targets", "", "| target | measured | |", "|---|---|---|"]
        lines += [f"| {t} | {m} | {v} |" for t, m, v in rows]
        lines.append("")
    goal_rows = goals.rows(micro)
    if goal_rows:
        lines += [
            "## Goals of issue 13",
            "",
            "Each figure is measured side by side with its floor in the same run (interleaved, pair by pair: the "
            "machine's load falls on both alike), as the median with the 10th-90th percentile spread of the pairs.",
            "",
            "| goal | measured | |",
            "|---|---|---|",
        ]
        lines += [f"| {t} | {m} | {v} |" for t, m, v in goal_rows]
        lines.append("")
    if results.get("tasks"):
        lines += ["## Tasks", ""]
        lines += [
            "Score: exact match (S-NIAH, multi-hop), OOLONG's 0.75^|error| for counts, F1 for pairs and for the "
            "code question that lists functions, the mean over the three code questions. Coverage: the share of the "
            "corpus's lines the sub-model saw; seen twice: lines sent again (the multi-hop task's second hop sends "
            "the documents that name the person). Speed-up: the sub-calls' summed latency over the wall time of the "
            "steps that made them. Peak memory: server plus sandbox worker, peak resident set; past a few MB it "
            "is dominated by the one batch of sub-calls in flight (the chunks, the prompts, and the request frame "
            "on both sides of the sandbox channel, several copies of the corpus's size), not by the corpus.",
            "",
        ]
        lines += _task_table(results["tasks"])
        lines.append("")
        if plot_name:
            lines += [f"![time, memory and cost against corpus size]({plot_name})", ""]
    if "worker_start" in micro:
        w = micro["worker_start"]
        lines += [
            "## Starting a sandbox worker",
            "",
            "Every new session, and every load that outgrows its worker, starts a confined worker first. Measured "
            f"in turn, {w['rounds']} rounds: a worker forked by the template (`RLM_WORKER_TEMPLATE=true`, the "
            f"default) took {shown(w['forked_ms'], ' ms')} until ready, using {w['forked_cpu_ms']} ms of CPU; one "
            f"started from nothing (a fresh `python -I -B`, its imports, its confinement) {shown(w['cold_ms'], ' ms')}"
            f", using {w['cold_cpu_ms']} ms of CPU; a bare `python -I -c pass` {shown(w['python_ms'], ' ms')}. The "
            f"template itself started in {w['template_start_s']} s, once, when the server did.",
            "",
        ]
    if "load" in micro:
        lines += [
            "## Loading a large local file",
            "",
            "Until code can run on it: `load_context` (a new session) plus a first `repl_exec`, against a fresh "
            '`python -c "open(p).read()"` (the floor), one of each in turn on one running server; the ratio is the '
            "median of the pairs' ratios.",
            "",
            "| text | file | characters | floor | rlm-mcp | ratio | peak server + worker | of the file | server peak "
            "(growth) |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in micro["load"]:
            lines.append(
                f"| {r['kind']} | {_mb(r['file_bytes'])} | {r['chars']:,} | {r['floor_s']} s | {r['load_s']} s | "
                f"{r['time_ratio']}x | {_mb(r['peak_bytes'])} | {r['memory_ratio']}x | {_mb(r['server_peak_bytes'])} "
                f"({_mb(r['server_growth_bytes'])}) |"
            )
        lines += [
            "",
            "The worker decodes the file in 8 MB chunks into one growing `str` that CPython resizes in place, so "
            "the peak is the string plus a chunk; the server passes a file descriptor and reads nothing. CPython "
            "stores a string at 1, 2 or 4 bytes per character, the widest any of its characters needs: Cyrillic "
            "and CJK text is 2 bytes per character in memory (less than its 2 to 3 bytes in UTF-8), and an ASCII "
            "file with one CJK character becomes 2 bytes per character throughout, with one copy at the moment the "
            "first such character arrives (the `mixed` row is that worst case). The sandbox's memory limit "
            "reserves 5 bytes per byte of corpus for this reason.",
            "",
        ]
    if "shared" in micro:
        s = micro["shared"]
        lines += [
            "## Sessions sharing a file",
            "",
            f"Two sessions loading the same {_mb(s['file_bytes'])} local file: {s['local_load_s'][0]} s and "
            f"{s['local_load_s'][1]} s; the server's peak stays at {_mb(s['local_server_peak_bytes'])} (it copies "
            "nothing: each worker reads the file, from the page cache, into its own string). The same text "
            f"gzip-compressed: {s['gzip_load_s'][0]} s the first time (decompressed once to a derived file, "
            f"{s['gzip_derived_files']} file in the store) and {s['gzip_load_s'][1]} s the second (the derived file "
            "is reused).",
            "",
        ]
    if "repl" in micro:
        r = micro["repl"]
        lines += [
            "## REPL step",
            "",
            "| call through MCP stdio | median | p90 |",
            "|---|---|---|",
            f"| `list_sessions` (a trivial tool: the SDK's own cost) | {r['list_sessions']['median_ms']} ms | "
            f"{r['list_sessions']['p90_ms']} ms |",
            f"| `repl_exec` with `x = 1` | {r['repl_exec']['median_ms']} ms | {r['repl_exec']['p90_ms']} ms |",
            "",
        ]
        if "ours_ms" in r:
            lines += [
                "The two calls alternate, so each `repl_exec` has a `list_sessions` beside it: rlm-mcp's own part "
                f"(the difference, pair by pair) is {shown(r['ours_ms'], ' ms')}.",
                "",
            ]
    if "guarded" in micro:
        lines += [
            "## Sandboxed code against plain CPython",
            "",
            "The same code, timing its own CPU time (`time.process_time()`), in a plain `python` process and in "
            "the sandbox (RestrictedPython policy, module proxies, worker limits), each holding the corpus read by "
            "the same loader, one after the other for each repeat; medians, and the ratio is the median of the "
            "pairs' ratios. The policy adds no call to reads, items or iteration: for these operations the sandbox "
            "compiles the same bytecode as plain `compile()`.",
            "",
            "| operation | plain | sandbox | ratio |",
            "|---|---|---|---|",
        ]
        lines += [f"| {r['op']} | {r['plain_s']} s | {r['sandbox_s']} s | {r['ratio']}x |" for r in micro["guarded"]]
        lines.append("")
    if "crowd" in micro:
        c = micro["crowd"]
        lines += [
            "## Simultaneous loads",
            "",
            f"{c['clients']} MCP clients over streamable HTTP, released together, each calling `load_context` "
            f"(a new session, so a new sandbox) on a server with `RLM_MAX_SESSIONS={c['clients']}`, "
            f"{c['rounds']} round(s): the wait each client saw was {c['median_s']} s at the median, "
            f"{c['p99_s']} s at the 99th percentile and {c['max_s']} s at most (per round: "
            f"{', '.join(f'{x} s' for x in c['round_max_s'])}); one load alone takes {c['alone_s']} s. Sandboxes "
            "start side by side, so the last client waits for the machine's cores, not for every start before it.",
            "",
        ]
    if "fan_out" in micro:
        f = micro["fan_out"]
        lines += [
            "## Fan-out",
            "",
            f"{f['calls']} sub-calls in one `llm_query_batched`, {f['latency_s']} s each at the fake, concurrency "
            f"{f['concurrency']}, through `repl_exec` on a fresh server: the first batch took "
            f"{f.get('first_wall_s', '-')} s, the later ones {f['wall_s']} s, against the ideal {f['ideal_s']} s "
            f"({f.get('first_ratio', '-')}x and {f['ratio']}x), {f['amortized_ms']} ms per call beyond it. At zero "
            "latency and concurrency 1 the "
            f"whole path (sandbox, broker, boto3, HTTP, the fake) costs {f['per_call_ms']} ms per sub-call, of "
            f"which the fake's own HTTP server (the same request over a kept-alive connection) takes "
            f"{f['fake_floor_ms']} ms: rlm-mcp's part is {f['overhead_ms']} ms.",
            "",
        ]
    if "speedup" in micro:
        p = micro["speedup"]
        lines += [
            f"Parallel sub-calls: OOLONG counting at {_tokens(p['tokens'])} tokens ({p['sub_calls']} sub-calls of "
            f"0.25 s) takes {p['wall_s_c1']} s one at a time and {p['wall_s_c16']} s 16 at a time: "
            f"{p['speedup']}x faster.",
            "",
        ]
    if "savings" in micro:
        lines += savings_lines(micro["savings"])
    if "compat" in micro:
        lines += _compat(micro["compat"])
    if micro.get("root_tokens"):
        lines += [
            "## Root cost against corpus size",
            "",
            "| corpus | root input tokens | sub-calls | correct |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {_mb(r['corpus_bytes'])} | {r['root_input_tokens']:,} | {r['sub_calls']:,} | {r['correct']} |"
            for r in micro["root_tokens"]
        ]
        lines.append("")
    if micro.get("map_reduce"):
        lines += _map_reduce(micro["map_reduce"])
    lines += [
        "## Real models (`--bedrock`)",
        "",
        "`python3 -m benchmarks --bedrock --root-model ID --sub-model ID` runs the same tasks with a real root "
        "(it writes its own code; the scripted programs are not used) and a real sub-model on Amazon Bedrock, "
        "with your AWS credentials, and reports accuracy and cost per query the same way; the micro-benchmarks "
        "are skipped. Put its scores and costs next to the paper's (Zhang, Kraska and Khattab, arXiv 2512.24601, "
        "whose tables give score and cost per query for each task and root model); the tasks here are modelled on "
        "the paper's, not copies of them (a generated haystack, our own questions over the TREC data, a generated "
        "multi-hop and code corpus), so the comparison is indicative, and this report does not restate the "
        "paper's numbers. The results above are offline: this project's machines have no AWS access, so the "
        "`--bedrock` path has not been run here.",
        "",
        "## Data",
        "",
        "The OOLONG-style tasks use the TREC question classification data (Xin Li and Dan Roth, *Learning "
        "Question Classifiers*, COLING 2002), read at run time from `../shared/data/trec/` (or `--trec DIR`), "
        "used for internal benchmarking only and not redistributed here; its README there gives the source and "
        "terms. Everything else is generated from fixed seeds.",
        "",
    ]
    return "\n".join(lines)
