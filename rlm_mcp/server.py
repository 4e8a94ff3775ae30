"""The MCP surface: tool names, parameter schemas and descriptions, mapped onto the core.

No logic lives here beyond translating MCP calls into :class:`RLMService`
calls, progress into MCP progress notifications, and :class:`RLMError` into
tool errors whose text is the message.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Annotated, Literal

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import Field

from rlm_mcp import __version__
from rlm_mcp.errors import RLMError
from rlm_mcp.schemas import (
    CloseSessionResult,
    LoadContextResult,
    ReplExecResult,
    RLMQueryResult,
    SessionList,
    Trajectory,
)
from rlm_mcp.service import RLMService

INSTRUCTIONS = """\
rlm-mcp keeps a corpus far larger than your context window on the server, as the variable \
`context` in a sandboxed Python REPL. Load it with load_context (a file, a directory, a glob, \
an s3:// URL or inline content; PDFs, JSON and .gz files too) and keep the returned session_id. \
Then run Python over it with repl_exec: probe its size and shape, filter with regex, split it \
into chunks, send chunks to the sub-model with llm_query(prompt) / llm_query_batched(prompts), \
aggregate the answers in code, and call FINAL(answer) when done. Print only what you need to \
see; never print the whole corpus. get_trajectory shows every step that was taken."""

SessionId = Annotated[str, Field(description="the session_id returned by load_context", max_length=100)]


@contextlib.contextmanager
def _as_tool_errors() -> Iterator[None]:
    try:
        yield
    except RLMError as exc:
        raise ToolError(str(exc)) from exc


def build_server(service: RLMService) -> MCPServer:
    mcp = MCPServer("rlm-mcp", version=__version__, instructions=INSTRUCTIONS)

    @mcp.tool(annotations=ToolAnnotations(title="Load a corpus", read_only_hint=False, destructive_hint=False))
    async def load_context(
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
    ) -> LoadContextResult:
        """Load a corpus into a sandboxed REPL session as the variable `context`.

        Sources: a text file, a directory, a glob, an s3://bucket/key or s3://bucket/prefix/ URL, or
        inline content; .gz files are decompressed, PDFs give one document per page
        ('==> report.pdf#page=3 <=='), JSON arrays and JSON Lines one document per record (compact JSON
        after a '==> data.jsonl:17 <==' line). A single text file, object or inline text becomes a str;
        everything else, or a second load into the same session, a list[str] of documents, each
        starting with a '==> name <==' line. Returns the session_id to use with repl_exec and
        rlm_query, sizes and a short preview.
        """
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
            )

    @mcp.tool(
        annotations=ToolAnnotations(
            title="Run Python over the corpus", read_only_hint=False, destructive_hint=False, open_world_hint=True
        )
    )
    async def repl_exec(
        session_id: SessionId,
        code: Annotated[str, Field(description="Python code to run in the session's persistent namespace")],
        ctx: Context,
    ) -> ReplExecResult:
        """Run Python in the session's sandbox, where the corpus is `context`.

        Variables persist between calls. Available: context, llm_query(prompt, model=None) -> str,
        llm_query_batched(prompts, model=None) -> list[str] (runs concurrently), FINAL(answer),
        FINAL_VAR(name), SHOW_VARS(), print, and the modules re, json, math, collections, itertools,
        functools, statistics, string, textwrap, datetime, difflib, heapq, bisect, random, operator,
        csv, io, unicodedata, hashlib, base64, html, fractions, decimal, copy, time, pprint.
        No files, network or processes. The value of a last expression is shown, as in a REPL.
        """

        async def progress(done: float, total: float | None, message: str) -> None:
            await ctx.report_progress(done, total, message)

        with _as_tool_errors():
            return await service.repl_exec(session_id, code, progress=progress)

    @mcp.tool(
        annotations=ToolAnnotations(
            title="Answer a question over the corpus",
            read_only_hint=False,
            destructive_hint=False,
            open_world_hint=True,
        )
    )
    async def rlm_query(
        session_id: SessionId,
        query: Annotated[str, Field(description="the question to answer over the session's corpus")],
        ctx: Context,
        root_model: Annotated[
            str | None, Field(description="Bedrock model id of the root (default: RLM_ROOT_MODEL)", max_length=300)
        ] = None,
        sub_model: Annotated[
            str | None, Field(description="Bedrock model id for sub-calls (default: RLM_SUB_MODEL)", max_length=300)
        ] = None,
        max_iterations: Annotated[
            int | None, Field(description="root turns (default: RLM_MAX_ITERATIONS)", ge=1, le=500)
        ] = None,
        max_sub_calls: Annotated[
            int | None, Field(description="sub-calls for the whole run (default: RLM_MAX_SUB_CALLS)", ge=0, le=100_000)
        ] = None,
        wait: Annotated[
            bool,
            Field(description="false returns at once with status 'running'; follow it with get_trajectory"),
        ] = True,
    ) -> RLMQueryResult:
        """Answer a question over the session's corpus with the full RLM loop, run by the server.

        A root model on Bedrock writes Python against `context` (it sees only metadata about the
        corpus, never the corpus), fans chunks out to the sub-model and aggregates in code until it
        calls FINAL. You get the answer, the status, token usage, an estimated cost and the
        trajectory id; progress notifications report each step. Use wait=false for long runs.
        """

        async def progress(done: float, total: float | None, message: str) -> None:
            await ctx.report_progress(done, total, message)

        with _as_tool_errors():
            return await service.rlm_query(
                session_id,
                query,
                root_model=root_model,
                sub_model=sub_model,
                max_iterations=max_iterations,
                max_sub_calls=max_sub_calls,
                wait=wait,
                progress=progress,
            )

    @mcp.tool(annotations=ToolAnnotations(title="Read a trajectory", read_only_hint=True))
    async def get_trajectory(
        trajectory_id: Annotated[str, Field(description="from load_context or rlm_query", max_length=100)],
        detail: Annotated[
            Literal["summary", "full"],
            Field(description="'summary' clips code and output and omits sub-call details; 'full' has everything"),
        ] = "summary",
    ) -> Trajectory:
        """Every step of a session or rlm_query run: code, output, errors, sub-calls, tokens and status."""
        with _as_tool_errors():
            return await service.get_trajectory(trajectory_id, detail)

    @mcp.tool(annotations=ToolAnnotations(title="List sessions", read_only_hint=True))
    async def list_sessions() -> SessionList:
        """The live sessions with their corpus size, idle time and sub-call budget."""
        with _as_tool_errors():
            return await service.list_sessions()

    @mcp.tool(annotations=ToolAnnotations(title="Close a session", read_only_hint=False, destructive_hint=True))
    async def close_session(session_id: SessionId) -> CloseSessionResult:
        """Stop a session's sandbox and forget it; its trajectory stays readable."""
        with _as_tool_errors():
            return await service.close_session(session_id)

    return mcp
