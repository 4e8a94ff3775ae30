"""How a client should start this rlm-mcp: a command that still works next week.

``rlm-mcp install`` writes a command into a client's configuration, and the
client runs it every time it starts, long after ``install`` has exited. The
running interpreter's own launcher is the obvious choice, and the right one for
a virtual environment, ``pip install --user``, ``uv tool install`` or ``pipx
install``. It is the wrong one when ``install`` itself runs from a throwaway
environment:

* ``uvx rlm-mcp install ...`` runs from an environment in uv's cache, which
  ``uv cache clean`` and ``uv cache prune`` delete (uv recreates it on the next
  ``uvx``, at another path): the entry then runs ``uvx rlm-mcp``;
* ``pipx run rlm-mcp install ...`` runs from pipx's cache, which pipx empties
  after 14 days unused: the entry then runs ``pipx run rlm-mcp``.

Either way the same package (and extras) is named, from the same source when it
was not PyPI (a local checkout, a wheel, a Git URL: pip's ``direct_url.json``
records it), and ``uvx``/``pipx`` by absolute path when found, since desktop
apps start servers with a short ``PATH``.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from rlm_mcp.config import ToolDirectories, tool_directories

DISTRIBUTION = "rlm-mcp"
SCRIPT = "rlm-mcp.exe" if sys.platform == "win32" else "rlm-mcp"
EXTRAS = {"pdf": "pypdf", "otel": "opentelemetry.sdk"}
"""Extras the server uses at run time, by a module that shows they are installed."""


@dataclass(frozen=True)
class Launcher:
    command: str
    args: tuple[str, ...]
    """Arguments before the subcommand (``serve``)."""
    kind: str
    """``script``, ``python``, ``uvx`` or ``pipx-run``."""
    reason: str
    """Why this one: told to the user by ``install``."""
    stable: bool = True
    """False when the command is known to live somewhere that may vanish (a temporary directory)."""


def within(path: Path, roots: tuple[Path, ...] | list[Path]) -> bool:
    resolved = _resolve(path)
    return any(resolved.is_relative_to(_resolve(root)) for root in roots)


def _resolve(path: Path) -> Path:
    try:
        return path.resolve()
    except OSError:
        return path.absolute()


def _in_uv_cache(prefix: Path, dirs: ToolDirectories) -> bool:
    """uv's cache by location, or by shape for a cache moved with ``--cache-dir``: uv made the environment
    (``uv = ...`` in ``pyvenv.cfg``), it is not an installed tool, and it sits in a cache bucket."""
    if within(prefix, dirs.uv_caches):
        return True
    try:
        made_by_uv = any(line.startswith("uv =") for line in (prefix / "pyvenv.cfg").read_text().splitlines())
    except OSError:
        return False
    buckets = {"archive-v0", "environments-v1", "environments-v2", "builds-v0"}
    return made_by_uv and bool(buckets & set(_resolve(prefix).parts))


def requirement(extras: list[str]) -> str:
    """How uvx/pipx should name this package: ``rlm-mcp[pdf]``, or ``rlm-mcp[pdf] @ <url>`` when it was
    installed from somewhere other than an index (PEP 610's ``direct_url.json`` says where)."""
    name = DISTRIBUTION + (f"[{','.join(sorted(extras))}]" if extras else "")
    try:
        raw = metadata.distribution(DISTRIBUTION).read_text("direct_url.json")
    except metadata.PackageNotFoundError:
        raw = None
    if not raw:
        return name
    direct = json.loads(raw)
    url = direct.get("url", "")
    if "vcs_info" in direct:
        vcs = direct["vcs_info"]
        url = f"{vcs.get('vcs', 'git')}+{url}@{vcs.get('commit_id') or vcs.get('requested_revision', '')}".rstrip("@")
    return f"{name} @ {url}" if url else name


def installed_extras() -> list[str]:
    return [extra for extra, module in EXTRAS.items() if _importable(module)]


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def detect(
    prefix: Path | None = None,
    executable: Path | None = None,
    dirs: ToolDirectories | None = None,
    which: dict[str, str | None] | None = None,
) -> Launcher:
    """The launcher for the environment at ``prefix`` (this interpreter's by default).

    ``which`` maps ``uvx``/``pipx`` to their paths (default: looked up on ``PATH``).
    """
    prefix = Path(sys.prefix) if prefix is None else prefix
    executable = Path(sys.executable) if executable is None else executable
    dirs = tool_directories() if dirs is None else dirs
    found = which if which is not None else {tool: shutil.which(tool) for tool in ("uvx", "pipx")}
    script = executable.parent / SCRIPT
    if (prefix / "uv-receipt.toml").is_file() or within(prefix, dirs.uv_tools):
        return Launcher(
            str(script),
            (),
            "script",
            "installed with `uv tool install`: its own launcher stays until `uv tool uninstall rlm-mcp`",
        )
    if _in_uv_cache(prefix, dirs):
        spec = requirement(installed_extras())
        uvx = found.get("uvx") or "uvx"
        args = ("rlm-mcp",) if spec == DISTRIBUTION else ("--from", spec, "rlm-mcp")
        return Launcher(
            uvx,
            args,
            "uvx",
            f"this rlm-mcp runs from uv's cache ({prefix}), which `uv cache clean` or `prune` deletes; "
            "the entry runs it through uvx instead, which recreates it when needed"
            + ("" if found.get("uvx") else " (uvx was not found on PATH: the client needs it on its own)"),
        )
    if within(prefix, dirs.pipx_caches):
        spec = requirement(installed_extras())
        pipx = found.get("pipx") or "pipx"
        args = ("run", "rlm-mcp") if spec == DISTRIBUTION else ("run", "--spec", spec, "rlm-mcp")
        return Launcher(
            pipx,
            args,
            "pipx-run",
            f"this rlm-mcp runs from pipx's cache ({prefix}), which pipx empties after 14 days unused; "
            "the entry runs it through `pipx run` instead",
        )
    temporary = within(prefix, [Path(tempfile.gettempdir())])
    where = (
        "installed with pipx: its own launcher stays until `pipx uninstall rlm-mcp`"
        if within(prefix, dirs.pipx_venvs)
        else f"this installation's own launcher ({prefix})"
    )
    if temporary:
        where += ", in a temporary directory: reinstall rlm-mcp somewhere lasting if the client stops finding it"
    if script.is_file():
        return Launcher(str(script), (), "script", where, stable=not temporary)
    return Launcher(str(executable), ("-m", "rlm_mcp"), "python", where, stable=not temporary)
