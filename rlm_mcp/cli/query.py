"""``rlm-mcp query --context PATH... "question"``: the whole RLM loop from a shell, no MCP client.

It drives :class:`~rlm_mcp.core.service.RLMService` exactly as the server does: load
the paths into one session, run ``rlm_query``, print the answer (``--json``:
the full result), close the session. The run's trajectory stays in the data
directory, so ``rlm-mcp trajectory ID --html page.html`` can show it later, or
``--html`` writes the page right away.

A run that stops short (a limit, Ctrl-C, a failure) keeps its session record, so
``rlm-mcp query --resume ID`` continues it on the same corpus (or, with
``--context``, on the corpus named again), with the budget of this invocation's
settings (``--max-iterations``, ``--max-sub-calls``, ``--max-tokens``, ...).

Exit status: 0 when the run completed, 3 when it stopped at a limit (its best
answer is still printed), 1 when it failed, 2 for bad input.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import anyio

from rlm_mcp.cli.progress_bar import RunProgress
from rlm_mcp.config import Settings, describe_setting
from rlm_mcp.errors import RLMError
from rlm_mcp.schemas import RLMQueryResult

EXIT = {"completed": 0, "limit_reached": 3}


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = commands.add_parser(
        "query",
        help="answer a question over files, directories or globs from the shell",
        description="Run the RLM loop over a corpus and print the answer. Paths named here may be read even "
        "outside RLM_ALLOWED_ROOTS: naming them is the permission.\n"
        "\nexamples:\n  rlm-mcp query --context ~/logs 'How many requests failed per service?' --html run.html\n"
        "  rlm-mcp query --resume t_AbC... --max-sub-calls 200   (continue a run that stopped short)\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--context",
        "-c",
        nargs="+",
        action="extend",
        default=[],
        metavar="PATH",
        help="a file, a directory, a glob such as 'logs/**/*.log', or - for standard input (repeatable; "
        "required unless --resume)",
    )
    parser.add_argument(
        "--resume",
        metavar="TRAJECTORY_ID",
        help="continue a run that stopped short (its session's corpus, or the one --context names); the question, "
        "if given, is added for the root (required for a run that completed: a follow-up)",
    )
    parser.add_argument("question", nargs="?", help="the question to answer (after the paths, in quotes)")
    parser.add_argument(
        "--include",
        action="append",
        default=[],
        metavar="GLOB",
        help="in a directory, load only files matching GLOB, relative to it ('*.py' at any depth, 'docs/*.md'); "
        "repeatable",
    )
    parser.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="GLOB",
        help="in a directory, leave out files matching GLOB ('tests/*', '*.min.js'); repeatable",
    )
    parser.add_argument("--encoding", default="utf-8", help="text encoding of the files (default utf-8)")
    parser.add_argument(
        "--errors",
        choices=("strict", "replace"),
        default="strict",
        help="strict (default): a file that does not decode is refused, or left out of a directory and listed; "
        "replace: load it with U+FFFD for the bad bytes",
    )
    parser.add_argument("--json", action="store_true", help="print the full result as JSON instead of the answer")
    parser.add_argument("--html", metavar="FILE", type=Path, help="also write the run's trajectory page to FILE")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bar, even on a terminal")
    return parser


def _absolute(raw: str) -> str:
    """A path as the shell meant it: relative to the working directory (``~`` expanded, ``..`` resolved)."""
    if raw.startswith("s3://"):
        return raw
    return os.path.abspath(os.path.expanduser(raw))


def _roots_for(settings: Settings, paths: list[str]) -> list[Path]:
    """The user's allowed roots plus what they named on the command line (the base of a glob)."""
    roots = list(settings.allowed_roots)
    for raw in paths:
        if raw == "-":
            continue
        parts = Path(raw).expanduser().parts
        base = Path(*[p for p in parts[: next((i for i, p in enumerate(parts) if set(p) & set("*?[")), len(parts))]])
        resolved = (base if base.is_absolute() else Path.cwd() / base).resolve()
        roots.append(resolved if resolved.is_dir() else resolved.parent)
    return roots


async def _run(settings: Settings, args: argparse.Namespace) -> RLMQueryResult:
    from rlm_mcp.core.service import RLMService

    service = RLMService(settings)
    async with service.running():
        assert settings.root_model is not None
        client, _ = service.router.client_for(settings.root_model)
        await client.check()  # no credentials, no key: say so before a long load, not after
        with RunProgress(False if args.quiet else None) as progress:
            session_id: str | None = None
            for raw in args.context:
                if raw == "-":
                    content = await anyio.to_thread.run_sync(sys.stdin.read)
                    loaded = await service.load_context(
                        content=content, name="stdin", session_id=session_id, progress=progress
                    )
                else:
                    loaded = await service.load_context(
                        path=_absolute(raw),
                        session_id=session_id,
                        include=args.include,
                        exclude=args.exclude,
                        encoding=args.encoding,
                        errors=args.errors,
                        progress=progress,
                    )
                session_id = loaded.session_id
                progress.note(f"loaded {raw}: {loaded.documents:,} documents, {loaded.chars:,} characters in all")
                for skipped in loaded.skipped:
                    progress.note(f"  skipped {skipped}")
            result = None
            try:
                result = await service.rlm_query(session_id, args.question, progress=progress, resume=args.resume)
            finally:
                # A run that stopped short keeps its session (the record outlives this process) for --resume.
                if result is None and session_id is not None:
                    await service.close_session(session_id)
                elif result is not None and result.status == "completed":
                    await service.close_session(result.session_id)
        if args.html is not None:
            args.html.write_text(await service.trajectory_page(result.trajectory_id), encoding="utf-8")
    return result


def _single(exc: BaseException) -> BaseException:
    """The one error inside the task groups' wrapping (the service runs in one)."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def _split_question(args: argparse.Namespace) -> str | None:
    """``--context a b "question"``: argparse hands the question to --context; take it back.

    The last word is the question unless it names an existing file (then the question is missing).
    """
    if args.question is not None:
        return None
    if not args.context:
        return None if args.resume else "give the corpus with --context PATH... (or --resume a run)"
    last = args.context[-1] if len(args.context) > 1 else None
    if last is None or last == "-" or Path(last).expanduser().exists():
        return "the question is missing: put it after the paths, in quotes (rlm-mcp query --context PATH... 'question')"
    args.question = args.context.pop()
    return None


def _missing_model(settings: Settings) -> str | None:
    """Checked before loading anything: a run without a root model would fail only after the load."""
    if not settings.root_model:
        return (
            f"no root model ({describe_setting('root_model')}): give one, a Bedrock model id such as "
            "us.anthropic.claude-sonnet-4-5-20250929-v1:0, or openai:<model> with "
            f"{describe_setting('openai_base_url')}"
        )
    return None


def run(args: argparse.Namespace, settings: Settings) -> int:
    problem = _split_question(args) or _missing_model(settings)
    if problem:
        print(f"rlm-mcp query: {problem}", file=sys.stderr)
        return 2
    if not settings.sub_model:
        print(
            f"rlm-mcp query: note: no sub-model ({describe_setting('sub_model')}), so the code cannot call llm_query",
            file=sys.stderr,
        )
    # Naming a location on the command line is the permission to read it.
    s3 = [raw for raw in args.context if raw.startswith("s3://")]
    local = [raw for raw in args.context if not raw.startswith("s3://")]
    settings = settings.model_copy(
        update={"allowed_roots": _roots_for(settings, local), "allowed_s3": [*settings.allowed_s3, *s3]}
    )
    try:
        result = anyio.run(_run, settings, args)
    except (RLMError, BaseExceptionGroup) as exc:
        error = _single(exc)
        if not isinstance(error, RLMError):
            raise
        print(f"rlm-mcp query: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(result.model_dump_json(indent=2))
    elif result.answer is not None:
        print(result.answer)
    if result.status != "completed" and not args.json:
        print(
            f"rlm-mcp query: the run ended {result.status}: {result.message or 'no answer'}. Continue it with: "
            f"rlm-mcp query --resume {result.trajectory_id} (with a larger budget, e.g. --max-iterations)",
            file=sys.stderr,
        )
    if not args.json and not args.quiet and sys.stderr.isatty():
        cost = "cost unknown" if result.cost_usd is None else f"${result.cost_usd:.4f}"
        print(
            f"rlm-mcp query: {result.iterations} steps, {result.sub_calls} sub-calls, {result.elapsed_s:.1f} s, "
            f"{cost}; trajectory {result.trajectory_id}" + (f" written to {args.html}" if args.html else ""),
            file=sys.stderr,
        )
    return EXIT.get(result.status, 1)
