"""Client-driven guidance and read-only views: the ``rlm_guide`` prompt, and trajectories and sessions as
MCP resources (issue 7)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS

from rlm_mcp import principals
from rlm_mcp.core.service import RLMService
from rlm_mcp.errors import InvalidInput, NotFound, RLMError


def add_prompt_and_resources(mcp: MCPServer, service: RLMService) -> None:
    """The rlm_guide prompt; trajectories, the session list and each session as resources."""

    @mcp.prompt(title="Act as the root of an RLM")
    async def rlm_guide(session_id: str | None = None, question: str | None = None) -> str:
        """How to answer a question over a loaded corpus yourself, through repl_exec: probe, filter, chunk,
        batch sub-calls with llm_query_batched, aggregate in code, and finish with FINAL."""
        try:
            return await service.guide(session_id, question, owner=principals.current())
        except RLMError as exc:
            raise MCPError(code=INVALID_PARAMS, message=service.scrub(str(exc))) from exc

    @mcp.resource(
        "rlm://trajectories/{trajectory_id}",
        title="Trajectory",
        description="Every step of a session or rlm_query run, in full, as JSON",
        mime_type="application/json",
    )
    async def trajectory_resource(trajectory_id: str) -> str:
        with _as_resource_errors(service):
            return (await service.get_trajectory(trajectory_id, "full", owner=principals.current())).model_dump_json()

    @mcp.resource(
        "rlm://sessions",
        title="Sessions",
        description="The live sessions: corpus size, idle time, sub-call budget, trajectory ids",
        mime_type="application/json",
    )
    async def sessions_resource() -> str:
        return (await service.list_sessions(principals.current())).model_dump_json()

    @mcp.resource(
        "rlm://sessions/{session_id}",
        title="Session",
        description="One live session's metadata and the trajectory ids of its runs",
        mime_type="application/json",
    )
    async def session_resource(session_id: str) -> str:
        for session in (await service.list_sessions(principals.current())).sessions:
            if session.session_id == session_id:
                return session.model_dump_json()
        raise ResourceNotFoundError(f"no live session {session_id!r}; rlm://sessions lists them")


@contextlib.contextmanager
def _as_resource_errors(service: RLMService) -> Iterator[None]:
    """A missing thing is 'not found' (its code follows the client's protocol), a malformed id invalid params;
    every message without the server's own directories."""
    try:
        yield
    except NotFound as exc:
        raise ResourceNotFoundError(service.scrub(str(exc))) from exc
    except InvalidInput as exc:
        raise MCPError(code=INVALID_PARAMS, message=service.scrub(str(exc))) from exc
    except RLMError as exc:
        raise ResourceError(service.scrub(str(exc))) from exc
