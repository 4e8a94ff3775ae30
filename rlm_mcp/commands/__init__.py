"""The subcommands of ``rlm-mcp`` besides ``serve``: each module adds its parser and runs it.

``query`` runs the whole loop from a shell, ``trajectory`` and ``sessions`` read
the data directory, ``gc`` cleans it up, ``install`` edits an MCP client's configuration.
"""

from __future__ import annotations

import argparse

from rlm_mcp.commands import gc, inspect, install, query
from rlm_mcp.config import Settings, add_setting_flags

NAMES = ("query", "trajectory", "sessions", "gc", "install")


def add_parsers(commands: argparse._SubParsersAction) -> None:
    add_setting_flags(query.add_parser(commands))
    for parser in inspect.add_parsers(commands):
        add_setting_flags(parser)
    add_setting_flags(gc.add_parser(commands))
    install.add_parser(commands)


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "query":
        return query.run(args, settings)
    if args.command == "gc":
        return gc.run(args, settings)
    return inspect.run(args, settings)
