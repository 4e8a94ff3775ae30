"""The MCP tools: their names, parameter schemas and descriptions, each mapped onto one call of the core.

No logic lives here beyond translating a tool call into an :class:`RLMService` call (with the principal the
request was authenticated as, see :mod:`rlm_mcp.principals`), progress into MCP progress notifications, and
:class:`RLMError` into tool errors whose text is the message, with the server's own directories taken out.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Annotated, Literal

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from mcp_types import InputRequiredResult
from pydantic import Field
from starlette.requests import Request

from rlm_mcp import principals
from rlm_mcp.core.guide import available_modules
from rlm_mcp.core.service import RLMService
from rlm_mcp.errors import RLMError
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
from rlm_mcp.server.sampling_rounds import SamplingRounds, names_sampling

REPL_EXEC_DESCRIPTION = (
    "Run Python in the session's sandbox, where the corpus is `context`.\n\n"
    "Variables persist between calls. Available: context, llm_query(prompt, model=None, cache=True) -> str, "
    "llm_query_batched(prompts, model=None, cache=True) -> list[str] (runs concurrently; an identical request "
    "repeated later is answered from the server's cache unless cache=False), FINAL(answer), FINAL_VAR(name), "
    f"SHOW_VARS(), print, and the modules {available_modules()}. No files, network or processes. "
    "The value of a last expression is shown, as in a REPL."
)

SessionId = Annotated[str, Field(description="the session_id returned by load_context", max_length=100)]


@contextlib.contextmanager
def tool_errors(service: RLMService) -> Iterator[None]:
    """An :class:`RLMError` becomes a tool error whose text is its message, without the server's directories."""
    try:
        yield
    except RLMError as exc:
        raise ToolError(service.scrub(str(exc))) from exc


def add_tools(mcp: MCPServer, service: RLMService, authentication: Authentication | None, links: ViewerLinks) -> None:
    """Every tool of the server. ``links`` signs the viewer links get_trajectory hands out on a server that
    authenticates (a browser sends no bearer header)."""
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
        with tool_errors(service):
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
        with tool_errors(service):
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
        with tool_errors(service):
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
        with tool_errors(service):
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
        with tool_errors(service):
            return await service.list_sessions(principals.current())

    @mcp.tool(annotations=ToolAnnotations(title="What is left to spend", read_only_hint=True))
    async def get_budget(session_id: SessionId) -> BudgetReport:
        """What a session may still spend, and has spent: sub-calls, tokens and dollars of repl_exec, and of the
        rlm_query run in progress on it, if any. Plan chunk sizes and batches to fit."""
        with tool_errors(service):
            return await service.get_budget(session_id, principals.current())

    @mcp.tool(annotations=ToolAnnotations(title="Close a session", read_only_hint=False, destructive_hint=True))
    async def close_session(session_id: SessionId) -> CloseSessionResult:
        """Stop a session's sandbox and forget it; its trajectory stays readable."""
        with tool_errors(service):
            return await service.close_session(session_id, principals.current())
