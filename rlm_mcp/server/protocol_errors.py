"""Protocol errors by the MCP specification, and argument errors a person can read.

The SDK gets three things wrong for a client: a tool called with bad arguments
answers with pydantic's dump (types, a URL, one paragraph per field), an
unknown prompt comes back as JSON-RPC code 0, and a missing resource as -32603
(internal error). :class:`RLMServer` is the SDK's server with those three
mapped; nothing else changes.

Resource not found is -32002 up to protocol 2025-11-25 and -32602 (invalid
params) from 2026-07-28 on (SEP-2164, which also asks clients to accept the old
code), so the code follows the protocol version the client speaks.
"""

from __future__ import annotations

import reprlib
from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceNotFoundError, ToolError
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS
from pydantic import ValidationError

RESOURCE_NOT_FOUND_LEGACY = -32002
"""The code of a missing resource before protocol 2026-07-28."""
INVALID_PARAMS_FROM = "2026-07-28"
"""The first protocol version whose missing resources are -32602 (SEP-2164)."""
VALUE_CHARS = 60


def resource_not_found_code(protocol_version: str | None) -> int:
    """-32602 for the 2026-07-28 protocol and later (and when unknown), -32002 for handshake-era clients."""
    if protocol_version is not None and protocol_version < INVALID_PARAMS_FROM:
        return RESOURCE_NOT_FOUND_LEGACY
    return INVALID_PARAMS


def _field(loc: tuple[int | str, ...], known: set[str]) -> str:
    """``('include', 2)`` as ``include[2]``; pydantic's union-member tags (``'str'``, ``'list[str]'``) are dropped."""
    name = str(loc[0]) if loc else "arguments"
    for part in loc[1:]:
        if isinstance(part, int):
            name += f"[{part}]"
        elif part in known:
            name += f".{part}"
    return name


_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = VALUE_CHARS
_SHORT.maxlist = _SHORT.maxdict = 4


def _value(value: Any) -> str:
    """The rejected value, short whatever its size (a 10 MB string is not copied into the message)."""
    text = _SHORT.repr(value)
    return text if len(text) <= VALUE_CHARS else text[: VALUE_CHARS - 1] + "…"


def _sentence(field: str, error: dict[str, Any], descriptions: dict[str, str]) -> str:
    if error["type"] == "missing":
        hint = descriptions.get(field)
        return f"`{field}` is required" + (f" ({hint})" if hint else "")
    if error["type"] == "extra_forbidden":
        return f"`{field}` is not an argument of this tool"
    message = str(error["msg"])
    for prefix in ("Input should be ", "Input "):
        if message.startswith(prefix):
            message = "should be " + message.removeprefix(prefix) if prefix == "Input should be " else message[6:]
            break
    else:
        message = message[:1].lower() + message[1:]
    return f"`{field}` {message}, not {_value(error.get('input'))}"


def readable(tool: str, exc: ValidationError, parameters: dict[str, Any] | None) -> str:
    """One sentence per rejected argument, with what the argument is for when it is missing."""
    properties = (parameters or {}).get("properties", {})
    descriptions = {name: str(spec.get("description", "")) for name, spec in properties.items()}
    chosen: dict[str, dict[str, Any]] = {}
    for error in exc.errors():
        field = _field(tuple(error["loc"]), set(properties))
        # A union (`str | None`) reports once per member; the 'none' one says nothing useful.
        if field not in chosen or chosen[field]["type"] == "none_required":
            chosen[field] = error
    sentences = [_sentence(field, error, descriptions) for field, error in chosen.items()]
    return f"invalid arguments for {tool}: " + "; ".join(sentences) + "."


class RLMServer(MCPServer):
    """The SDK's server with argument errors, unknown prompts and missing resources reported by the spec."""

    async def call_tool(self, name: str, arguments: dict[str, Any], context: Context | None = None) -> Any:
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as exc:
            if not isinstance(exc.__cause__, ValidationError):
                raise
            tool = self._tool_manager.get_tool(name)
            raise ToolError(readable(name, exc.__cause__, tool.parameters if tool else None)) from exc.__cause__

    async def get_prompt(
        self, name: str, arguments: dict[str, Any] | None = None, context: Context | None = None
    ) -> Any:
        known = [prompt.name for prompt in await self.list_prompts()]
        if name not in known:
            raise MCPError(code=INVALID_PARAMS, message=f"unknown prompt {name!r}; this server has: {', '.join(known)}")
        return await super().get_prompt(name, arguments, context)

    async def read_resource(self, uri: Any, context: Context | None = None) -> Any:
        try:
            return await super().read_resource(uri, context)
        except ResourceNotFoundError as exc:
            version = context.protocol_version if context is not None else None
            raise MCPError(code=resource_not_found_code(version), message=str(exc), data={"uri": str(uri)}) from exc
