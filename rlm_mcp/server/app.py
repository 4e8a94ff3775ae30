"""The MCP server: one :class:`RLMServer` with rlm-mcp's tools, prompt, resources and HTTP routes.

The parts live beside this module, each mapping MCP onto the core and nothing more: :mod:`.tools` (the
tools), :mod:`.resources` (the rlm_guide prompt and the resources), :mod:`.routes` (/ping and the
trajectory viewer's pages). This module puts them together, with authentication and request-state keys.
"""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer
from mcp.server.request_state import RequestStateSecurity
from mcp.server.transport_security import TransportSecurityMiddleware, TransportSecuritySettings

from rlm_mcp import __version__
from rlm_mcp.core.service import RLMService
from rlm_mcp.server.auth import Authentication
from rlm_mcp.server.auth.links import ViewerLinks
from rlm_mcp.server.protocol_errors import RLMServer
from rlm_mcp.server.resources import add_prompt_and_resources
from rlm_mcp.server.routes import add_routes
from rlm_mcp.server.tools import REPL_EXEC_DESCRIPTION, add_tools

__all__ = ["INSTRUCTIONS", "REPL_EXEC_DESCRIPTION", "build_server"]

INSTRUCTIONS = """\
rlm-mcp keeps a corpus far larger than your context window on the server, as the variable \
`context` in a sandboxed Python REPL. Load it with load_context (a file, a directory, a glob, \
an s3:// URL or inline content; PDFs, JSON and .gz files too) and keep the returned session_id. \
Then run Python over it with repl_exec: probe its size and shape, filter with regex, split it \
into chunks, send chunks to the sub-model with llm_query(prompt) / llm_query_batched(prompts), \
aggregate the answers in code, and call FINAL(answer) when done. Print only what you need to \
see; never print the whole corpus. get_trajectory shows every step that was taken."""


def build_server(
    service: RLMService,
    authentication: Authentication | None = None,
    security: TransportSecuritySettings | None = None,
) -> MCPServer:
    """The MCP server over ``service``.

    ``authentication`` (HTTP only) puts the SDK's bearer-token checks in front of /mcp and /trajectories;
    ``security`` is the Host/Origin policy the SDK applies to /mcp for this bind address, applied to /ping and
    /trajectories too (pass the same object to ``streamable_http_app``/``sse_app``).
    """
    keys = [key.get_secret_value() for key in service.settings.request_state_keys]
    mcp = RLMServer(
        "rlm-mcp",
        version=__version__,
        instructions=INSTRUCTIONS,
        # Replicas sharing these keys can each continue a multi-round-trip request another one started.
        # The SDK binds each sealed state to the authenticated principal: another one cannot replay it.
        request_state_security=RequestStateSecurity(keys=keys) if keys else None,
        token_verifier=authentication.verifier if authentication else None,
        auth=authentication.settings if authentication else None,
    )
    links = ViewerLinks(keys)
    add_routes(mcp, service, authentication, TransportSecurityMiddleware(security), links)
    add_tools(mcp, service, authentication, links)
    add_prompt_and_resources(mcp, service)
    return mcp
