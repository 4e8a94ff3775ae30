"""``rlm-mcp install --client NAME`` and ``rlm-mcp uninstall --client NAME``: one step each.

Settings given as flags (``--sub-model openai:llama3.1:8b``, ``--allowed-roots ~/docs``, ...)
become the entry's environment, validated first; ``--env KEY=VALUE`` adds anything
else (``AWS_PROFILE``). ``--dry-run`` prints the resulting file and writes nothing.

The folders the server may read are never implied (desktop clients start
servers in ``/`` or their own folder): ``--allowed-roots`` is required, asked for
on a terminal, and written into the entry as absolute paths. ``--allowed-roots ''``
installs a server that reads no files (inline content and S3 only).

``uninstall`` removes the entry again (with the same backup), and is a no-op when
it is not there.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from rlm_mcp.cli import client_entries as install
from rlm_mcp.cli import launcher
from rlm_mcp.cli import plugin as plugin_command
from rlm_mcp.cli.flags import add_setting_flags
from rlm_mcp.config import env_name, flag_dest, settings_given
from rlm_mcp.errors import InvalidInput

CLIENT_NAMES = ", ".join(sorted(install.CLIENTS))
INSTALL_EXAMPLE = """

example:
  rlm-mcp install --client claude-desktop --sub-model us.anthropic.claude-haiku-4-5-20251001-v1:0 \\
      --allowed-roots ~/Documents --env AWS_PROFILE=default
  rlm-mcp install --client claude-code --plugin --allowed-roots ~/src --env AWS_PROFILE=default
"""
UNINSTALL_EXAMPLE = """

example:
  rlm-mcp uninstall --client vscode --dry-run
"""


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--client", required=True, choices=sorted(install.CLIENTS), help="the client to configure")
    parser.add_argument("--name", default="rlm", help="the server's name in the client (default: rlm)")
    parser.add_argument(
        "--scope",
        choices=("user", "project"),
        default="user",
        help="user: for all your projects (default); project: the client's file in the current directory",
    )
    parser.add_argument("--config", type=Path, help="the configuration file to edit (default: the client's own)")
    parser.add_argument("--dry-run", action="store_true", help="print the resulting file and change nothing")
    parser.add_argument(
        "--plugin",
        nargs="?",
        const=True,
        metavar="DIR",
        help="claude-code only: the server and its skill as a Claude Code plugin, written to DIR (default: "
        "beside your settings) and registered with `claude plugin` (printed when claude is not on PATH)",
    )


def add_parsers(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "install",
        help=f"add this server to an MCP client ({CLIENT_NAMES})",
        description="Merge an entry for rlm-mcp into an MCP client's configuration file (a backup is kept)."
        + INSTALL_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _common(parser)
    parser.add_argument(
        "--env", action="append", default=[], metavar="KEY=VALUE", help="another variable for the server (repeatable)"
    )
    add_setting_flags(parser)
    remover = commands.add_parser(
        "uninstall",
        help="remove this server's entry from an MCP client",
        description="Remove rlm-mcp's entry from an MCP client's configuration file (a backup is kept)."
        + UNINSTALL_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _common(remover)


ROOTS_PROMPT = (
    "Which folders may the server read? Separate them with '{sep}' (e.g. ~/Documents{sep}~/src/project); "
    "press Enter for none (inline content only): "
)


def ask_for_roots(args: argparse.Namespace) -> None:
    """``--allowed-roots`` must be decided: taken from the flag (or ``--env``), asked on a terminal, or refused."""
    variable = env_name("allowed_roots") + "="
    if hasattr(args, flag_dest("allowed_roots")) or any(e.startswith(variable) for e in args.env):
        return
    if not sys.stdin.isatty():
        raise InvalidInput(
            "say which folders the server may read: --allowed-roots ~/Documents (several separated by "
            f"'{os.pathsep}'), or --allowed-roots '' for none; no folder is allowed by default"
        )
    print(ROOTS_PROMPT.format(sep=os.pathsep), end="", file=sys.stderr, flush=True)
    setattr(args, flag_dest("allowed_roots"), sys.stdin.readline().strip())


def server_env(args: argparse.Namespace) -> install.EntrySettings:
    """The settings passed as flags and ``--env``, validated as the server will read them."""
    given = settings_given(args)
    extra: dict[str, str] = {}
    for item in args.env:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidInput(f"--env takes KEY=VALUE, not {item!r}")
        extra[key] = value
    return install.entry_settings(given, extra)


def _say(*lines: Any) -> None:
    for line in lines:
        print(f"rlm-mcp: {line}", file=sys.stderr)


def _report(
    outcome: install.Outcome, args: argparse.Namespace, done: str, unchanged: str, after: str | None = None
) -> None:
    fmt = install.CLIENTS[args.client]
    if args.dry_run:
        print(outcome.text, end="" if outcome.text.endswith("\n") else "\n")
        state = "would change" if outcome.changed else "needs no change:"
        _say(f"{outcome.path} {state} {unchanged if not outcome.changed else ''}(dry run, nothing written)")
    elif not outcome.changed:
        print(f"{fmt.title}: {unchanged}; nothing changed.")
    else:
        backup = f" (the previous file is kept as {outcome.backup})" if outcome.backup else ""
        print(f"{fmt.title}: {done}{backup}. {after or fmt.restart}")
    for note in outcome.notes:
        _say(f"note: {note}")


def run(args: argparse.Namespace) -> int:
    try:
        if args.plugin is not None and args.client != "claude-code":
            raise InvalidInput("--plugin is for --client claude-code (other clients have no plugins)")
        if args.plugin is not None:
            if args.command == "uninstall":
                return plugin_command.uninstall_plugin(args)
            ask_for_roots(args)
            entry_settings = server_env(args)
            chosen = launcher.detect()
            code = plugin_command.install_plugin(args, entry_settings, chosen)
            _say(f"the plugin's server runs `{' '.join([chosen.command, *chosen.args, 'serve'])}`: {chosen.reason}")
            for warning in entry_settings.warnings:
                _say(f"warning: {warning}")
            return code
        path = args.config or install.config_path(args.client, args.scope)
        if args.command == "uninstall":
            outcome = install.remove(args.client, path, args.name)
            if not args.dry_run:
                install.write(outcome)
            fmt = install.CLIENTS[args.client]
            _report(
                outcome,
                args,
                f"removed {args.name!r} from {path}",
                f"no {args.name!r} entry in {path}",
                f"{fmt.title} drops it once it reloads its configuration.",
            )
            return 0
        ask_for_roots(args)
        entry_settings = server_env(args)
        chosen = launcher.detect()
        server = install.entry(args.client, chosen, entry_settings.env, entry_settings.settings)
        outcome = install.merge(args.client, path, args.name, server)
        if not args.dry_run:
            install.write(outcome)
        _report(
            outcome,
            args,
            f"installed {args.name!r} in {path}",
            f"{args.name!r} is already installed in {path} as wanted",
        )
        _say(f"the entry starts `{' '.join([chosen.command, *chosen.args, 'serve'])}`: {chosen.reason}")
        for warning in entry_settings.warnings:
            _say(f"warning: {warning}")
        if args.client == "claude-code":
            _say(f"the same with Claude Code's CLI: {install.claude_mcp_add(args.name, server, args.scope)}")
    except (InvalidInput, OSError) as exc:
        print(f"rlm-mcp {args.command}: {exc}", file=sys.stderr)
        return 2
    return 0
