"""The subcommands of ``rlm-mcp`` besides ``serve``: each module adds its parser and runs it.

``query`` runs the whole loop from a shell, ``trajectory`` and ``sessions`` read
the data directory, ``gc`` cleans it up, ``install``/``uninstall`` edit an MCP client's configuration,
``doctor`` checks the machine and the settings.
"""

from __future__ import annotations

import argparse

from rlm_mcp.cli import doctor, gc, inspect, install, query
from rlm_mcp.cli.flags import add_setting_flags
from rlm_mcp.config import Settings

NAMES = ("query", "trajectory", "sessions", "gc", "install", "uninstall", "doctor")
STORE_SETTINGS = ("data_dir", "store")
"""What ``trajectory``, ``sessions`` and ``gc`` read: their help shows only these settings."""
QUERY_SETTINGS = ("root_model", "sub_model", "openai_base_url", "allowed_s3", "max_iterations")


def add_parsers(commands: argparse._SubParsersAction) -> None:
    add_setting_flags(query.add_parser(commands), QUERY_SETTINGS)
    for parser in inspect.add_parsers(commands):
        add_setting_flags(parser, STORE_SETTINGS)
    add_setting_flags(gc.add_parser(commands), STORE_SETTINGS)
    install.add_parsers(commands)
    doctor.add_parser(commands)


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "query":
        return query.run(args, settings)
    if args.command == "gc":
        return gc.run(args, settings)
    return inspect.run(args, settings)
