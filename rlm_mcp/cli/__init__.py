"""The ``rlm-mcp`` command: ``serve`` and the subcommands around it (query, install, doctor, gc, ...).

The top layer: it may import anything below it (server, core, and what they stand on); nothing imports it.
"""

from typing import Any


def __getattr__(name: str) -> Any:
    """``rlm_mcp.cli:main`` stays the console script's entry point without importing the server for every submodule."""
    if name == "main":
        from rlm_mcp.cli.entry import main

        return main
    raise AttributeError(f"module 'rlm_mcp.cli' has no attribute {name!r}")
