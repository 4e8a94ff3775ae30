"""The parent side of a sandbox: starts the worker, talks to it, kills and restarts it.

One :class:`Sandbox` owns one worker process. Requests are serialised by a
lock; while code runs, the host serves the worker's sub-call requests through
the caller's handler and watches the clock. Compute time (wall time minus the
time spent serving sub-calls) past the soft timeout plus a grace period means
the soft interrupt did not work: the whole process group is killed, a new
worker is started, the corpus is loaded again, and the result says that
variables were lost. The same happens when the worker dies on its own, and
when it breaks the channel protocol (a frame that does not decode, is nested
or sized past the bounds, or is not the answer to the request in flight): the
worker is treated as hostile, killed and replaced, and the result says so.

The worker's memory and CPU limits are final for its life (hard = soft, see
:mod:`sandbox.worker.confine`). Before a request that might need more than they allow
(a load that grows the corpus past what the worker was sized for, code when
the worker's CPU allowance is nearly spent), the worker is replaced by one
sized for it and the corpus is read again; when that loses variables, the
next result says so.

The frames exchanged while one cell runs (serving its sub-calls, stopping it when the
caller cancels) are in :mod:`sandbox.running`; this module decides what happens to the
worker around them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import anyio

from sandbox.errors import CodeTooLarge, LoadError, SandboxError, WorkerLost
from sandbox.fields import Fields
from sandbox.handover import LoadProgress, corpus_size, hand_over
from sandbox.limits import SandboxLimits
from sandbox.process import WorkerProcess
from sandbox.protocol import Op, ProtocolError
from sandbox.results import (
    CallHandler,
    Document,
    ExecResult,
    LoadInfo,
    SubcallHandler,
    Variable,
    parse_variables,
)
from sandbox.running import Pending, lost_result, run_cell, stop_cell
from sandbox.snapshot_check import Restored, Snapshot

if TYPE_CHECKING:
    from sandbox.template import WorkerTemplate

T = TypeVar("T")


class Sandbox:
    """A persistent, confined Python namespace in its own process."""

    def __init__(
        self,
        limits: SandboxLimits | None = None,
        *,
        workdir_parent: Path | None = None,
        template: WorkerTemplate | None = None,
    ):
        self.limits = limits or SandboxLimits()
        self._workdir_parent = workdir_parent
        self._template = template
        """Forks this sandbox's workers when it runs (:mod:`sandbox.template`); else each starts from nothing."""
        self._lock = anyio.Lock()
        self._worker: WorkerProcess | None = None
        self._documents: list[Document] = []
        self._shape: Literal["str", "list"] = "str"
        self._closed = False
        self.restarts = 0
        self.confinement: list[str] = []
        self.last_exit: str | None = None
        self._pending_notes: list[str] = []
        """What happened between requests (the worker died while idle), told with the next result."""
        self._ran_code = False
        """Whether the live worker has run code since it started (replacing it then loses variables)."""

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        return self._worker.pid if self._worker else None

    @property
    def documents(self) -> list[Document]:
        """The documents of the current corpus, in order (what a restart reloads)."""
        return list(self._documents)

    @property
    def shape(self) -> Literal["str", "list"]:
        return self._shape

    @property
    def corpus_bytes(self) -> int:
        total = 0
        for doc in self._documents:
            with contextlib.suppress(OSError):
                total += doc.path.stat().st_size
        return total

    async def start(self, corpus_bytes: int = 0) -> None:
        """Start the worker, sized for a first load of ``corpus_bytes`` (so that load needs no second worker)."""
        async with self._lock:
            if self._worker is None and not self._closed:
                await self._spawn(corpus_bytes)
            await self._ensure_running()

    async def __aenter__(self) -> Sandbox:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop the worker and remove its working directory. Safe to call twice."""
        self._closed = True
        with anyio.CancelScope(shield=True):
            await self._stop()

    async def _ensure_running(self) -> None:
        if self._closed:
            raise SandboxError("the sandbox is closed")
        if self._worker is None:
            await self._spawn()
        elif self._worker.returncode is not None:
            # Killed from outside, or by the kernel, while it had nothing to do.
            await self._replace_between_calls()

    async def _replace_between_calls(self) -> None:
        await self._stop()  # reaps it: how it ended is known from here on
        ended = self.last_exit
        notes = await self._restart()
        self._pending_notes.append(
            f"the sandbox process {ended} between calls; the session was restarted and variables from earlier "
            "calls were lost" + "".join(f"; {note}" for note in notes)
        )

    async def _spawn(self, corpus_bytes: int | None = None) -> None:
        await self._stop()
        size = self.corpus_bytes if corpus_bytes is None else corpus_bytes
        self._worker = await WorkerProcess.start(self.limits, self._workdir_parent, size, self._template)
        self.confinement = self._worker.confinement
        self._ran_code = False

    async def _stop(self) -> None:
        worker, self._worker = self._worker, None
        if worker is not None:
            self.last_exit = await worker.stop()

    async def _restart(self, corpus_bytes: int | None = None, *, reload: bool = True) -> list[str]:
        """A fresh worker (sized for ``corpus_bytes``) with the same corpus; returns notes for the caller."""
        self.restarts += 1
        await self._spawn(corpus_bytes)
        notes = []
        if self._documents and reload:
            try:
                await self._load_locked(self._documents, self._shape, append=False)
                notes.append("the corpus was reloaded")
            except SandboxError as exc:  # WorkerLost included: the fresh worker died while loading
                self._documents = []
                notes.append(f"the corpus could not be reloaded: {exc}")
                if self._worker is None or self._worker.returncode is not None or isinstance(exc, WorkerLost):
                    await self._spawn()
        return notes

    async def _replace(self, reason: str, corpus_bytes: int | None = None, *, reload: bool = True) -> None:
        """A fresh worker before a request the live one's final limits would not cover."""
        lost = self._ran_code
        notes = await self._restart(corpus_bytes, reload=reload)
        if lost:
            self._pending_notes.append(
                f"{reason}, so a fresh sandbox process was started and variables from earlier calls were lost"
                + "".join(f"; {note}" for note in notes)
            )

    async def _ensure_cpu(self, seconds: float) -> None:
        worker = self._live
        if not worker.has_cpu_for(seconds):
            await self._replace(f"the sandbox process had used its CPU time allowance ({worker.cpu_seconds:,} s)")

    def _with_pending_notes(self, result: ExecResult) -> ExecResult:
        if not self._pending_notes:
            return result
        notes, self._pending_notes = self._pending_notes, []
        return replace(result, restarted=True, notes=[*notes, *result.notes])

    @property
    def _live(self) -> WorkerProcess:
        assert self._worker is not None, "no worker: _ensure_running() comes first"
        return self._worker

    # -- loading -------------------------------------------------------------------------

    async def load(
        self,
        documents: Sequence[Document],
        *,
        shape: Literal["str", "list"] = "list",
        append: bool = False,
        first_header: str = "",
        progress: LoadProgress | None = None,
    ) -> LoadInfo:
        """Make ``documents`` the corpus (or add them to it, with ``append``).

        ``shape="str"`` with a single document makes ``context`` that document's
        text; anything else is a ``list[str]``. Appending to a ``str`` corpus turns
        it into a list whose first document gets ``first_header``. ``progress`` hears
        how far the worker has read, a batch of documents at a time.
        """
        documents = list(documents)
        async with self._lock:
            total = corpus_size(documents) + (self.corpus_bytes if append else 0)
            if total > self.limits.max_corpus_bytes:
                limit = self.limits.max_corpus_bytes
                raise LoadError(f"the corpus would be {total:,} bytes, over the limit of {limit:,}")
            await self._ensure_running()
            if total > self._live.corpus_room or not self._live.has_cpu_for(self.limits.load_seconds(total)):
                reason = "the corpus needs more memory or CPU time than this sandbox process was started with"
                await self._replace(reason, total, reload=append)
            try:
                info = await self._load_locked(
                    documents, shape, append=append, first_header=first_header, progress=progress
                )
            except WorkerLost as lost:
                await self._restart()
                raise LoadError(f"the sandbox failed while loading: {lost}") from None
            except BaseException:
                # A load interrupted half-way leaves the worker in an unknown state.
                with anyio.CancelScope(shield=True):
                    await self._restart()
                raise
            return info

    async def _load_locked(
        self,
        documents: list[Document],
        shape: Literal["str", "list"],
        *,
        append: bool,
        first_header: str = "",
        progress: LoadProgress | None = None,
    ) -> LoadInfo:
        total = corpus_size(documents) + (self.corpus_bytes if append else 0)
        # Bounded, like every wait on the worker: a load never turns into a hung request.
        deadline = anyio.current_time() + self.limits.load_seconds(total, len(documents))
        try:
            info = await hand_over(
                self._live,
                documents,
                shape,
                append=append,
                first_header=first_header,
                deadline=deadline,
                progress=progress,
            )
        except LoadError:
            if not append:
                self._documents = []
            raise
        if info.skipped:  # a restart reloads what is in the corpus, not what was left out
            left_out = {index for index, _ in info.skipped}
            documents = [doc for index, doc in enumerate(documents) if index not in left_out]
        if append:
            if self._shape == "str" and self._documents:
                self._documents[0] = replace(self._documents[0], header=first_header)
            self._documents.extend(documents)
            self._shape = "list"
        else:
            self._documents = list(documents)
            self._shape = shape
        return info

    # -- execution -----------------------------------------------------------------------

    async def execute(
        self,
        code: str,
        *,
        on_subcall: SubcallHandler | None = None,
        timeout: float | None = None,
        on_call: CallHandler | None = None,
    ) -> ExecResult:
        """Run ``code`` in the namespace; never raises for anything the code does.

        ``on_subcall`` serves ``llm_query``; ``on_call`` serves the other requests
        the code may make of its parent (``rlm_query``), by name.
        """
        if len(code) > self.limits.max_code_chars:
            raise CodeTooLarge(
                f"the code is {len(code):,} characters, over the limit of {self.limits.max_code_chars:,}; "
                "split it into smaller steps"
            )
        timeout = timeout or self.limits.exec_timeout_s
        async with self._lock:
            await self._ensure_running()
            await self._ensure_cpu(self.limits.exec_cpu_s(timeout))
            self._ran_code = True
            try:
                result = await self._execute_locked(code, timeout, on_subcall, on_call)
            except WorkerLost as lost:
                if not lost.undelivered:
                    result = await self._recover(lost, timeout)
                else:
                    # Gone before the code reached it, though its end was not known yet (a forked worker's
                    # end is reported by the template): as between calls, a new worker runs the code.
                    with anyio.CancelScope(shield=True):
                        await self._replace_between_calls()
                    try:
                        result = await self._execute_locked(code, timeout, on_subcall, on_call)
                    except WorkerLost as again:
                        result = await self._recover(again, timeout)
            return self._with_pending_notes(result)

    async def _recover(self, lost: WorkerLost, timeout: float) -> ExecResult:
        with anyio.CancelScope(shield=True):
            notes = await self._restart()
        return lost_result(lost, timeout, self.limits.kill_grace_s, notes)

    async def _execute_locked(
        self, code: str, timeout: float, on_subcall: SubcallHandler | None, on_call: CallHandler | None = None
    ) -> ExecResult:
        return await run_cell(self._live, code, timeout, self.limits, on_subcall, on_call, self._stop_running_code)

    async def _stop_running_code(self, request_id: int, pending: Pending) -> None:
        """After the caller cancelled: interrupt the code, drain its result, or kill it."""
        worker = self._worker
        if worker is None or self._closed:
            return  # closed meanwhile (close() does not wait for the lock): nothing is left to stop
        try:
            await stop_cell(worker, request_id, pending, self.limits.kill_grace_s)
        except (WorkerLost, TimeoutError):
            if not self._closed:
                await self._restart()

    async def variables(self) -> list[Variable]:
        reply = await self._ask({"op": Op.VARS}, Op.VARS, "listing variables")
        return parse_variables(Fields(reply, "the variables").items("variables"))

    async def snapshot(self, max_bytes: int) -> Snapshot:
        """The variables that are plain data, encoded by the worker in at most ``max_bytes`` and checked here as
        untrusted data (:mod:`sandbox.worker.snapshot`); a reply that is not exactly well formed replaces the worker."""
        message = {"op": Op.SNAPSHOT, "max_bytes": max_bytes}
        return await self._ask(message, Op.SNAPSHOT, "saving variables", lambda r: Snapshot.parse(r, max_bytes))

    async def restore(self, snapshot: Snapshot) -> Restored:
        """Put a snapshot's variables into the namespace (over any of the same names)."""
        message = {"op": Op.RESTORE, **snapshot.to_message()}
        return await self._ask(message, Op.RESTORED, "restoring variables", lambda r: Restored.parse(r, snapshot))

    async def reset(self) -> None:
        """A fresh worker with the same corpus and no variables; SandboxError if the corpus did not reload."""
        async with self._lock:
            await self._ensure_running()
            had = bool(self._documents)
            notes = await self._restart()
            self._pending_notes.clear()
            if had and not self._documents:
                raise SandboxError("; ".join(notes) or "the corpus could not be reloaded")

    async def _ask(
        self, message: dict[str, Any], op: str, what: str, parse: Callable[[dict[str, Any]], T] | None = None
    ) -> Any:
        """One request between executions, answered by ``op`` (parsed by ``parse``) within the execution timeout.

        A worker that answers out of turn, sends a malformed reply or does not answer in time is replaced
        (variables lost, said in the error and in the next result)."""
        async with self._lock:
            await self._ensure_running()
            worker = self._live
            deadline = anyio.current_time() + self.limits.exec_timeout_s + self.limits.kill_grace_s
            ops = frozenset({op, Op.INTERNAL_ERROR})
            request_id: int | None = None
            try:
                request_id = await worker.request(message)
                reply = await worker.reply(request_id, ops, what, deadline)
                if reply["op"] == op:
                    return parse(reply) if parse is not None else reply
                problem = Fields(reply, "the internal error").text("message", 2000)
            except anyio.get_cancelled_exc_class():
                with anyio.CancelScope(shield=True):  # the answer must not be left for the next request to read
                    try:
                        if request_id is None:
                            raise WorkerLost("protocol", "cancelled while sending")
                        await worker.reply(request_id, ops, what, deadline)
                    except (WorkerLost, ProtocolError, TimeoutError):
                        await self._restart()
                raise
            except (WorkerLost, ProtocolError) as lost:
                notes = await self._restart()
                message_text = f"{lost}; the sandbox was restarted and variables from earlier calls were lost"
                self._pending_notes.append(f"while {what}, {message_text}" + "".join(f"; {n}" for n in notes))
                raise SandboxError(message_text + "".join(f"; {note}" for note in notes)) from None
            raise SandboxError(f"the sandbox failed while {what}: {problem}")
