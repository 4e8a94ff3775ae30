"""A confined, persistent Python REPL in its own process.

Usable on its own: it knows nothing of MCP, Bedrock or rlm_mcp. Code runs in a
worker process under RestrictedPython with read-only module proxies, and the
worker process is confined by the operating system. Sub-calls made by the code
(``llm_query``) are handed to the caller through a :data:`SubcallHandler`.

    async with Sandbox() as box:
        await box.load([Document(name="notes.txt", path=Path("notes.txt"))], shape="str")
        result = await box.execute("print(len(context))")
"""

from sandbox.errors import CodeTooLarge, LoadError, SandboxError, WorkerStartError
from sandbox.host import Sandbox
from sandbox.limits import SandboxLimits
from sandbox.modules import SAFE_MODULES
from sandbox.results import (
    CallHandler,
    Document,
    ExecError,
    ExecResult,
    LoadInfo,
    SubcallHandler,
    SubcallRefused,
    SubcallReply,
    Variable,
)

__all__ = [
    "SAFE_MODULES",
    "CallHandler",
    "CodeTooLarge",
    "Document",
    "ExecError",
    "ExecResult",
    "LoadError",
    "LoadInfo",
    "Sandbox",
    "SandboxError",
    "SandboxLimits",
    "SubcallHandler",
    "SubcallRefused",
    "SubcallReply",
    "Variable",
    "WorkerStartError",
]
