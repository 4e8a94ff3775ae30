"""``rlm-mcp gc [--dry-run] [--json]``: what the data directory holds, and removing what is past its limits.

The same clean-up a server runs at start-up and every ``RLM_GC_INTERVAL_S``
(see :mod:`rlm_mcp.core.retention`), from a shell, with the same settings. It is safe
while a server runs: what a session can still use is named by its stored record,
a run in progress by its lease, and a load in flight is protected by its age.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys

from rlm_mcp.config import Settings
from rlm_mcp.core.retention import MB, Retention
from rlm_mcp.store import StoreError, open_store


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = commands.add_parser(
        "gc",
        help="remove stored corpora, derived files, trajectories (with their runs' files), cached sub-call "
        "answers and session records past their limits",
        description="Show what the data directory (or RLM_STORE) holds per kind, and remove what is past the "
        "RLM_*_MAX_AGE_DAYS / RLM_*_MAX_MB limits (RLM_SUBCALL_CACHE_* for the sub-call cache) and used by no "
        "session or run. A run's transcript and snapshot go with its trajectory.",
    )
    parser.add_argument("--dry-run", action="store_true", help="only list what would be removed")
    parser.add_argument("--json", action="store_true", help="print the figures and the removals as JSON")
    return parser


def run(args: argparse.Namespace, settings: Settings) -> int:
    retention = Retention(settings, open_store(settings), settings.data_dir / "corpora")
    try:
        report = retention.collect(dry_run=args.dry_run)
    except (OSError, StoreError) as exc:
        print(f"rlm-mcp gc: {exc}", file=sys.stderr)
        return 2
    verb = "would remove" if args.dry_run else "removed"
    if args.json:
        removed = [{"kind": i.kind, "name": i.name, "bytes": i.size, "last_used": i.used} for i in report.removed]
        out = {"usage": report.usage.model_dump(), "dry_run": args.dry_run, "removed": removed}
        print(json.dumps(out | {"failed": report.failed}, indent=2))
        return 1 if report.failed else 0
    print(f"{report.usage.location}")
    for name, kind in report.usage.kinds.items():
        limits = []
        if kind.max_bytes:
            limits.append(f"at most {kind.max_bytes / MB:,.0f} MB")
        if kind.max_age_days:
            limits.append(f"{kind.max_age_days:g} days unused")
        shown = f" (limits: {', '.join(limits)})" if limits else ""
        if kind.goes_with:
            shown = f" (go with their {kind.goes_with}, whose limits count them)"
        print(f"  {name:<13} {kind.count:>7,} items  {kind.bytes / MB:>10,.1f} MB{shown}")
    for item in report.removed:
        when = datetime.datetime.fromtimestamp(item.used).strftime("%Y-%m-%d %H:%M")
        print(f"{verb} {item.kind}: {item.name} ({item.size:,} bytes, last used {when})")
    if not report.removed:
        print("nothing to remove: everything is within its limits or in use")
    for failure in report.failed:
        print(f"could not remove {failure}", file=sys.stderr)
    return 1 if report.failed else 0
