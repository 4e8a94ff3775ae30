"""``rlm-mcp install --client NAME``: add this server to an MCP client's configuration in one step.

Settings given as flags (``--sub-model openai:llama3.1:8b``, ``--allowed-roots ~/docs``, ...)
become the entry's environment, validated first; ``--env KEY=VALUE`` adds anything
else (``AWS_PROFILE``). ``--dry-run`` prints the resulting file and writes nothing.

The folders the server may read are never implied (desktop clients start
servers in ``/`` or their own folder): ``--allowed-roots`` is required, asked for
on a terminal, and written into the entry as absolute paths. ``--allowed-roots ''``
installs a server that reads no files (inline content and S3 only).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from pydantic import SecretStr, ValidationError

from rlm_mcp import install
from rlm_mcp.config import Settings, add_setting_flags, describe_errors
from rlm_mcp.errors import InvalidInput


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = commands.add_parser(
        "install",
        help="add this server to Claude Desktop, VS Code, Cursor or Claude Code",
        description="Merge an entry for rlm-mcp into an MCP client's configuration file (a backup is kept).",
    )
    parser.add_argument("--client", required=True, choices=sorted(install.CLIENTS), help="the client to configure")
    parser.add_argument("--name", default="rlm", help="the server's name in the client (default: rlm)")
    parser.add_argument(
        "--scope",
        choices=("user", "project"),
        default="user",
        help="user: for all your projects (default); project: the client's file in the current directory",
    )
    parser.add_argument("--config", type=Path, help="the configuration file to edit, instead of the client's usual one")
    parser.add_argument(
        "--env", action="append", default=[], metavar="KEY=VALUE", help="another variable for the server"
    )
    parser.add_argument("--dry-run", action="store_true", help="print the resulting file and change nothing")
    add_setting_flags(parser)
    return parser


def _env_value(value: Any) -> str:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, list):
        return os.pathsep.join(str(v) for v in value)
    return str(value)


ROOTS_PROMPT = (
    "Which folders may the server read? Separate them with '{sep}' (e.g. ~/Documents{sep}~/src/project); "
    "press Enter for none (inline content only): "
)


def ask_for_roots(args: argparse.Namespace) -> None:
    """``--allowed-roots`` must be decided: taken from the flag (or ``--env``), asked on a terminal, or refused."""
    if hasattr(args, "setting_allowed_roots") or any(e.startswith("RLM_ALLOWED_ROOTS=") for e in args.env):
        return
    if not sys.stdin.isatty():
        raise InvalidInput(
            "say which folders the server may read: --allowed-roots ~/Documents (several separated by "
            f"'{os.pathsep}'), or --allowed-roots '' for none; no folder is allowed by default"
        )
    print(ROOTS_PROMPT.format(sep=os.pathsep), end="", file=sys.stderr, flush=True)
    args.setting_allowed_roots = sys.stdin.readline().strip()


def server_env(args: argparse.Namespace) -> dict[str, str]:
    """The settings passed as flags, validated and written as the variables the server reads."""
    given = {key.removeprefix("setting_"): value for key, value in vars(args).items() if key.startswith("setting_")}
    try:
        settings = Settings(**given)
    except ValidationError as exc:
        raise InvalidInput(describe_errors(exc)) from None
    env = {
        ("AWS_REGION" if name == "aws_region" else f"RLM_{name.upper()}"): _env_value(getattr(settings, name))
        for name in given
    }
    for item in args.env:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidInput(f"--env takes KEY=VALUE, not {item!r}")
        env[key] = value
    return env


def run(args: argparse.Namespace) -> int:
    fmt = install.CLIENTS[args.client]
    try:
        path = args.config or install.config_path(args.client, args.scope)
        ask_for_roots(args)
        command, command_args = install.server_command()
        server = install.entry(args.client, command, command_args, server_env(args))
        outcome = install.merge(args.client, path, args.name, server)
        if args.dry_run:
            print(json.dumps(outcome.document, indent=2, ensure_ascii=False))
            state = "would change" if outcome.changed else "already has this entry:"
            print(f"rlm-mcp install: {path} {state} (dry run, nothing written)", file=sys.stderr)
        else:
            install.write(outcome)
            if not outcome.changed:
                print(f"{fmt.title}: {args.name!r} is already installed in {path} as wanted; nothing changed.")
            else:
                backup = f" (the previous file is kept as {outcome.backup})" if outcome.backup else ""
                print(f"{fmt.title}: installed {args.name!r} in {path}{backup}. {fmt.restart}")
        if args.client == "claude-code":
            print(f"(the same with Claude Code's CLI: {install.claude_mcp_add(args.name, server, args.scope)})",
                  file=sys.stderr)  # fmt: skip
    except (InvalidInput, OSError) as exc:
        print(f"rlm-mcp install: {exc}", file=sys.stderr)
        return 2
    return 0
