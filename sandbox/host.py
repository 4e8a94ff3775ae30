"""The parent side of a sandbox: starts the worker, talks to it, kills and restarts it.

One :class:`Sandbox` owns one worker process. Requests are serialised by a
lock; while code runs, the host serves the worker's sub-call requests through
the caller's handler and watches the clock. Compute time (wall time minus the
time spent serving sub-calls) past the soft timeout plus a grace period means
the soft interrupt did not work: the whole process group is killed, a new
worker is started, the corpus is loaded again, and the result says that
variables were lost. The same happens when the worker dies on its own.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import anyio

from sandbox.errors import CodeTooLarge, LoadError, SandboxError, WorkerLost
from sandbox.limits import SandboxLimits
from sandbox.process import WorkerProcess, describe_exit
from sandbox.results import (
    CallHandler,
    Document,
    ExecError,
    ExecResult,
    LoadInfo,
    SubcallHandler,
    Variable,
    clean_text,
    parse_variables,
)
from sandbox.serving import serve_call, serve_subcall

_FD_BATCH = 200
LoadProgress = Callable[[int, int], Awaitable[None]]
"""Told (documents read, bytes read) as the worker reads a batch of documents."""
_SLOWEST_LOAD_BYTES_PER_S = 5 * 1024 * 1024
_SLOWEST_LOAD_FILES_PER_S = 100
"""Small files cost per file, not per byte: 48,000 of them must not run into a deadline set by their size."""


class Sandbox:
    """A persistent, confined Python namespace in its own process."""

    def __init__(self, limits: SandboxLimits | None = None, *, workdir_parent: Path | None = None):
        self.limits = limits or SandboxLimits()
        self._workdir_parent = workdir_parent
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

    async def start(self) -> None:
        async with self._lock:
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
            reason = f"the sandbox process {describe_exit(self._worker.returncode)} between calls"
            notes = await self._restart()
            self._pending_notes.append(
                f"{reason}; the session was restarted and variables from earlier calls were lost"
                + "".join(f"; {note}" for note in notes)
            )

    async def _spawn(self) -> None:
        await self._stop()
        self._worker = await WorkerProcess.start(self.limits, self._workdir_parent, self.corpus_bytes)
        self.confinement = self._worker.confinement

    async def _stop(self) -> None:
        worker, self._worker = self._worker, None
        if worker is not None:
            self.last_exit = await worker.stop()

    async def _restart(self) -> list[str]:
        """A fresh worker with the same corpus; returns notes for the caller."""
        self.restarts += 1
        await self._spawn()
        notes = []
        if self._documents:
            try:
                await self._load_locked(self._documents, self._shape, append=False)
                notes.append("the corpus was reloaded")
            except SandboxError as exc:  # WorkerLost included: the fresh worker died while loading
                self._documents = []
                notes.append(f"the corpus could not be reloaded: {exc}")
                if self._worker is None or self._worker.returncode is not None or isinstance(exc, WorkerLost):
                    await self._spawn()
        return notes

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
        async with self._lock:
            await self._ensure_running()
            try:
                info = await self._load_locked(
                    list(documents), shape, append=append, first_header=first_header, progress=progress
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
        sizes: list[int] = []
        for doc in documents:
            try:
                sizes.append(os.stat(doc.path, follow_symlinks=False).st_size)
            except OSError as exc:
                raise LoadError(f"cannot open {doc.name}: {exc.strerror}") from None
        new_bytes = sum(sizes)
        total = new_bytes + (self.corpus_bytes if append else 0)
        if total > self.limits.max_corpus_bytes:
            raise LoadError(f"the corpus would be {total:,} bytes, over the limit of {self.limits.max_corpus_bytes:,}")
        soft, _ = self.limits.memory_for(total)
        await self._live.send(
            {
                "op": "load",
                "mode": "append" if append else "replace",
                "shape": shape,
                "first_header": first_header,
                "memory_bytes": soft,
                "batch": _FD_BATCH,
                "documents": [
                    {
                        "name": d.name,
                        "header": d.header,
                        "encoding": d.encoding,
                        "errors": d.errors,
                        "parts": d.parts,
                        "skip_undecodable": d.skip_undecodable,
                    }
                    for d in documents
                ],
            }
        )
        # Bounded, like every wait on the worker: a load never turns into a hung request.
        slowest = total / _SLOWEST_LOAD_BYTES_PER_S + len(documents) / _SLOWEST_LOAD_FILES_PER_S
        deadline = anyio.current_time() + self.limits.start_timeout_s + slowest
        # Descriptors go over in batches, each sent once the worker has read the one before: neither
        # side ever holds more than a batch open, whatever the number of files (open-file limits).
        read_bytes = 0
        for start in range(0, len(documents), _FD_BATCH):
            if start:
                reply = await self._live.recv_by(deadline, "loading")
                if reply.get("op") != "load_more":
                    return self._loaded(reply, documents, shape, append=append, first_header=first_header)
                read_bytes += sum(sizes[start - _FD_BATCH : start])
                if progress is not None:
                    await progress(start, read_bytes)
            await self._send_fds(documents[start : start + _FD_BATCH])
        reply = await self._live.recv_by(deadline, "loading")
        info = self._loaded(reply, documents, shape, append=append, first_header=first_header)
        if progress is not None:
            await progress(len(documents), new_bytes)
        return info

    async def _send_fds(self, batch: list[Document]) -> None:
        fds: list[int] = []
        try:
            for doc in batch:
                fds.append(_open_document(doc))
            await self._live.send_fds(fds)
        finally:
            for fd in fds:
                os.close(fd)

    def _loaded(
        self,
        reply: dict[str, Any],
        documents: list[Document],
        shape: Literal["str", "list"],
        *,
        append: bool,
        first_header: str,
    ) -> LoadInfo:
        if reply.get("op") == "load_error":
            if not append:
                self._documents = []
            raise LoadError(clean_text(reply.get("message", "the corpus could not be loaded"), 2000))
        if reply.get("op") != "loaded":
            raise LoadError(clean_text(reply.get("message", "the sandbox could not load the corpus"), 2000))
        info = LoadInfo.parse(reply)
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
            try:
                result = await self._execute_locked(code, timeout, on_subcall, on_call)
            except WorkerLost as lost:
                result = await self._recover(lost, timeout)
            return self._with_pending_notes(result)

    async def _recover(self, lost: WorkerLost, timeout: float) -> ExecResult:
        with anyio.CancelScope(shield=True):
            notes = await self._restart()
        if lost.kind == "timeout":
            kind, message = (
                "TimeoutError",
                (
                    f"execution exceeded {timeout:g} s and did not stop when interrupted, so the sandbox was "
                    f"killed after a further {self.limits.kill_grace_s:g} s"
                ),
            )
        elif lost.kind == "cancelled":
            kind, message = "Cancelled", "execution was cancelled and did not stop, so the sandbox was killed"
        else:
            kind, message = "SandboxCrashed", str(lost)
        message += ". The session was restarted: variables from earlier calls were lost."
        if notes:
            message += " " + "; ".join(notes).capitalize() + "."
        return ExecResult(
            stdout="",
            error=ExecError(type=kind, message=message),
            final=None,
            variables=[],
            elapsed_ms=0.0,
            timed_out=lost.kind == "timeout",
            cancelled=lost.kind == "cancelled",
            restarted=True,
            notes=notes,
        )

    async def _execute_locked(
        self, code: str, timeout: float, on_subcall: SubcallHandler | None, on_call: CallHandler | None = None
    ) -> ExecResult:
        grace = self.limits.kill_grace_s
        worker = self._live
        await worker.send({"op": "exec", "code": code, "timeout": timeout, "cpu_budget": timeout + 2 * grace + 1})
        budget = timeout + grace
        pending_llm: int | None = None
        pending_call: int | None = None
        try:
            while True:
                started = anyio.current_time()
                with anyio.move_on_after(max(budget, 0)) as scope:
                    message = await worker.recv()
                if scope.cancelled_caught:
                    raise WorkerLost("timeout", "hard timeout")
                budget -= anyio.current_time() - started
                op = message.get("op")
                if op == "llm":
                    pending_llm = message.get("id") if isinstance(message.get("id"), int) else -1
                    await worker.send(await serve_subcall(message, on_subcall))
                    pending_llm = None
                elif op == "call":
                    pending_call = message.get("id") if isinstance(message.get("id"), int) else -1
                    await worker.send(await serve_call(message, on_call))
                    pending_call = None
                elif op == "result":
                    return ExecResult.parse(message, self.limits.max_output_chars, self.limits.max_final_chars)
                elif op == "internal_error":
                    error = ExecError(type="SandboxError", message=clean_text(message.get("message", ""), 2000))
                    return ExecResult(stdout="", error=error, final=None, variables=[], elapsed_ms=0.0)
                else:
                    raise WorkerLost("protocol", f"the sandbox sent an unexpected {op!r} message")
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True):
                await self._stop_running_code(pending_llm, pending_call)
            raise

    async def _stop_running_code(self, pending_llm: int | None, pending_call: int | None = None) -> None:
        """After the caller cancelled: interrupt the code, drain its result, or kill it."""
        worker = self._live
        try:
            if pending_llm is not None:
                await worker.send({"op": "llm_result", "id": pending_llm, "interrupt": True})
            elif pending_call is not None:
                await worker.send({"op": "call_result", "id": pending_call, "interrupt": True})
            else:
                worker.interrupt()
            with anyio.fail_after(self.limits.kill_grace_s):
                while True:
                    message = await worker.recv()
                    if message.get("op") in ("llm", "call"):
                        reply_op = "llm_result" if message.get("op") == "llm" else "call_result"
                        await worker.send({"op": reply_op, "id": message.get("id"), "interrupt": True})
                    elif message.get("op") in ("result", "internal_error"):
                        return
        except (WorkerLost, TimeoutError):
            await self._restart()

    async def variables(self) -> list[Variable]:
        async with self._lock:
            await self._ensure_running()
            await self._live.send({"op": "vars"})
            with anyio.move_on_after(self.limits.exec_timeout_s + self.limits.kill_grace_s) as scope:
                reply = await self._live.recv()
            if scope.cancelled_caught:
                await self._restart()
                raise SandboxError("the sandbox did not answer, so it was restarted")
            return parse_variables(reply.get("variables"))


def _open_document(doc: Document) -> int:
    """Open without following a final symlink and insist on a regular file."""
    try:
        fd = os.open(doc.path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        raise LoadError(f"cannot open {doc.name}: {exc.strerror}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise LoadError(f"{doc.name} is not a regular file")
    return fd
