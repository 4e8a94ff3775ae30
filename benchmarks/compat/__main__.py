"""``python -m benchmarks.compat``: replay the compatibility corpus and print the share that runs as in CPython."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import anyio

from benchmarks.compat.corpus import KNOWN_REFUSALS, load_corpus, write_known_refusals


def _use_sandbox_from(root: Path) -> None:
    """Import another checkout's ``sandbox`` package (a branch's worktree) before the replay imports one."""
    if "sandbox" in sys.modules:
        raise SystemExit("--sandbox-from must act before the sandbox package is imported")
    sys.path.insert(0, str(root))
    try:
        import sandbox
    finally:
        sys.path.remove(str(root))
    if not Path(sandbox.__file__).resolve().is_relative_to(root.resolve()):
        raise SystemExit(f"no sandbox package under {root}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.compat", description=__doc__)
    parser.add_argument("--json", type=Path, help="also write the summary as JSON to this file")
    parser.add_argument("--failures", action="store_true", help="list every harmless cell that differs, with why")
    parser.add_argument(
        "--write-known",
        action="store_true",
        help=f"rewrite {KNOWN_REFUSALS.relative_to(KNOWN_REFUSALS.parents[2])} from this run (the test's xfail list)",
    )
    parser.add_argument(
        "--sandbox-from",
        type=Path,
        metavar="CHECKOUT",
        help="replay in the sandbox package of another checkout, e.g. a worktree of a branch under review",
    )
    args = parser.parse_args(argv)
    if args.sandbox_from:
        _use_sandbox_from(args.sandbox_from)
    import sandbox
    from benchmarks.compat import report
    from benchmarks.compat.replay import run_corpus

    outcomes = anyio.run(run_corpus, load_corpus())
    data = report.summary(outcomes)
    print(f"Sandbox: {Path(sandbox.__file__).resolve().parent}")
    print(report.render(data))
    failed = report.failures(outcomes)
    if args.failures:
        print("\nCells that differ:")
        for cell_id, reason in failed.items():
            print(f"  {cell_id}: {reason}")
    if args.json:
        args.json.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    if args.write_known:
        write_known_refusals(failed)
        print(f"\nwrote {len(failed)} known refusals to {KNOWN_REFUSALS}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
