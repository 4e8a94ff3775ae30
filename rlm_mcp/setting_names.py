"""The one rule from a setting's name to its environment variable and its command-line flag.

A setting ``foo_bar`` is read from ``RLM_FOO_BAR`` and given on the command line as ``--foo-bar``
(``aws_region`` is the exception: ``AWS_REGION``, the variable the AWS runtimes set). Everything
that names a setting to a user, or reads one back from a variable or a flag, goes through here.
"""

from __future__ import annotations

import argparse
from typing import Any

ENV_PREFIX = "RLM_"
"""What every rlm-mcp variable starts with (pydantic-settings' ``env_prefix``)."""

_DEST_PREFIX = "setting_"


def env_name(name: str) -> str:
    """The environment variable of setting ``name``: ``RLM_<NAME>`` (``AWS_REGION`` for ``aws_region``)."""
    return "AWS_REGION" if name == "aws_region" else f"{ENV_PREFIX}{name.upper()}"


def flag_name(name: str) -> str:
    """The command-line flag of setting ``name``: ``--<name-with-dashes>``."""
    return "--" + name.replace("_", "-")


def flag_dest(name: str) -> str:
    """Where argparse keeps setting ``name``'s flag in the parsed namespace (apart from the subcommand's own)."""
    return _DEST_PREFIX + name


def settings_given(args: argparse.Namespace) -> dict[str, Any]:
    """The settings given as flags on a command line, by setting name (flags not given are absent)."""
    return {key.removeprefix(_DEST_PREFIX): value for key, value in vars(args).items() if key.startswith(_DEST_PREFIX)}


def describe_setting(name: str) -> str:
    """``--flag / RLM_VAR``: how an error message names a setting, so the user knows both ways to give it."""
    return f"{flag_name(name)} / {env_name(name)}"
