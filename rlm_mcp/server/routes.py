"""The server's plain HTTP routes, beside /mcp: AgentCore's health check (/ping) and the trajectory viewer's
pages (/trajectories/, /trajectories/<id>), each behind the same Host/Origin checks as /mcp."""

from __future__ import annotations

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecurityMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response

from rlm_mcp import principals, viewer
from rlm_mcp.core.service import RLMService
from rlm_mcp.errors import NotFound, RLMError
from rlm_mcp.server.auth import Authentication
from rlm_mcp.server.auth.links import ViewerLinks
from rlm_mcp.server.health import Health
from rlm_mcp.viewer.index import index_policy


def add_routes(
    mcp: MCPServer,
    service: RLMService,
    authentication: Authentication | None,
    checks: TransportSecurityMiddleware,
    links: ViewerLinks,
) -> None:
    """/ping, and the viewer's pages: the caller's runs, and one trajectory (by bearer header or signed link)."""
    health = Health(lambda: service.busy)

    @mcp.custom_route("/ping", methods=["GET"], include_in_schema=False)
    async def ping(request: Request) -> Response:
        """AgentCore Runtime's health check: Healthy, or HealthyBusy while work runs (keeps the session alive).

        No authentication (the platform's probe carries none, and it says nothing but busy or not); the same
        Host/Origin checks as /mcp.
        """
        refused = await checks.validate_request(request)
        return refused or JSONResponse(health.report())

    @mcp.custom_route("/trajectories/", methods=["GET"], include_in_schema=False)
    async def runs_page(request: Request) -> Response:
        """The caller's runs, newest first, each linking to its page.

        Same Host/Origin checks as every route. On a server that authenticates, only a bearer header opens it
        (a signed link opens one trajectory, never a list), and each row links with a signed link for the caller,
        so the pages open in a browser that sends no header.
        """
        refused = await checks.validate_request(request)
        if refused is not None:
            return refused
        if authentication is not None and not isinstance(request.user, AuthenticatedUser):
            return _authentication_required(authentication)
        owner = principals.current()
        signed = (lambda trajectory_id: links.sign(trajectory_id, owner)) if authentication is not None else None
        try:
            page = await service.runs_page(owner=owner, link=signed)
        except RLMError as exc:
            return PlainTextResponse(service.scrub(str(exc)), status_code=503)
        headers = {
            "Content-Security-Policy": index_policy(),
            "Cache-Control": "no-store",
            "Referrer-Policy": "no-referrer",  # the rows' signed links must not leak to another site
        }
        return HTMLResponse(page, headers=headers)

    @mcp.custom_route("/trajectories", methods=["GET"], include_in_schema=False)
    async def runs_page_redirect(request: Request) -> Response:
        refused = await checks.validate_request(request)
        return refused or RedirectResponse("/trajectories/", status_code=308)

    @mcp.custom_route("/trajectories/{trajectory_id}", methods=["GET"], include_in_schema=False)
    async def trajectory_page(request: Request) -> Response:
        """The page, for the principal of a bearer token, or for whoever holds a signed link to this one page.

        The SDK's authentication middleware covers the whole app, so a valid bearer header has already set
        ``request.user`` (and the principal); a link is checked against the trajectory's owner, and a wrong or
        expired link reads as a missing trajectory.
        """
        refused = await checks.validate_request(request)
        if refused is not None:
            return refused
        trajectory_id = request.path_params["trajectory_id"]
        link = request.query_params.get("link")
        by_link = not (authentication is None or isinstance(request.user, AuthenticatedUser))
        if by_link and link is None:
            assert authentication is not None
            return _authentication_required(authentication)
        try:
            if by_link:
                owner = await service.trajectory_owner(trajectory_id)
                if not links.valid(link or "", trajectory_id, owner):
                    raise NotFound("a wrong or expired link")
            else:
                owner = principals.current()
            page = await service.trajectory_page(trajectory_id, owner)
        except NotFound as exc:
            # One answer whatever was missing (the trajectory, or the right to it): no existence oracle.
            text = f"no trajectory {trajectory_id!r}, or the link has expired" if by_link else service.scrub(str(exc))
            return PlainTextResponse(text, status_code=404)
        except RLMError as exc:
            return PlainTextResponse(service.scrub(str(exc)), status_code=400)
        headers = {
            "Content-Security-Policy": viewer.page_policy(),
            "Cache-Control": "no-store",
            "Referrer-Policy": "no-referrer",
        }
        return HTMLResponse(page, headers=headers)


def _authentication_required(authentication: Authentication) -> Response:
    """The 401 the SDK's bearer middleware gives /mcp, with the same WWW-Authenticate challenge."""
    challenge = 'Bearer error="invalid_token", error_description="Authentication required"'
    if authentication.resource_metadata_url:
        challenge += f', resource_metadata="{authentication.resource_metadata_url}"'
    body = {"error": "invalid_token", "error_description": "Authentication required"}
    return JSONResponse(body, status_code=401, headers={"WWW-Authenticate": challenge})
