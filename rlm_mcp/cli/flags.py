"""Every setting as a flag of every subcommand, ``--help-settings``, and settings errors as a person reads them."""

from __future__ import annotations

import argparse
from typing import Any, Literal, get_args, get_origin

from pydantic import ValidationError

from rlm_mcp.config import Settings, default_data_dir
from rlm_mcp.setting_names import describe_setting, env_name, flag_dest, flag_name, settings_given


def default_text(name: str) -> str:
    """The default of setting ``name`` as shown in ``--help``."""
    field = Settings.model_fields[name]
    if field.default_factory is not None:
        return {"data_dir": str(default_data_dir()), "allowed_roots": "none"}.get(name, "none")
    value = field.default
    return "none" if value is None else str(value)


COMMON_SETTINGS = ("root_model", "sub_model", "allowed_roots", "data_dir", "openai_base_url")
"""The settings most people set first: shown in every subcommand's ``--help``; the rest behind ``--help-settings``."""


class _HelpSettings(argparse.Action):
    """``--help-settings``: every setting with its flag, variable, default and meaning, then exit."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any):
        super().__init__(option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, nargs=0, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *_: Any, **__: Any) -> None:
        full = argparse.ArgumentParser(prog=parser.prog, usage=argparse.SUPPRESS, add_help=False)
        _add_flags(full.add_argument_group("settings (each flag also reads its environment variable; flags win)"))
        full.print_help()
        parser.exit()


def _help_text(name: str, description: str) -> str:
    default = "" if "default" in description else f" (default: {default_text(name)})"
    return f"{description}{default} [{env_name(name)}]"


def _add_flags(group: Any, shown: tuple[str, ...] | None = None) -> None:
    for name, field in Settings.model_fields.items():
        annotation = field.annotation
        kind: Any = str
        choices = None
        for candidate in (annotation, *get_args(annotation)):
            if candidate in (int, float):
                kind = candidate
            if get_origin(candidate) is Literal:
                choices = get_args(candidate)
        visible = shown is None or name in shown
        group.add_argument(
            flag_name(name),
            dest=flag_dest(name),
            metavar=None if choices else name.upper(),
            type=kind,
            choices=choices,
            default=argparse.SUPPRESS,
            help=_help_text(name, field.description or "") if visible else argparse.SUPPRESS,
        )


def describe_errors(exc: ValidationError) -> str:
    """A settings error as a person reads it: which setting (flag and variable), and what is wrong."""
    problems = []
    for err in exc.errors():
        message = str(err["msg"]).removeprefix("Value error, ")  # pydantic's prefix for a validator's ValueError
        if not err["loc"]:  # a rule that spans several settings names them itself
            problems.append(message)
        else:
            problems.append(f"{describe_setting(str(err['loc'][0]))}: {message}")
    return "; ".join(problems)


def add_setting_flags(parser: argparse.ArgumentParser, shown: tuple[str, ...] = COMMON_SETTINGS) -> None:
    """One flag per setting. ``--help`` shows only ``shown``; ``--help-settings`` lists them all.

    Every subcommand accepts every setting, so a client configuration can pass
    flags or variables, whichever it supports; the help stays short.
    """
    hidden = len(Settings.model_fields) - len(shown)
    group = parser.add_argument_group(
        "settings",
        f"Every setting is a flag and an environment variable (flags win). {hidden} more: --help-settings.",
    )
    _add_flags(group, shown)
    group.add_argument("--help-settings", action=_HelpSettings, help="list every setting with its variable and default")


def settings_from_args(args: argparse.Namespace) -> Settings:
    return Settings(**settings_given(args))
