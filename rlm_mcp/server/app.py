"""The MCP surface: tool names, parameter schemas and descriptions, mapped onto the core.

No logic lives here beyond translating MCP calls into :class:`RLMService`
calls (with the principal the request was authenticated as, see
:mod:`rlm_mcp.principals`), progress into MCP progress notifications, and
:class:`RLMError` into tool errors whose text is the message, with the server's
own directories taken out.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Annotated, Literal

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError, ToolError
from mcp.server.request_state import RequestStateSecurity
from mcp.server.transport_security import TransportSecurityMiddleware, TransportSecuritySettings
from mcp.shared.exceptions import MCPError
from mcp.types import ToolAnnotations
from mcp_types import INVALID_PARAMS, InputRequiredResult
from pydantic import Field
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response

from rlm_mcp import __version__, principals, viewer
from rlm_mcp.core.guide import available_modules
from rlm_mcp.core.service import RLMService
from rlm_mcp.errors import InvalidInput, NotFound, RLMError
from rlm_mcp.progress import increasing
from rlm_mcp.schemas import (
    BudgetReport,
    CloseSessionResult,
    LoadContextResult,
    ReplExecResult,
    RLMQueryResult,
    SessionList,
    Trajectory,
)
from rlm_mcp.server.auth import Authentication
from rlm_mcp.server.auth.links import ViewerLinks
from rlm_mcp.server.health import Health
from rlm_mcp.server.protocol_errors import RLMServer
from rlm_mcp.server.sampling_rounds import SamplingRounds, names_sampling
from rlm_mcp.viewer.index import index_policy

INSTRUCTIONS = """\
rlm-mcp keeps a corpus far larger than your context window on the server, as the variable \
`context` in a sandboxed Python REPL. Load it with load_context (a file, a directory, a glob, \
an s3:// URL or inline content; PDFs, JSON and .gz files too) and keep the returned session_id. \
Then run Python over it with repl_exec: probe its size and shape, filter with regex, split it \
into chunks, send chunks to the sub-model with llm_query(prompt) / llm_query_batched(prompts), \
aggregate the answers in code, and call FINAL(answer) when done. Print only what you need to \
see; never print the whole corpus. get_trajectory shows every step that was taken."""

REPL_EXEC_DESCRIPTION = (
    "Run Python in the session's sandbox, where the corpus is `context`.\n\n"
    "Variables persist between calls. Available: context, llm_query(prompt, model=None, cache=True) -> str, "
    "llm_query_batched(prompts, model=None, cache=True) -> list[str] (runs concurrently; an identical request "
    "repeated later is answered from the server's cache unless cache=False), FINAL(answer), FINAL_VAR(name), "
    f"SHOW_VARS(), print, and the modules {available_modules()}. No files, network or processes. "
    "The value of a last expression is shown, as in a REPL."
)

SessionId = Annotated[str, Field(description="the session_id returned by load_context", max_length=100)]


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
    health = Health(lambda: service.busy)
    checks = TransportSecurityMiddleware(security)

    @contextlib.contextmanager
    def _as_tool_errors() -> Iterator[None]:
        try:
            yield
        except RLMError as exc:
            raise ToolError(service.scrub(str(exc))) from exc

    @mcp.custom_route("/ping", methods=["GET"], include_in_schema=False)
    async def ping(request: Request) -> Response:
        """AgentCore Runtime's health check: Healthy, or HealthyBusy while work runs (keeps the session alive).

        No authentication (the platform's probe carries none, and it says nothing but busy or not); the same
        Host/Origin checks as /mcp.
        """
        refused = await checks.validate_request(request)
        return refused or JSONResponse(health.report())

    rounds = SamplingRounds(service.spawn, service.settings.subcall_timeout_s)

    @mcp.tool(annotations=ToolAnnotations(title="Load a corpus", read_only_hint=False, destructive_hint=False))
    async def load_context(
        ctx: Context,
        path: Annotated[
            str | None,
            Field(
                description="a file, a directory (each text file becomes one document) or a glob such as "
                "'logs/**/*.log', inside the server's allowed roots; or s3://bucket/key, s3://bucket/prefix/"
            ),
        ] = None,
        content: Annotated[str | None, Field(description="the corpus text itself, instead of a path")] = None,
        session_id: Annotated[
            str | None,
            Field(description="add to this session's corpus instead of starting a new session", max_length=100),
        ] = None,
        name: Annotated[str | None, Field(description="a name for inline content", max_length=500)] = None,
        encoding: Annotated[str, Field(description="text encoding of the files", max_length=50)] = "utf-8",
        errors: Annotated[
            Literal["strict", "replace"],
            Field(description="'replace' loads files with invalid bytes instead of refusing them"),
        ] = "strict",
        include: Annotated[
            list[Annotated[str, Field(max_length=500)]] | None,
            Field(
                description="globs of files to load from a directory or S3 prefix, relative to it: '*.py' "
                "(any depth), 'docs/*.md'",
                max_length=100,
            ),
        ] = None,
        exclude: Annotated[
            list[Annotated[str, Field(max_length=500)]] | None,
            Field(description="globs of files to leave out, e.g. 'tests/*', '*.min.js'", max_length=100),
        ] = None,
        format: Annotated[
            Literal["auto", "text"],
            Field(
                description="'auto' reads .pdf as one document per page and .json/.jsonl as one document per "
                "record; 'text' reads JSON files as plain text"
            ),
        ] = "auto",
        corpus_id: Annotated[
            str | None,
            Field(
                description="instead of content: the corpus_id an earlier load_context returned, to load the same "
                "text again without sending it",
                max_length=64,
            ),
        ] = None,
    ) -> LoadContextResult:
        """Load a corpus into a sandboxed REPL session as the variable `context`.

        Sources: a text file, a directory, a glob, an s3://bucket/key or s3://bucket/prefix/ URL, or
        inline content; .gz files are decompressed, PDFs give one document per page
        ('==> report.pdf#page=3 <=='), JSON arrays and JSON Lines one document per record (compact JSON
        after a '==> data.jsonl:17 <==' line). A single text file, object or inline text becomes a str;
        everything else, or a second load into the same session, a list[str] of documents, each
        starting with a '==> name <==' line. Returns the session_id to use with repl_exec and
        rlm_query, sizes and a short preview, and for inline content a corpus_id that loads the same
        text again later (on any replica sharing the store) without sending it. In a directory or glob,
        files that are binary, empty or not valid in the encoding are left out and listed in `skipped`;
        progress notifications report the files and bytes looked at, then read.
        """
        owner = principals.current()
        with _as_tool_errors():
            return await service.load_context(
                content=content,
                path=path,
                name=name,
                session_id=session_id,
                encoding=encoding,
                errors=errors,
                include=include,
                exclude=exclude,
                format=format,
                corpus_id=corpus_id,
                progress=increasing(ctx.report_progress),
                owner=owner,
            )

    @mcp.tool(
        description=REPL_EXEC_DESCRIPTION,
        annotations=ToolAnnotations(
            title="Run Python over the corpus", read_only_hint=False, destructive_hint=False, open_world_hint=True
        ),
    )
    async def repl_exec(
        session_id: SessionId,
        code: Annotated[str, Field(description="Python code to run in the session's persistent namespace")],
        ctx: Context,
    ) -> ReplExecResult | InputRequiredResult:
        """Its description is REPL_EXEC_DESCRIPTION, which lists the modules from the sandbox's own table."""

        owner = principals.current()  # now: the rounds may run the call in a background task
        with _as_tool_errors():
            return await rounds.call(
                ctx,
                lambda progress: service.repl_exec(session_id, code, progress=progress, owner=owner),
                uses_sampling=names_sampling(service.settings.sub_model, code),
            )

    @mcp.tool(
        annotations=ToolAnnotations(
            title="Answer a question over the corpus",
            read_only_hint=False,
            destructive_hint=False,
            open_world_hint=True,
        )
    )
    async def rlm_query(
        ctx: Context,
        session_id: Annotated[
            str | None,
            Field(
                description="the session_id returned by load_context (required, except with resume: then the run's "
                "own session, or another of yours holding the same corpus)",
                max_length=100,
            ),
        ] = None,
        query: Annotated[
            str | None,
            Field(
                description="the question to answer over the session's corpus (with resume: optional words for the "
                "root, or the follow-up question to a completed run)"
            ),
        ] = None,
        root_model: Annotated[
            str | None,
            Field(
                description="the root's model: a Bedrock id, openai:<model> or sampling (default: RLM_ROOT_MODEL)",
                max_length=300,
            ),
        ] = None,
        sub_model: Annotated[
            str | None,
            Field(
                description="sub-calls' model: a Bedrock id, openai:<model> or sampling (default: RLM_SUB_MODEL)",
                max_length=300,
            ),
        ] = None,
        max_iterations: Annotated[
            int | None, Field(description="root turns (default: RLM_MAX_ITERATIONS)", ge=1, le=500)
        ] = None,
        max_sub_calls: Annotated[
            int | None, Field(description="sub-calls for the whole run (default: RLM_MAX_SUB_CALLS)", ge=0, le=100_000)
        ] = None,
        max_tokens: Annotated[
            int | None,
            Field(
                description="tokens (in + out, root and sub-calls) for the whole run (default: RLM_MAX_TOKENS)",
                ge=1,
            ),
        ] = None,
        max_cost_usd: Annotated[
            float | None,
            Field(description="dollars for the whole run, by the price table (default: RLM_MAX_COST_USD)", gt=0),
        ] = None,
        max_depth: Annotated[
            int | None,
            Field(
                description="2 or more lets the code start nested runs with rlm_query (default: RLM_MAX_DEPTH)",
                ge=1,
                le=5,
            ),
        ] = None,
        resume: Annotated[
            str | None,
            Field(
                description="the trajectory_id of a run that stopped (a limit, a cancel, a failure, a server "
                "restart) to continue it with the budget given here; or of a completed run, with a follow-up query",
                max_length=100,
            ),
        ] = None,
        wait: Annotated[
            bool,
            Field(description="false returns at once with status 'running'; follow it with get_trajectory"),
        ] = True,
    ) -> RLMQueryResult | InputRequiredResult:
        """Answer a question over the session's corpus with the full RLM loop, run by the server.

        A root model (on Bedrock, an OpenAI-compatible server, or your own model through sampling)
        writes Python against `context` (it sees only metadata about the corpus, never the corpus),
        fans chunks out to the sub-model and aggregates in code until it calls FINAL. You get the
        answer, the status, token usage, an estimated cost, what is left of the budget and the
        trajectory id; progress notifications report each step. Use wait=false for long runs (not
        with sampling). A run that stopped short (status limit_reached, cancelled, failed, interrupted)
        goes on where it stopped with resume=<trajectory_id>: its conversation and saved variables
        come back and repeated sub-calls are answered from the cache.
        """

        settings = service.settings
        owner = principals.current()
        with _as_tool_errors():
            return await rounds.call(
                ctx,
                lambda progress: service.rlm_query(
                    session_id,
                    query,
                    root_model=root_model,
                    sub_model=sub_model,
                    max_iterations=max_iterations,
                    max_sub_calls=max_sub_calls,
                    max_tokens=max_tokens,
                    max_cost_usd=max_cost_usd,
                    max_depth=max_depth,
                    resume=resume,
                    wait=wait,
                    progress=progress,
                    owner=owner,
                ),
                uses_sampling=names_sampling(root_model or settings.root_model, sub_model or settings.sub_model),
                background=not wait,
            )

    @mcp.tool(annotations=ToolAnnotations(title="Read a trajectory", read_only_hint=True))
    async def get_trajectory(
        trajectory_id: Annotated[str, Field(description="from load_context or rlm_query", max_length=100)],
        ctx: Context,
        detail: Annotated[
            Literal["summary", "full"],
            Field(description="'summary' clips code and output and omits sub-call details; 'full' has everything"),
        ] = "summary",
    ) -> Trajectory:
        """Every step of a session or rlm_query run: code, output, errors, sub-calls, tokens and status.

        Over HTTP, viewer_url opens it as a page in a browser."""
        owner = principals.current()
        with _as_tool_errors():
            trajectory = await service.get_trajectory(trajectory_id, detail, owner=owner)
        request = ctx.request_context.request
        if isinstance(request, Request):  # an HTTP transport: the page is served here
            page = f"{str(request.base_url).rstrip('/')}/trajectories/{trajectory.id}"
            if authentication is not None:
                page += f"?link={links.sign(trajectory.id, owner)}"
            trajectory.viewer_url = page
        return trajectory

    @mcp.tool(annotations=ToolAnnotations(title="List sessions", read_only_hint=True))
    async def list_sessions() -> SessionList:
        """The live sessions with their corpus size, idle time and sub-call budget."""
        with _as_tool_errors():
            return await service.list_sessions(principals.current())

    @mcp.tool(annotations=ToolAnnotations(title="What is left to spend", read_only_hint=True))
    async def get_budget(session_id: SessionId) -> BudgetReport:
        """What a session may still spend, and has spent: sub-calls, tokens and dollars of repl_exec, and of the
        rlm_query run in progress on it, if any. Plan chunk sizes and batches to fit."""
        with _as_tool_errors():
            return await service.get_budget(session_id, principals.current())

    @mcp.tool(annotations=ToolAnnotations(title="Close a session", read_only_hint=False, destructive_hint=True))
    async def close_session(session_id: SessionId) -> CloseSessionResult:
        """Stop a session's sandbox and forget it; its trajectory stays readable."""
        with _as_tool_errors():
            return await service.close_session(session_id, principals.current())

    links = ViewerLinks([key.get_secret_value() for key in service.settings.request_state_keys])
    _add_guide_resources_and_viewer(mcp, service, authentication, checks, links)
    return mcp


# -- client-driven guidance, resources and the trajectory viewer (issue 7) -------------------------


def _add_guide_resources_and_viewer(
    mcp: MCPServer,
    service: RLMService,
    authentication: Authentication | None,
    checks: TransportSecurityMiddleware,
    links: ViewerLinks,
) -> None:
    """The rlm_guide prompt, trajectories and sessions as resources, and /trajectories/<id> over HTTP."""

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


def _authentication_required(authentication: Authentication) -> Response:
    """The 401 the SDK's bearer middleware gives /mcp, with the same WWW-Authenticate challenge."""
    challenge = 'Bearer error="invalid_token", error_description="Authentication required"'
    if authentication.resource_metadata_url:
        challenge += f', resource_metadata="{authentication.resource_metadata_url}"'
    body = {"error": "invalid_token", "error_description": "Authentication required"}
    return JSONResponse(body, status_code=401, headers={"WWW-Authenticate": challenge})
