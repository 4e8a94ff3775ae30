"""The ``rlm-mcp`` command. ``serve`` (the default) runs the MCP server; ``query``, ``trajectory``,
``sessions``, ``gc``, ``install``, ``uninstall`` and ``doctor`` live in :mod:`rlm_mcp.cli.commands`.

Every setting in :mod:`rlm_mcp.config` is also a flag of each subcommand, so a
client configuration can pass flags or environment variables, whichever it
supports; ``--help`` shows a subcommand's own options and the common settings,
``--help-settings`` all of them.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Sequence
from typing import Any

import anyio
from pydantic import ValidationError

from rlm_mcp import __version__
from rlm_mcp.cli import commands
from rlm_mcp.cli.flags import add_setting_flags, describe_errors, settings_from_args
from rlm_mcp.config import Settings, too_broad
from rlm_mcp.errors import RLMError
from rlm_mcp.telemetry import logs

SUBCOMMANDS = ("serve", *commands.NAMES)
SERVE_EXAMPLE = """

examples:
  rlm-mcp serve --sub-model us.anthropic.claude-haiku-4-5-20251001-v1:0 --allowed-roots ~/Documents
  rlm-mcp serve --transport streamable-http --port 8000   (MCP at http://127.0.0.1:8000/mcp)
"""
QUIET_BY_DEFAULT = "WARNING"
"""Log level of the shell commands unless one is set: their output is the answer, not the server's story."""
log = logging.getLogger("rlm_mcp")


def configure_logging(level: str, fmt: str = "text") -> None:
    """Logs go to stderr, as text or JSON lines: in stdio mode stdout is the protocol channel."""
    logs.configure(level, fmt)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rlm-mcp", description="A Recursive Language Model as an MCP server.")
    parser.add_argument("--version", action="version", version=f"rlm-mcp {__version__}")
    subcommands = parser.add_subparsers(dest="command", metavar="COMMAND")
    serve = subcommands.add_parser(
        "serve",
        help="run the MCP server (the default command)",
        description="Run the MCP server: over stdio (what desktop clients launch) or HTTP." + SERVE_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument(
        "--transport",
        choices=("stdio", "streamable-http", "sse"),
        default="stdio",
        help="stdio (default) for desktop clients; streamable-http or sse to serve over HTTP",
    )
    serve.add_argument("--host", default="127.0.0.1", help="HTTP interface to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="HTTP port (default 8000)")
    serve.add_argument("--stateless", action="store_true", help="serve streamable HTTP without MCP sessions")
    add_setting_flags(serve)
    commands.add_parsers(subcommands)
    return parser


def _warn_about_roots(settings: Settings) -> None:
    for root in settings.allowed_roots:
        if too_broad(root):
            log.warning(
                "RLM_ALLOWED_ROOTS includes %s (allowed by RLM_ALLOW_BROAD_ROOTS): load_context can read every file "
                "the server's user can read under it, ~/.ssh and ~/.aws included",
                root,
            )


async def serve(settings: Settings, transport: str, host: str, port: int, stateless: bool) -> None:
    from rlm_mcp.core.service import RLMService
    from rlm_mcp.models.names import check_models
    from rlm_mcp.server import auth
    from rlm_mcp.server.app import build_server

    _warn_about_roots(settings)
    authentication = None
    security = None
    if transport != "stdio":  # over stdio there is one principal: the client that started the server
        authentication = auth.from_settings(settings)
        auth.check_exposure(settings, host, authentication)
        security = auth.transport_security(host)
    service = RLMService(settings)
    app = build_server(service, authentication, security)
    max_body = settings.max_request_mb * 1024 * 1024
    if transport == "streamable-http" and stateless and not settings.request_state_keys:
        log.warning(
            "stateless HTTP without RLM_REQUEST_STATE_KEYS: a multi-round-trip request can only finish on the "
            "replica that started it; give every replica the same keys"
        )
    for finding in check_models(settings):
        if finding.level != "ok":
            log.warning("%s", finding.message)
    async with service.running():
        if transport == "stdio":
            await app.run_stdio_async()
        elif transport == "streamable-http":
            http_app = app.streamable_http_app(
                stateless_http=stateless, max_request_body_size=max_body, host=host, transport_security=security
            )
            await _serve_http(http_app, settings, host, port, "/mcp")
        else:
            sse_app = app.sse_app(max_request_body_size=max_body, host=host, transport_security=security)
            await _serve_http(sse_app, settings, host, port, "/sse")


def endpoint_url(host: str, port: int, path: str) -> str:
    """The URL a client connects to (an IPv6 address in brackets), as the log line shows it."""
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}{path}"


async def _serve_http(app: Any, settings: Settings, host: str, port: int, path: str) -> None:
    """Serve an ASGI app with uvicorn, its logs going through our handlers (stderr, text or JSON)."""
    import uvicorn

    from rlm_mcp.telemetry.tracing import TraceContextMiddleware

    config = uvicorn.Config(
        TraceContextMiddleware(app), host=host, port=port, log_config=None, log_level=settings.log_level.lower()
    )
    log.info(
        "serving MCP on %s (trajectory pages: %s; store: %s)",
        endpoint_url(host, port, path),
        endpoint_url(host, port, "/trajectories/"),
        settings.store or settings.data_dir,
    )
    await uvicorn.Server(config).serve()


def main(argv: Sequence[str] | None = None) -> None:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if not args_list or (args_list[0] not in SUBCOMMANDS and args_list[0] not in ("-h", "--help", "--version")):
        args_list.insert(0, "serve")
    parser = build_parser()
    args = parser.parse_args(args_list)
    if args.command in ("install", "uninstall"):
        sys.exit(commands.install.run(args))
    if args.command == "doctor":
        configure_logging(QUIET_BY_DEFAULT)
        sys.exit(commands.doctor.run(args))
    try:
        settings = settings_from_args(args)
    except ValidationError as exc:
        parser.exit(2, f"rlm-mcp: invalid setting: {describe_errors(exc)}\n")
    serving = args.command == "serve"
    level = settings.log_level if serving or "log_level" in settings.model_fields_set else QUIET_BY_DEFAULT
    configure_logging(level, settings.log_format)
    from rlm_mcp.telemetry import tracing

    try:
        stop_tracing = tracing.setup(settings.traces)
    except RLMError as exc:
        parser.exit(2, f"rlm-mcp: {exc}\n")
    try:
        if serving:
            with contextlib.suppress(KeyboardInterrupt):
                anyio.run(serve, settings, args.transport, args.host, args.port, args.stateless)
        else:
            code = commands.run(args, settings)
    except RLMError as exc:  # e.g. a store that cannot be reached at start-up
        parser.exit(1, f"rlm-mcp: {exc}\n")
    finally:
        stop_tracing()
    if not serving:
        sys.exit(code)
