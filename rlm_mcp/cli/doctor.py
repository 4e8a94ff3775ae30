"""``rlm-mcp doctor``: check this machine and these settings, one line per finding.

Exit status 0 when nothing failed (warnings allowed), 1 when a check failed.
``--json`` prints the same checks as JSON; ``--no-network`` skips the model calls.
"""

from __future__ import annotations

import argparse
import json
import sys

import anyio
from pydantic import ValidationError

from rlm_mcp.cli import checks as doctor
from rlm_mcp.cli.flags import add_setting_flags, settings_from_args
from rlm_mcp.config import Settings, describe_setting

EXAMPLE = """

example:
  rlm-mcp doctor --no-network
  rlm-mcp doctor --sub-model openai:llama3.1:8b --openai-base-url http://localhost:11434/v1 --json
"""


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "doctor",
        help="check Python, the sandbox's confinement, models, roots, data directory and client configurations",
        description="Check what rlm-mcp needs on this machine, with these settings, and say what to fix." + EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--no-network",
        "--offline",
        dest="network",
        action="store_false",
        help="do not call the models (by default each configured model gets one call of a few tokens)",
    )
    parser.add_argument("--json", action="store_true", help="print the checks as JSON")
    add_setting_flags(parser)


def _settings(args: argparse.Namespace) -> tuple[Settings | None, str | None]:
    try:
        return settings_from_args(args), None
    except ValidationError as exc:
        return None, "; ".join(f"{describe_setting(str(e['loc'][0]))}: {e['msg']}" for e in exc.errors())


def run(args: argparse.Namespace) -> int:
    settings, problem = _settings(args)
    checks = anyio.run(doctor.run_checks, settings, problem, args.network)
    if args.json:
        print(json.dumps({"ok": not doctor.failed(checks), "checks": [c.as_dict() for c in checks]}, indent=2))
    else:
        width = max(len(c.name) for c in checks)
        for check in checks:
            print(f"{check.status:<4}  {check.name:<{width}}  {check.message}")
        counts = {status: sum(c.status == status for c in checks) for status in ("OK", "WARN", "FAIL")}
        print(f"{counts['OK']} OK, {counts['WARN']} WARN, {counts['FAIL']} FAIL", file=sys.stderr)
    return 1 if doctor.failed(checks) else 0
