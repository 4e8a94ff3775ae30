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
import json
import logging
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import anyio
from anyio.abc import Process, UNIXSocketStream
from anyio.streams.buffered import BufferedByteReceiveStream

from sandbox import protocol
from sandbox.results import (
    CallHandler,
    Document,
    ExecError,
    ExecResult,
    LoadInfo,
    SubcallHandler,
    SubcallRefused,
    SubcallReply,
    Variable,
    clean_text,
    parse_variables,
)

_BOOTSTRAP = "import sys; sys.path.insert(0, sys.argv.pop(1)); from sandbox.worker import main; main()"
_PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)
_FD_BATCH = 200
_GIB = 1024**3
_SLOWEST_LOAD_BYTES_PER_S = 5 * 1024 * 1024
log = logging.getLogger(__name__)


class SandboxError(Exception):
    """Base class for sandbox failures the caller should report."""


class WorkerStartError(SandboxError):
    """The worker process did not start or did not confine itself."""


class LoadError(SandboxError):
    """A document could not be opened or decoded."""


class CodeTooLarge(SandboxError):
    """The code exceeds ``max_code_chars``."""


@dataclass(frozen=True)
class SandboxLimits:
    exec_timeout_s: float = 60.0
    """Compute time one ``execute`` may take before the soft interrupt."""
    kill_grace_s: float = 5.0
    """How long after the soft interrupt the process group is killed."""
    memory_bytes: int = 2 * _GIB
    """Address space for the worker on top of what its corpus needs."""
    corpus_memory_factor: int = 5
    """Address space reserved per byte of corpus: UTF-8 text may widen to 4 bytes per character."""
    max_corpus_bytes: int = 4 * _GIB
    max_output_chars: int = 20_000
    max_final_chars: int = 1_000_000
    max_message_bytes: int = 256 * 1024 * 1024
    """Largest message the parent will read from the worker; a bigger one kills it."""
    max_code_chars: int = 200_000
    start_timeout_s: float = 30.0


class _WorkerLost(SandboxError):
    def __init__(self, kind: Literal["timeout", "crashed", "protocol", "cancelled"], message: str):
        super().__init__(message)
        self.kind = kind


class Sandbox:
    """A persistent, confined Python namespace in its own process."""

    def __init__(self, limits: SandboxLimits | None = None, *, workdir_parent: Path | None = None):
        self.limits = limits or SandboxLimits()
        self._workdir_parent = workdir_parent
        self._lock = anyio.Lock()
        self._process: Process | None = None
        self._stream: UNIXSocketStream | None = None
        self._reader: BufferedByteReceiveStream | None = None
        self._workdir: Path | None = None
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
        return self._process.pid if self._process else None

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

    def _memory_for(self, corpus_bytes: int) -> tuple[int, int]:
        lim = self.limits
        soft = lim.memory_bytes + lim.corpus_memory_factor * corpus_bytes
        hard = lim.memory_bytes + lim.corpus_memory_factor * lim.max_corpus_bytes
        return soft, max(soft, hard)

    async def _ensure_running(self) -> None:
        if self._closed:
            raise SandboxError("the sandbox is closed")
        if self._process is None:
            await self._spawn()
        elif self._process.returncode is not None:
            # Killed from outside, or by the kernel, while it had nothing to do.
            reason = f"the sandbox process {_describe_exit(self._process.returncode)} between calls"
            notes = await self._restart()
            self._pending_notes.append(
                f"{reason}; the session was restarted and variables from earlier calls were lost"
                + "".join(f"; {note}" for note in notes)
            )

    async def _spawn(self) -> None:
        await self._stop()
        self._workdir = Path(tempfile.mkdtemp(prefix="rlm-sandbox-", dir=self._workdir_parent))
        parent_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        soft, hard = self._memory_for(self.corpus_bytes)
        config = {
            "fd": child_sock.fileno(),
            "max_message_bytes": max(self.limits.max_message_bytes, 64 * 1024 * 1024),
            "max_output_chars": self.limits.max_output_chars,
            "max_final_chars": self.limits.max_final_chars,
            "memory_bytes": soft,
            "memory_hard_bytes": hard,
        }
        env = {
            "PATH": os.defpath,
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "HOME": str(self._workdir),
            "TMPDIR": str(self._workdir),
        }
        command = [sys.executable, "-I", "-B", "-c", _BOOTSTRAP, _PACKAGE_ROOT, json.dumps(config)]
        try:
            self._process = await anyio.open_process(
                command,
                # Never inherit: in stdio mode the server's stdout is the protocol channel.
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                cwd=self._workdir,
                env=env,
                start_new_session=True,
                pass_fds=(child_sock.fileno(),),
            )
        except OSError as exc:
            parent_sock.close()
            raise WorkerStartError(f"could not start the sandbox worker: {exc}") from exc
        finally:
            child_sock.close()
        self._stream = await UNIXSocketStream.from_socket(parent_sock)
        self._reader = BufferedByteReceiveStream(self._stream)
        with anyio.move_on_after(self.limits.start_timeout_s) as scope:
            try:
                ready = await self._recv()
            except _WorkerLost as lost:
                raise WorkerStartError(f"the sandbox worker failed to start: {lost}") from None
        if scope.cancelled_caught or ready.get("op") != "ready":
            await self._stop()
            raise WorkerStartError("the sandbox worker did not report ready")
        report = ready.get("confinement")
        self.confinement = [clean_text(x, 300) for x in report] if isinstance(report, list) else []

    async def _stop(self) -> None:
        process, self._process = self._process, None
        if self._stream is not None:
            with contextlib.suppress(Exception):
                await self._stream.aclose()
        self._stream = self._reader = None
        if process is not None:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.pid, signal.SIGKILL)
            with anyio.move_on_after(10):
                await process.wait()
            self.last_exit = _describe_exit(process.returncode)
            # Stray processes are impossible (no fork in the worker), but the group kill
            # above covers them anyway; reap the group leader's remaining pipes.
            with contextlib.suppress(Exception):
                await process.aclose()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    async def _restart(self) -> list[str]:
        """A fresh worker with the same corpus; returns notes for the caller."""
        self.restarts += 1
        await self._spawn()
        notes = []
        if self._documents:
            try:
                await self._load_locked(self._documents, self._shape, append=False)
                notes.append("the corpus was reloaded")
            except SandboxError as exc:  # _WorkerLost included: the fresh worker died while loading
                self._documents = []
                notes.append(f"the corpus could not be reloaded: {exc}")
                if self._process is None or self._process.returncode is not None or isinstance(exc, _WorkerLost):
                    await self._spawn()
        return notes

    def _with_pending_notes(self, result: ExecResult) -> ExecResult:
        if not self._pending_notes:
            return result
        notes, self._pending_notes = self._pending_notes, []
        return replace(result, restarted=True, notes=[*notes, *result.notes])

    # -- channel -----------------------------------------------------------------------

    async def _send(self, message: dict[str, Any]) -> None:
        assert self._stream is not None
        try:
            await self._stream.send(protocol.encode(message))
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
            raise _WorkerLost("crashed", await self._exit_reason()) from exc

    async def _recv(self) -> dict[str, Any]:
        assert self._reader is not None
        try:
            header = await self._reader.receive_exactly(protocol.HEADER.size)
            (size,) = protocol.HEADER.unpack(header)
            if size > self.limits.max_message_bytes:
                raise _WorkerLost("protocol", f"the sandbox sent a {size:,}-byte message, over the limit")
            return protocol.decode(await self._reader.receive_exactly(size))
        except (anyio.IncompleteRead, anyio.EndOfStream, anyio.BrokenResourceError, OSError) as exc:
            raise _WorkerLost("crashed", await self._exit_reason()) from exc
        except protocol.ProtocolError as exc:
            raise _WorkerLost("protocol", f"the sandbox sent a malformed message: {exc}") from exc

    async def _exit_reason(self) -> str:
        if self._process is not None:
            with anyio.move_on_after(2):
                await self._process.wait()
            return f"the sandbox process {_describe_exit(self._process.returncode)}"
        return "the sandbox process is gone"

    # -- loading -------------------------------------------------------------------------

    async def load(
        self,
        documents: Sequence[Document],
        *,
        shape: Literal["str", "list"] = "list",
        append: bool = False,
        first_header: str = "",
    ) -> LoadInfo:
        """Make ``documents`` the corpus (or add them to it, with ``append``).

        ``shape="str"`` with a single document makes ``context`` that document's
        text; anything else is a ``list[str]``. Appending to a ``str`` corpus turns
        it into a list whose first document gets ``first_header``.
        """
        async with self._lock:
            await self._ensure_running()
            try:
                info = await self._load_locked(list(documents), shape, append=append, first_header=first_header)
            except _WorkerLost as lost:
                await self._restart()
                raise LoadError(f"the sandbox failed while loading: {lost}") from None
            except BaseException:
                # A load interrupted half-way leaves the worker in an unknown state.
                with anyio.CancelScope(shield=True):
                    await self._restart()
                raise
            return info

    async def _load_locked(
        self, documents: list[Document], shape: Literal["str", "list"], *, append: bool, first_header: str = ""
    ) -> LoadInfo:
        new_bytes = 0
        for doc in documents:
            try:
                new_bytes += os.stat(doc.path, follow_symlinks=False).st_size
            except OSError as exc:
                raise LoadError(f"cannot open {doc.name}: {exc.strerror}") from None
        total = new_bytes + (self.corpus_bytes if append else 0)
        if total > self.limits.max_corpus_bytes:
            raise LoadError(f"the corpus would be {total:,} bytes, over the limit of {self.limits.max_corpus_bytes:,}")
        soft, _ = self._memory_for(total)
        await self._send(
            {
                "op": "load",
                "mode": "append" if append else "replace",
                "shape": shape,
                "first_header": first_header,
                "memory_bytes": soft,
                "batch": _FD_BATCH,
                "documents": [
                    {"name": d.name, "header": d.header, "encoding": d.encoding, "errors": d.errors, "parts": d.parts}
                    for d in documents
                ],
            }
        )
        # Bounded, like every wait on the worker: a load never turns into a hung request.
        deadline = anyio.current_time() + self.limits.start_timeout_s + total / _SLOWEST_LOAD_BYTES_PER_S
        # Descriptors go over in batches, each sent once the worker has read the one before: neither
        # side ever holds more than a batch open, whatever the number of files (open-file limits).
        for start in range(0, len(documents), _FD_BATCH):
            if start:
                reply = await self._recv_by(deadline)
                if reply.get("op") != "load_more":
                    return self._loaded(reply, documents, shape, append=append, first_header=first_header)
            await self._send_fds(documents[start : start + _FD_BATCH])
        reply = await self._recv_by(deadline)
        return self._loaded(reply, documents, shape, append=append, first_header=first_header)

    async def _recv_by(self, deadline: float) -> dict[str, Any]:
        """The next message, or a lost worker if it does not come by ``deadline`` (anyio's clock)."""
        with anyio.move_on_after(max(deadline - anyio.current_time(), 0)):
            return await self._recv()
        raise _WorkerLost("timeout", "the sandbox did not finish loading in time")

    async def _send_fds(self, batch: list[Document]) -> None:
        assert self._stream is not None
        fds: list[int] = []
        try:
            for doc in batch:
                fds.append(_open_document(doc))
            try:
                await self._stream.send_fds(b"F", fds)
            except OSError as exc:
                raise _WorkerLost("crashed", await self._exit_reason()) from exc
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
        if append:
            if self._shape == "str" and self._documents:
                self._documents[0] = replace(self._documents[0], header=first_header)
            self._documents.extend(documents)
            self._shape = "list"
        else:
            self._documents = list(documents)
            self._shape = shape
        return LoadInfo.parse(reply)

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
            except _WorkerLost as lost:
                result = await self._recover(lost, timeout)
            return self._with_pending_notes(result)

    async def _recover(self, lost: _WorkerLost, timeout: float) -> ExecResult:
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
        await self._send({"op": "exec", "code": code, "timeout": timeout, "cpu_budget": timeout + 2 * grace + 1})
        budget = timeout + grace
        pending_llm: int | None = None
        pending_call: int | None = None
        try:
            while True:
                started = anyio.current_time()
                with anyio.move_on_after(max(budget, 0)) as scope:
                    message = await self._recv()
                if scope.cancelled_caught:
                    raise _WorkerLost("timeout", "hard timeout")
                budget -= anyio.current_time() - started
                op = message.get("op")
                if op == "llm":
                    pending_llm = message.get("id") if isinstance(message.get("id"), int) else -1
                    await self._send(await self._serve_subcall(message, on_subcall))
                    pending_llm = None
                elif op == "call":
                    pending_call = message.get("id") if isinstance(message.get("id"), int) else -1
                    await self._send(await self._serve_call(message, on_call))
                    pending_call = None
                elif op == "result":
                    return ExecResult.parse(message, self.limits.max_output_chars, self.limits.max_final_chars)
                elif op == "internal_error":
                    error = ExecError(type="SandboxError", message=clean_text(message.get("message", ""), 2000))
                    return ExecResult(stdout="", error=error, final=None, variables=[], elapsed_ms=0.0)
                else:
                    raise _WorkerLost("protocol", f"the sandbox sent an unexpected {op!r} message")
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True):
                await self._stop_running_code(pending_llm, pending_call)
            raise

    async def _stop_running_code(self, pending_llm: int | None, pending_call: int | None = None) -> None:
        """After the caller cancelled: interrupt the code, drain its result, or kill it."""
        try:
            if pending_llm is not None:
                await self._send({"op": "llm_result", "id": pending_llm, "interrupt": True})
            elif pending_call is not None:
                await self._send({"op": "call_result", "id": pending_call, "interrupt": True})
            elif self._process is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self._process.pid, signal.SIGUSR1)
            with anyio.fail_after(self.limits.kill_grace_s):
                while True:
                    message = await self._recv()
                    if message.get("op") in ("llm", "call"):
                        reply_op = "llm_result" if message.get("op") == "llm" else "call_result"
                        await self._send({"op": reply_op, "id": message.get("id"), "interrupt": True})
                    elif message.get("op") in ("result", "internal_error"):
                        return
        except (_WorkerLost, TimeoutError):
            await self._restart()

    async def _serve_subcall(self, message: dict[str, Any], on_subcall: SubcallHandler | None) -> dict[str, Any]:
        request_id = message.get("id")
        prompts, model = message.get("prompts"), message.get("model")
        if not isinstance(prompts, list) or not all(isinstance(p, str) for p in prompts):
            return {"op": "llm_result", "id": request_id, "error": "malformed sub-call request"}
        if model is not None and not isinstance(model, str):
            return {"op": "llm_result", "id": request_id, "error": "model must be a string"}
        if on_subcall is None:
            return {"op": "llm_result", "id": request_id, "error": "sub-calls are not available in this sandbox"}
        try:
            replies = await on_subcall([clean_text(p) for p in prompts], model)
        except SubcallRefused as exc:
            return {"op": "llm_result", "id": request_id, "error": str(exc), "error_type": exc.error_type}
        except Exception as exc:  # a fault in the handler must not leave the worker waiting for ever
            log.exception("sub-call handler failed")
            return {"op": "llm_result", "id": request_id, "error": f"the sub-call failed in the server ({exc!r})"}
        if len(replies) != len(prompts):
            replies = [SubcallReply(error="internal error: reply count mismatch")] * len(prompts)
        return {"op": "llm_result", "id": request_id, "results": [r.to_message() for r in replies]}

    async def _serve_call(self, message: dict[str, Any], on_call: CallHandler | None) -> dict[str, Any]:
        request_id, name, args = message.get("id"), message.get("name"), message.get("args")
        if not isinstance(name, str) or not isinstance(args, dict):
            return {"op": "call_result", "id": request_id, "error": "malformed request"}
        if on_call is None:
            return {"op": "call_result", "id": request_id, "error": f"{clean_text(name, 100)} is not available here"}
        try:
            result = await on_call(clean_text(name, 100), _clean_json(args))
        except SubcallRefused as exc:
            return {"op": "call_result", "id": request_id, "error": str(exc), "error_type": exc.error_type}
        except Exception as exc:  # the handler's bug must not leave the worker waiting for a reply
            return {"op": "call_result", "id": request_id, "error": f"{name} failed: {exc!r}"}
        return {"op": "call_result", "id": request_id, "result": result}

    async def variables(self) -> list[Variable]:
        async with self._lock:
            await self._ensure_running()
            await self._send({"op": "vars"})
            with anyio.move_on_after(self.limits.exec_timeout_s + self.limits.kill_grace_s) as scope:
                reply = await self._recv()
            if scope.cancelled_caught:
                await self._restart()
                raise SandboxError("the sandbox did not answer, so it was restarted")
            return parse_variables(reply.get("variables"))


def _clean_json(value: Any) -> Any:
    """Strings from the worker made safe to encode (user code can build lone surrogates)."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, list):
        return [_clean_json(v) for v in value]
    if isinstance(value, dict):
        return {clean_text(k): _clean_json(v) for k, v in value.items()}
    return value


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


def _describe_exit(returncode: int | None) -> str:
    if returncode is None:
        return "is still running"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        hint = {"SIGKILL": " (killed: out of time or memory)", "SIGSEGV": " (crashed)", "SIGXCPU": " (CPU limit)"}.get(
            name, ""
        )
        return f"was ended by {name}{hint}"
    return f"exited with status {returncode}"
