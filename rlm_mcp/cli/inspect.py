"""``rlm-mcp trajectory [ID] [--html FILE]`` and ``rlm-mcp sessions``: what is in the data directory.

Both read the files a server writes (they work whether or not a server is
running, and change nothing): a trajectory as a text summary, JSON or the
viewer's HTML page; the sessions a server would revive, with their runs.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

import anyio

from rlm_mcp import viewer
from rlm_mcp.config import Settings
from rlm_mcp.core.trajectories import TrajectoryStore
from rlm_mcp.core.trajectory_summary import summarize
from rlm_mcp.errors import RLMError
from rlm_mcp.models.pricing import PriceTable
from rlm_mcp.schemas import Trajectory
from rlm_mcp.store import open_store

CODE_WIDTH = 60


def add_parsers(commands: argparse._SubParsersAction) -> list[argparse.ArgumentParser]:
    trajectory = commands.add_parser(
        "trajectory",
        help="show a trajectory, or write it as an HTML page; without an id, list recent ones",
        description="Show a trajectory from the data directory: a summary, --json, or --html FILE (- for stdout).\n"
        "\nexamples:\n  rlm-mcp trajectory\n  rlm-mcp trajectory t_0123abcd --html run.html\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    trajectory.add_argument("id", nargs="?", help="a trajectory id (t_...), from rlm_query or load_context")
    trajectory.add_argument("--html", metavar="FILE", help="write the viewer page to FILE ('-' for stdout)")
    trajectory.add_argument("--json", action="store_true", help="print the trajectory as JSON")
    trajectory.add_argument("--full", action="store_true", help="with --json: code, output and sub-calls in full")
    trajectory.add_argument("--limit", type=int, default=20, help="how many to list without an id (default 20)")
    sessions = commands.add_parser(
        "sessions",
        help="list the sessions a server keeps in the data directory, with their runs",
        description="List stored sessions: their corpus, when they were last used, and the trajectories of their "
        "runs.\n\nexample:\n  rlm-mcp sessions --json\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sessions.add_argument("--json", action="store_true", help="print them as JSON")
    return [trajectory, sessions]


def _when(unix: float) -> str:
    return datetime.datetime.fromtimestamp(unix).strftime("%Y-%m-%d %H:%M:%S")


def _one_line(text: str | None, width: int) -> str:
    line = " ".join((text or "").split())
    return line if len(line) <= width else line[: width - 1] + "…"


def _cost_text(t: Trajectory, prices: PriceTable) -> str:
    if t.cost_usd is not None:
        return f"${t.cost_usd:.4f}"
    models = [m for m in dict.fromkeys((t.root_model, t.sub_model)) if m and prices.lookup(m) is None]
    return f"unknown (no price for {', '.join(models)})" if models else "unknown"


def _print_summary(t: Trajectory, prices: PriceTable) -> None:
    u = t.usage
    print(f"{t.id}  {t.kind}  {t.status}  created {_when(t.created_at)}  session {t.session_id}")
    if t.parent_id:
        print(f"nested run of {t.parent_id} (depth {t.depth})")
    if t.query is not None:
        print(f"question: {t.query}")
    if t.answer is not None:
        print(f"answer:   {t.answer}")
    if t.message:
        print(f"message:  {t.message}")
    cost = _cost_text(t, prices)
    print(
        f"{len(t.steps)} steps, {t.sub_calls} sub-calls, tokens root {u.root_input_tokens:,}/{u.root_output_tokens:,} "
        f"sub {u.sub_input_tokens:,}/{u.sub_output_tokens:,}, cost {cost}"
    )
    for damage in t.damaged:
        print(f"DAMAGED: {damage.where}: {damage.problem}")
    for step in t.steps:
        flags = (" ERROR " + step.error.type if step.error else "") + (" FINAL" if step.final is not None else "")
        nested = f" +{len(step.child_runs)} nested" if step.child_runs else ""
        print(
            f"  {step.index + 1:>3}  {step.elapsed_ms / 1000:7.2f} s  {step.sub_call_count:>4} sub-calls{nested}  "
            f"{_one_line(step.code or step.root_text, CODE_WIDTH)}{flags}"
        )


async def _trajectory(settings: Settings, args: argparse.Namespace) -> int:
    store = TrajectoryStore(open_store(settings).sub("trajectories"))
    if args.id is None:
        for t in await store.recent(args.limit):
            print(f"{t.id}  {_when(t.updated_at)}  {t.kind:<7}  {t.status:<13}  {_one_line(t.query or '', 60)}")
        return 0
    trajectory = await store.read(args.id)
    if args.html is not None:
        page = await viewer.render_trajectory(args.id, store.read, PriceTable(settings.prices_file))
        if args.html == "-":
            sys.stdout.write(page)
        else:
            Path(args.html).write_text(page, encoding="utf-8")
            print(f"wrote {args.html}", file=sys.stderr)
    elif args.json:
        shown = trajectory if args.full else summarize(trajectory)
        print(shown.model_dump_json(indent=2))
    else:
        _print_summary(trajectory, PriceTable(settings.prices_file))
    return 0


async def _sessions(settings: Settings, args: argparse.Namespace) -> int:
    from rlm_mcp.core.sessions import SessionManager

    shared = open_store(settings)
    store = TrajectoryStore(shared.sub("trajectories"))
    records = await SessionManager(settings, store, shared.sub("sessions")).stored()
    runs: dict[str, list[str]] = {}
    for t in await store.recent(limit=1000):
        if t.kind == "run":
            runs.setdefault(t.session_id, []).append(t.id)
    rows = [
        {
            "session_id": r["id"],
            "trajectory_id": r.get("trajectory_id"),
            "created_at": r.get("created_at"),
            "last_used": r.get("last_used"),
            "documents": [d.get("name") for d in r.get("documents", [])],
            "runs": runs.get(r["id"], []),
            **({"damaged": r["damaged"]} if "damaged" in r else {}),
        }
        for r in records
    ]
    if args.json:
        print(json.dumps({"sessions": rows}, indent=2))
        return 0
    if not rows:
        print(f"no stored sessions in {settings.data_dir}")
    for row in sorted(rows, key=lambda r: r["last_used"] or 0, reverse=True):
        if "damaged" in row:
            print(f"{row['session_id']}  last used {_when(row['last_used'])}  DAMAGED: {row['damaged']}")
            continue
        docs = row["documents"]
        shown = ", ".join(docs[:3]) + (f" and {len(docs) - 3} more" if len(docs) > 3 else "")
        print(f"{row['session_id']}  last used {_when(row['last_used'])}  {len(docs)} documents: {shown}")
        print(f"    trajectory {row['trajectory_id']}" + (f"; runs {', '.join(row['runs'])}" if row["runs"] else ""))
    return 0


def run(args: argparse.Namespace, settings: Settings) -> int:
    handler = _trajectory if args.command == "trajectory" else _sessions
    try:
        return anyio.run(handler, settings, args)
    except RLMError as exc:
        print(f"rlm-mcp {args.command}: {exc}", file=sys.stderr)
        return 2
