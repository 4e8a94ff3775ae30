"""A pre-started worker template that forks confined workers: a session's sandbox in milliseconds.

Starting a worker from nothing costs a fresh interpreter, its ``site`` start-up,
the imports of RestrictedPython and of every module the sandbox offers, and (as
root, with an interpreter other users cannot read) every text codec: hundreds
of milliseconds of CPU, paid by every new session and by every load that
outgrows its worker. The template pays that once. It is started by the server
like a worker (scrubbed environment, no inherited descriptors, its own session,
killed with the server), imports what a worker needs and then only forks: each
request gets a child that closes everything of the template's, becomes its own
session and process group, and confines itself exactly as a worker started from
nothing does (:func:`sandbox.worker.main.run`, :func:`sandbox.worker.confine.apply`), with the
limits the server sized for that worker, before it reads a single request.

What the template holds is what every worker holds before its first request:
imported modules and nothing else. It never runs user code, never reads a
corpus, and never sees a session's channel beyond passing its descriptor on
unread; workers cannot reach it (the child closes the control channel before it
does anything else). A worker is never reused: each one serves one sandbox
(one session of one principal) and dies with it. What forked workers do share
is what a fork copies: the template's address-space layout and its ``str`` hash
secret. Set ``RLM_WORKER_TEMPLATE=false`` for a fresh interpreter per worker.

The template's own loop is :mod:`sandbox.worker.forking` (it imports neither anyio nor
anything of the server's). Workers forked by the template are its children, not
the server's, so the template reaps them and reports how each ended; the server's side
(:class:`WorkerTemplate`) turns those reports into the ``returncode`` and
``wait()`` a started process has. A worker dies with the template (its death
signal), and the template with the server.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any

import anyio
from anyio.abc import Process, TaskGroup, UNIXSocketStream
from anyio.streams.buffered import BufferedByteReceiveStream

from sandbox import protocol
from sandbox.errors import WorkerStartError
from sandbox.protocol import Op

log = logging.getLogger(__name__)
_BOOTSTRAP = "import sys; sys.path.insert(0, sys.argv.pop(1)); from sandbox.worker.forking import main; main()"
_PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)


class TemplateUnavailable(WorkerStartError):
    """The template is not running and could not be started: start the worker from nothing instead."""


class ForkedWorker:
    """A worker the template forked, seen from the server: what :class:`anyio.abc.Process` offers for it."""

    def __init__(self, pid: int):
        self.pid = pid
        self.returncode: int | None = None
        self._exited = anyio.Event()

    def exited(self, returncode: int) -> None:
        if self.returncode is None:
            self.returncode = returncode
        self._exited.set()

    async def wait(self) -> int:
        await self._exited.wait()
        assert self.returncode is not None
        return self.returncode

    async def aclose(self) -> None:
        """Nothing to release: the template reaps the process."""


class WorkerTemplate:
    """The server's side of the template: started on first use (or by :meth:`warm`), used inside ``async with``.

    Forks are serialised (the template answers each in a few milliseconds); the
    workers then confine themselves and report ready side by side. If the
    template cannot be started, :meth:`fork` raises :class:`TemplateUnavailable`
    and the caller starts its worker from nothing; the template is tried again
    on a later fork once ``retry_s`` have passed.
    """

    def __init__(self, *, workdir_parent: Path | None = None, start_timeout_s: float = 30.0, retry_s: float = 60.0):
        self.workdir_parent = workdir_parent
        """Where the template's own (empty, private) directory is made; the system's temporary directory if None."""
        self.start_timeout_s = start_timeout_s
        self.retry_s = retry_s
        self._tg: TaskGroup | None = None
        self._process: Process | None = None
        self._stream: UNIXSocketStream | None = None
        self._start_lock = anyio.Lock()
        self._fork_lock = anyio.Lock()
        self._forked_reader: anyio.abc.ObjectReceiveStream[ForkedWorker | None] | None = None
        self._children: dict[int, ForkedWorker] = {}
        self._failed_at: float | None = None
        self._workdir: Path | None = None
        self.forks = 0
        """Workers forked so far (by every template process this object started)."""

    @property
    def pid(self) -> int | None:
        """The template process, while it runs."""
        return self._process.pid if self._process is not None and self._process.returncode is None else None

    async def __aenter__(self) -> WorkerTemplate:
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        with anyio.CancelScope(shield=True):
            await self._stop()
        assert self._tg is not None
        self._tg.cancel_scope.cancel()
        tg, self._tg = self._tg, None
        return await tg.__aexit__(exc_type, exc, tb)

    async def warm(self) -> None:
        """Start the template now (at server start), so the first session does not wait for it; never raises."""
        with contextlib.suppress(TemplateUnavailable):
            await self._ensure_started()

    async def fork(self, config: dict[str, Any], workdir: Path, channel: socket.socket) -> ForkedWorker:
        """A new worker running ``sandbox.worker.main.run(config)`` in ``workdir`` on ``channel`` (the worker's end).

        The caller waits for the worker's ``ready`` on its own end of the channel, as for a worker
        started from nothing.
        """
        async with self._fork_lock:
            stream = await self._ensure_started()
            assert self._forked_reader is not None
            # Shielded: a request abandoned half-way would leave its answer for the next one to take.
            with anyio.CancelScope(shield=True):
                try:
                    with anyio.fail_after(self.start_timeout_s):
                        await stream.send_fds(b"F", [channel.fileno()])
                        await stream.send(protocol.encode({"op": Op.FORK, "config": config, "workdir": str(workdir)}))
                        child = await self._forked_reader.receive()
                    if child is None:
                        raise TemplateUnavailable("the worker template could not fork")
                except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.EndOfStream, TimeoutError):
                    await self._stop()
                    raise TemplateUnavailable("the worker template stopped answering") from None
            self.forks += 1
            return child

    # -- the template process ---------------------------------------------------------------

    async def _ensure_started(self) -> UNIXSocketStream:
        async with self._start_lock:
            if self._stream is not None and self._process is not None and self._process.returncode is None:
                return self._stream
            if self._tg is None:
                raise TemplateUnavailable("the worker template is used only inside `async with`")
            if self._failed_at is not None and anyio.current_time() - self._failed_at < self.retry_s:
                raise TemplateUnavailable("the worker template failed to start recently")
            await self._stop()
            try:
                return await self._start()
            except TemplateUnavailable as exc:
                self._failed_at = anyio.current_time()
                await self._stop()  # a template that did not say ready is not left running
                log.warning("%s; sandbox workers start as fresh interpreters for now", exc)
                raise

    async def _start(self) -> UNIXSocketStream:
        assert self._tg is not None
        if self.workdir_parent is not None:
            self.workdir_parent.mkdir(parents=True, exist_ok=True)
        self._workdir = Path(tempfile.mkdtemp(prefix="rlm-template-", dir=self.workdir_parent))
        parent_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        env = {"PATH": os.defpath, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "HOME": str(self._workdir)}
        env["TMPDIR"] = str(self._workdir)
        command = [sys.executable, "-I", "-B", "-c", _BOOTSTRAP, _PACKAGE_ROOT, json.dumps({"fd": child_sock.fileno()})]
        try:
            self._process = await anyio.open_process(
                command,
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
            raise TemplateUnavailable(f"could not start the worker template: {exc}") from None
        finally:
            child_sock.close()
        stream = await UNIXSocketStream.from_socket(parent_sock)
        reader = BufferedByteReceiveStream(stream)
        try:
            with anyio.fail_after(self.start_timeout_s):
                ready = await _read_frame(reader)
        except (TimeoutError, OSError, anyio.IncompleteRead, anyio.EndOfStream, protocol.ProtocolError) as exc:
            await stream.aclose()
            raise TemplateUnavailable(f"the worker template did not start ({type(exc).__name__})") from None
        if ready.get("op") != Op.READY:
            await stream.aclose()
            raise TemplateUnavailable("the worker template did not report ready")
        self._stream = stream
        forked, self._forked_reader = anyio.create_memory_object_stream[ForkedWorker | None](1)
        self._failed_at = None
        self._tg.start_soon(self._read_reports, reader, self._process, forked)
        log.info("worker template started (pid %s)", self._process.pid)
        return stream

    async def _read_reports(
        self,
        reader: BufferedByteReceiveStream,
        process: Process,
        forked: anyio.abc.ObjectSendStream[ForkedWorker | None],
    ) -> None:
        """The template's reports: the pid of each fork, and how each worker ended."""
        try:
            while True:
                report = await _read_frame(reader)
                if report.get("op") == Op.FORK_FAILED:
                    await forked.send(None)
                    continue
                pid = report.get("pid")
                if type(pid) is not int:
                    continue
                if report.get("op") == Op.FORKED:
                    # Known from now on, so that its end is not missed even if it comes before fork() resumes.
                    await forked.send(self._children.setdefault(pid, ForkedWorker(pid)))
                elif report.get("op") == Op.EXITED:
                    code = report.get("returncode")
                    child = self._children.pop(pid, None) or ForkedWorker(pid)
                    child.exited(code if type(code) is int else -signal.SIGKILL)
        except (
            OSError,
            anyio.IncompleteRead,
            anyio.EndOfStream,
            anyio.BrokenResourceError,
            anyio.ClosedResourceError,
            protocol.ProtocolError,
        ):
            pass
        finally:
            forked.close()
            if self._process is process:
                # Its workers die with it (their death signal): none will be reported any more.
                for child in self._children.values():
                    child.exited(-signal.SIGKILL)
                self._children.clear()

    async def _stop(self) -> None:
        stream, self._stream = self._stream, None
        process, self._process = self._process, None
        if stream is not None:
            with contextlib.suppress(Exception):
                await stream.aclose()
        if process is not None:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.pid, signal.SIGKILL)
            with anyio.move_on_after(10):
                await process.wait()
            with contextlib.suppress(Exception):
                await process.aclose()
        for child in self._children.values():
            child.exited(-signal.SIGKILL)
        self._children.clear()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None


async def _read_frame(reader: BufferedByteReceiveStream) -> dict[str, Any]:
    (size,) = protocol.HEADER.unpack(await reader.receive_exactly(protocol.HEADER.size))
    if size > 64 * 1024:
        raise protocol.ProtocolError("a report from the worker template is too large")
    return protocol.decode(await reader.receive_exactly(size))
