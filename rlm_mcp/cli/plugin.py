"""``rlm-mcp install --client claude-code --plugin [DIR]``: the server and its skill as a Claude Code plugin.

The plugin (a one-plugin marketplace, see :mod:`rlm_mcp.cli.plugin_files`) is written to
``DIR`` (by default beside the user's settings, where nothing cleans it up), then
registered with Claude Code's own CLI: ``claude plugin marketplace add DIR`` and
``claude plugin install rlm@rlm-mcp``, followed by ``marketplace update`` and
``plugin update`` so that a re-install with other settings takes effect (every
one of these is a no-op when there is nothing to do). Without ``claude`` on
``PATH`` the commands are printed instead. ``uninstall --plugin`` undoes it.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from rlm_mcp.cli import client_entries as install
from rlm_mcp.cli import plugin_files as plugin
from rlm_mcp.cli.launcher import Launcher

CLAUDE_TIMEOUT_S = 120


def directory(args: argparse.Namespace) -> Path:
    given = args.plugin
    return plugin.default_directory() if given is True else Path(given).expanduser().resolve()


def _say(line: str) -> None:
    print(f"rlm-mcp: {line}", file=sys.stderr)


def _shell(commands: list[list[str]]) -> str:
    return " && ".join(shlex.join(command) for command in commands)


def run_claude(commands: list[list[str]], keep_going: bool = False) -> list[list[str]]:
    """Run Claude Code's CLI for each command in turn; returns the commands left undone (all, without ``claude``).

    ``keep_going``: a failed command (``uninstall`` of a plugin that is not installed) does not stop the others.
    """
    claude = shutil.which("claude")
    if claude is None:
        return commands
    for index, command in enumerate(commands):
        try:
            done = subprocess.run(
                [claude, *command[1:]],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=CLAUDE_TIMEOUT_S,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            _say(f"`{shlex.join(command)}` did not complete: {exc}")
            return commands[index:]
        said = (done.stdout.strip() or done.stderr.strip()).splitlines()
        if done.returncode != 0:
            _say(f"`{shlex.join(command)}` failed: {' '.join(said[-3:]) or f'exit status {done.returncode}'}")
            if keep_going:
                continue
            return commands[index:]
        _say(f"{shlex.join(command)}: {said[-1] if said else 'done'}")
    return []


def install_plugin(args: argparse.Namespace, entry: install.EntrySettings, chosen: Launcher) -> int:
    server = install.entry("claude-code", chosen, entry.env, entry.settings)
    where = directory(args)
    contents = plugin.files(server, entry.settings)
    commands = plugin.claude_commands(where, args.scope) + plugin.claude_update_commands(args.scope)
    if args.dry_run:
        for relative, text in contents.items():
            print(f"==> {where / relative} <==\n{text}")
        _say(f"would write the plugin to {where} and run: {_shell(commands)} (dry run, nothing written)")
        return 0
    changed = plugin.write(where, contents)
    state = "written to" if changed else "already as wanted in"
    print(f"Claude Code: the {plugin.PLUGIN!r} plugin (server and skill) {state} {where}.")
    left = run_claude(commands)
    if not left:
        print("Claude Code: plugin installed; start a new Claude Code session (`/plugin` lists it, `/mcp` its server).")
    elif len(left) == len(commands):
        print(f"To install it, run: {_shell(plugin.claude_commands(where, args.scope))}")
        print(f"After a later re-install with other settings: {_shell(plugin.claude_update_commands(args.scope))}")
    else:
        print(f"To finish, run: {_shell(left)}")
    return 0


def uninstall_plugin(args: argparse.Namespace) -> int:
    where = directory(args)
    commands = plugin.claude_remove_commands(args.scope)
    if args.dry_run:
        _say(f"would run: {_shell(commands)}, and remove {where} (dry run, nothing changed)")
        return 0
    left = run_claude(commands, keep_going=True)
    if left:
        print(f"To remove it from Claude Code, run: {_shell(left)}")
    try:
        removed = plugin.remove(where)
    except ValueError as exc:
        _say(str(exc))
        return 2
    print(f"Claude Code: removed {where}." if removed else f"Claude Code: nothing at {where} to remove.")
    return 0
