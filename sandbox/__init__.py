"""A confined, persistent Python REPL in its own process.

Usable on its own: it knows nothing of MCP, Bedrock or rlm_mcp. Code runs in a
worker process under RestrictedPython with read-only module proxies, and the
worker process is confined by the operating system. Sub-calls made by the code
(``llm_query``) are handed to the caller through a :data:`SubcallHandler`.

    async with Sandbox() as box:
        await box.load([Document(name="notes.txt", path=Path("notes.txt"))], shape="str")
        result = await box.execute("print(len(context))")

The package has two sides and one shared ground, and the imports follow them:

- ``sandbox/worker/``: everything that runs inside the confined worker process. It
  imports, from :mod:`sandbox`, only :mod:`sandbox.protocol` (and itself).
- ``sandbox/protocol/``: the wire format and every value both processes must agree on
  (message names, the rule for user names, snapshot constants, the importable modules,
  the descriptor batch size). It imports nothing else from :mod:`sandbox`.
- the parent side, every other module here (:mod:`sandbox.host`, ``process``,
  ``template``, ``handover``, ``serving``, ``results``, ``snapshot_check`` ...): it
  imports, from the shared ground, only :mod:`sandbox.protocol`, never ``sandbox.worker``
  (it starts the worker by module name, in a fresh interpreter or a forked template).

So a security review of what runs confined reads ``sandbox/worker/`` and
``sandbox/protocol/`` and nothing else; ``tests/sandbox/test_boundary.py`` enforces the rule.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Exported names are imported on first use: the worker process imports this
# package too, and should load neither anyio nor the parent's machinery.
# (SAFE_MODULES comes from the shared protocol, so the worker never needs this file's exports.)
_EXPORTS = {
    "CodeTooLarge": "sandbox.errors",
    "LoadError": "sandbox.errors",
    "SandboxError": "sandbox.errors",
    "WorkerStartError": "sandbox.errors",
    "Sandbox": "sandbox.host",
    "SandboxLimits": "sandbox.limits",
    "SAFE_MODULES": "sandbox.protocol.modules",
    "CallHandler": "sandbox.results",
    "Document": "sandbox.results",
    "ExecError": "sandbox.results",
    "ExecResult": "sandbox.results",
    "LoadInfo": "sandbox.results",
    "SubcallHandler": "sandbox.results",
    "SubcallRefused": "sandbox.results",
    "SubcallReply": "sandbox.results",
    "Variable": "sandbox.results",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'sandbox' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:
    from sandbox.errors import CodeTooLarge as CodeTooLarge
    from sandbox.errors import LoadError as LoadError
    from sandbox.errors import SandboxError as SandboxError
    from sandbox.errors import WorkerStartError as WorkerStartError
    from sandbox.host import Sandbox as Sandbox
    from sandbox.limits import SandboxLimits as SandboxLimits
    from sandbox.protocol.modules import SAFE_MODULES as SAFE_MODULES
    from sandbox.results import CallHandler as CallHandler
    from sandbox.results import Document as Document
    from sandbox.results import ExecError as ExecError
    from sandbox.results import ExecResult as ExecResult
    from sandbox.results import LoadInfo as LoadInfo
    from sandbox.results import SubcallHandler as SubcallHandler
    from sandbox.results import SubcallRefused as SubcallRefused
    from sandbox.results import SubcallReply as SubcallReply
    from sandbox.results import Variable as Variable
