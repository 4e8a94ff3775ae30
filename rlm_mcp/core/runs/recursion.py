"""Nested runs: ``rlm_query(prompt, context=None)`` inside the REPL, when ``max_depth`` allows it.

The sandbox knows only that the code asked its parent for ``rlm_query`` (a
generic named request on its channel, like ``llm_query``). This module serves
that request: a child run (which the parent makes,
:meth:`~rlm_mcp.core.runs.contract.Parent.nested`) with its own sandbox, whose
``context`` is the text the code passed (or the parent's whole corpus), on the
same root model. The child shares the parent's sub-call budget (and pays one
sub-call for itself) and its deadline, so a tree of runs can never spend more
than the one run it started from. Each child is a trajectory of its own,
linked both ways: the child names its ``parent_id``, the parent's step lists
it in ``child_runs``. This module sees a run only through
:class:`~rlm_mcp.core.runs.contract.Parent`, so it never imports the loop.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread

from rlm_mcp.core.runs.contract import Parent
from rlm_mcp.errors import RLMError
from rlm_mcp.progress import Progress
from rlm_mcp.sources import ResolvedSource
from sandbox import CallHandler, Document, LoadInfo, Sandbox, SandboxError, SandboxLimits, SubcallRefused

if TYPE_CHECKING:
    from sandbox.template import WorkerTemplate

log = logging.getLogger(__name__)
MAX_PROMPT_CHARS = 200_000


@dataclass(frozen=True)
class Recursion:
    """What a run needs to start nested runs: fresh sandboxes, and somewhere to put their corpus text."""

    new_sandbox: Callable[[], Awaitable[Sandbox]]
    """A started sandbox with the server's limits."""
    store_text: Callable[[str, str], ResolvedSource]
    """Writes text where a sandbox can load it (the inline store); blocking, so run in a thread."""

    def handler(self, parent: Parent, turn: int, children: list[str]) -> CallHandler:
        async def handle(name: str, args: dict[str, object]) -> str:
            if name != "rlm_query":
                raise SubcallRefused(f"unknown request {name!r}")
            try:
                return await self._child(parent, turn, args, children)
            except (RLMError, SandboxError) as exc:
                raise SubcallRefused(f"the nested run failed: {exc}") from None

        return handle

    async def _child(self, parent: Parent, turn: int, args: dict[str, object], children: list[str]) -> str:
        prompt, context = args.get("prompt"), args.get("context")
        if not isinstance(prompt, str) or not prompt.strip():
            raise SubcallRefused("rlm_query needs a non-empty prompt")
        if len(prompt) > MAX_PROMPT_CHARS:
            raise SubcallRefused(
                f"the prompt is {len(prompt):,} characters; pass the text as context= and keep the prompt short"
            )
        if not parent.can_recurse:
            raise SubcallRefused(
                f"rlm_query is not available here: this run is at depth {parent.depth} and max_depth is "
                f"{parent.config.max_depth}. Raise max_depth (rlm_query's max_depth, or RLM_MAX_DEPTH), or use "
                "llm_query"
            )
        texts = _texts(context)
        if parent.remaining_s() < 1:
            raise SubcallRefused("no time is left in this run for a nested run")
        parent.budget.take(1)
        trajectories = parent.trajectories
        config = dataclasses.replace(
            parent.config, query=prompt, timeout_s=parent.remaining_s(), max_sub_calls=parent.budget.limit
        )
        record = await trajectories.create(
            kind="run",
            session_id=parent.session_id,
            status="running",
            query=prompt,
            root_model=config.root_model,
            sub_model=config.sub_model,
            owner=(await trajectories.get(parent.trajectory_id)).owner,  # a nested run is its parent's owner's
        )
        await trajectories.update(record.id, parent_id=parent.trajectory_id, depth=parent.depth + 1)
        children.append(record.id)

        async def progress(report: Progress) -> None:
            fraction = report.value / report.total if report.total else 0.0
            await parent.report(parent.step_progress.nested(fraction), f"step {turn + 1}: nested run, {report.message}")

        sandbox = await self.new_sandbox()
        try:
            corpus = await self._load(sandbox, parent, texts, isinstance(context, list))
            await trajectories.update(record.id, corpus_chars=corpus.chars)
            child = parent.nested(
                config=config, trajectory_id=record.id, sandbox=sandbox, corpus=corpus, progress=progress
            )
            outcome = await child.run()
        except BaseException:
            with anyio.CancelScope(shield=True):
                if trajectories.is_running(record.id):
                    await trajectories.update(record.id, status="failed", message="the nested run could not start")
            raise
        finally:
            with anyio.CancelScope(shield=True):
                await sandbox.close()
            trajectories.forget(record.id)
        parent.absorb(outcome)
        if outcome.answer is not None and outcome.status in ("completed", "limit_reached"):
            return outcome.answer
        raise SubcallRefused(f"the nested run {record.id} ended {outcome.status}: {outcome.message or 'no answer'}")

    async def _load(self, sandbox: Sandbox, parent: Parent, texts: list[str] | None, as_list: bool) -> LoadInfo:
        if texts is None:
            return await sandbox.load(parent.sandbox.documents, shape=parent.sandbox.shape)
        documents: list[Document] = []
        for index, text in enumerate(texts):
            name = f"rlm_query context[{index}]" if as_list else "rlm_query context"
            source = await anyio.to_thread.run_sync(self.store_text, text, name)
            documents.extend(source.documents)
        return await sandbox.load(documents, shape="list" if as_list else "str")


def _texts(context: object) -> list[str] | None:
    """The nested run's corpus: None for the parent's, else the documents the code passed."""
    if context is None:
        return None
    texts = [context] if isinstance(context, str) else context if isinstance(context, list) else None
    if texts is None or not all(isinstance(t, str) for t in texts):
        raise SubcallRefused("rlm_query's context must be None, a str, or a list of str")
    if not any(texts):
        raise SubcallRefused("rlm_query's context is empty: pass the text the nested run should work on")
    return texts


def sandbox_factory(
    limits: SandboxLimits, workdirs: Path, template: WorkerTemplate | None = None
) -> Callable[[], Awaitable[Sandbox]]:
    """Started sandboxes for nested runs, with the same limits as a session's (forked by ``template``, if any)."""

    async def new_sandbox() -> Sandbox:
        workdirs.mkdir(parents=True, exist_ok=True)
        sandbox = Sandbox(limits, workdir_parent=workdirs, template=template)
        await sandbox.start()
        return sandbox

    return new_sandbox


async def refuse_in_repl_exec(name: str, args: dict[str, Any]) -> Any:
    """In repl_exec the client's model is the root: nested runs are for runs of the rlm_query tool."""
    raise SubcallRefused(
        f"{name} is available in runs of the rlm_query tool with max_depth > 1; in repl_exec you are the root, "
        "so split the work yourself with llm_query_batched"
    )
