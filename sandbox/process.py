"""One worker process and its channel: start it confined, talk to it, kill its whole group.

Everything the worker sends is untrusted: frames are length-prefixed JSON read
with a byte and a nesting cap, and any failure to read (EOF, a frame over a
cap, bad JSON) becomes :class:`~sandbox.errors.WorkerLost`, which the sandbox
answers by starting a new worker. Every request that expects an answer carries
an id (:meth:`WorkerProcess.request`), and a frame is accepted only as the
answer to the request in flight (:meth:`WorkerProcess.reply`): a reply to an
earlier request, an unsolicited frame or one of the wrong kind is a protocol
violation too, so one stray frame can never shift every later answer by one.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import anyio
from anyio.abc import Process, UNIXSocketStream
from anyio.streams.buffered import BufferedByteReceiveStream

from sandbox import protocol
from sandbox.errors import WorkerLost, WorkerStartError
from sandbox.fields import Fields, clean_text
from sandbox.limits import SandboxLimits
from sandbox.protocol import WORKER_REQUESTS, Op

if TYPE_CHECKING:
    from sandbox.template import WorkerTemplate

_BOOTSTRAP = "import sys; sys.path.insert(0, sys.argv.pop(1)); from sandbox.worker.main import main; main()"
_PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)


def describe_exit(returncode: int | None) -> str:
    if returncode is None:
        return "is still running"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        hints = {"SIGKILL": " (killed: out of time, memory or CPU allowance)", "SIGSEGV": " (crashed)"}
        return f"was ended by {name}{hints.get(name, '')}"
    return f"exited with status {returncode}"


class ChildProcess(Protocol):
    """What the host needs of a worker's process: a started one (:class:`anyio.abc.Process`) or a forked one
    (:class:`sandbox.template.ForkedWorker`)."""

    @property
    def pid(self) -> int: ...

    @property
    def returncode(self) -> int | None: ...

    async def wait(self) -> int: ...

    async def aclose(self) -> None: ...


class WorkerProcess:
    """A started worker: ``send``/``recv`` frames, ``send_fds`` descriptors, ``stop`` the group."""

    def __init__(
        self, process: ChildProcess, stream: UNIXSocketStream, workdir: Path, limits: SandboxLimits, corpus_room: int
    ):
        self.process = process
        self._stream = stream
        self._reader = BufferedByteReceiveStream(stream)
        self.workdir = workdir
        self.limits = limits
        self.confinement: list[str] = []
        self.corpus_room = corpus_room
        """The largest corpus this worker's address-space limit was sized for."""
        self.cpu_seconds = _inherited_cpu_limit(limits.cpu_allowance())
        """Its CPU-time limit for life."""
        self._last_request = 0
        self.started_at = time.monotonic()

    @classmethod
    async def start(
        cls,
        limits: SandboxLimits,
        workdir_parent: Path | None,
        corpus_bytes: int,
        template: WorkerTemplate | None = None,
    ) -> WorkerProcess:
        """A worker sized for ``corpus_bytes`` in a fresh private directory, forked by ``template`` when one is
        given and running (else started from nothing); returns once it is confined and ready."""
        from sandbox.template import TemplateUnavailable

        workdir = Path(tempfile.mkdtemp(prefix="rlm-sandbox-", dir=workdir_parent))
        parent_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        room = limits.corpus_room(corpus_bytes)
        config = {
            "max_message_bytes": max(limits.max_message_bytes, 64 * 1024 * 1024),
            "max_output_chars": limits.max_output_chars,
            "max_final_chars": limits.max_final_chars,
            "memory_bytes": limits.memory_for(room),
            "cpu_seconds": limits.cpu_allowance(),
        }
        process: ChildProcess | None = None
        try:
            if template is not None:
                with contextlib.suppress(TemplateUnavailable):
                    process = await template.fork(config, workdir, child_sock)
            if process is None:
                process = await _spawn({**config, "fd": child_sock.fileno()}, workdir, child_sock)
        except BaseException:
            parent_sock.close()
            shutil.rmtree(workdir, ignore_errors=True)
            raise
        finally:
            child_sock.close()
        worker = cls(process, await UNIXSocketStream.from_socket(parent_sock), workdir, limits, room)
        try:
            with anyio.move_on_after(limits.start_timeout_s):
                ready = await worker.recv()
                if ready.get("op") == Op.READY:
                    worker.confinement = Fields(ready, "the ready message").texts("confinement", 300)[:50]
                    return worker
        except (WorkerLost, protocol.ProtocolError) as lost:
            await worker.stop()
            raise WorkerStartError(f"the sandbox worker failed to start: {lost}") from None
        await worker.stop()
        raise WorkerStartError("the sandbox worker did not report ready")

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        return self.process.returncode

    async def send(self, message: dict[str, Any]) -> None:
        try:
            await self._stream.send(protocol.encode(message))
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
            raise WorkerLost("crashed", await self.exit_reason()) from exc

    async def recv(self) -> dict[str, Any]:
        try:
            header = await self._reader.receive_exactly(protocol.HEADER.size)
            (size,) = protocol.HEADER.unpack(header)
            if size > self.limits.max_message_bytes:
                raise WorkerLost("protocol", f"the sandbox sent a {size:,}-byte message, over the limit")
            return protocol.decode(await self._reader.receive_exactly(size))
        except (anyio.IncompleteRead, anyio.EndOfStream, anyio.BrokenResourceError, OSError) as exc:
            raise WorkerLost("crashed", await self.exit_reason()) from exc
        except protocol.ProtocolError as exc:
            raise WorkerLost("protocol", f"the sandbox sent a malformed message: {exc}") from exc

    async def recv_by(self, deadline: float, what: str) -> dict[str, Any]:
        """The next message, or a lost worker if it does not come by ``deadline`` (anyio's clock)."""
        with anyio.move_on_after(max(deadline - anyio.current_time(), 0)):
            return await self.recv()
        raise WorkerLost("timeout", f"the sandbox did not finish {what} in time")

    async def request(self, message: dict[str, Any]) -> int:
        """Send a request that expects an answer, under a fresh id; returns the id."""
        self._last_request += 1
        await self.send({**message, "id": self._last_request})
        return self._last_request

    async def reply(
        self, request_id: int, ops: frozenset[str], what: str, deadline: float | None = None
    ) -> dict[str, Any]:
        """The next frame, which must be one of ``ops`` answering ``request_id`` (or a request of the worker's own,
        when ``ops`` allows it); anything else is a protocol violation. ``what`` is the request, for messages."""
        message = await (self.recv() if deadline is None else self.recv_by(deadline, what))
        return check_reply(message, request_id, ops, what)

    def cpu_used(self) -> float | None:
        """CPU seconds the worker has used, as its ``RLIMIT_CPU`` counts them; None where /proc cannot tell."""
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            return None

    def cpu_left(self) -> float:
        """CPU seconds left before the kernel kills the worker (all of them where /proc cannot tell)."""
        return self.cpu_seconds - (self.cpu_used() or 0.0)

    def has_cpu_for(self, seconds: float) -> bool:
        """Whether the CPU time left covers ``seconds``. A process cannot have used more CPU seconds than its
        age times the machine's CPUs: while that bound already leaves enough, /proc is not read, so the common
        case costs nothing per request."""
        most_used = (time.monotonic() - self.started_at) * (os.cpu_count() or 1)
        return self.cpu_seconds - most_used >= seconds or self.cpu_left() >= seconds

    async def send_fds(self, fds: list[int]) -> None:
        try:
            await self._stream.send_fds(b"F", fds)
        except OSError as exc:
            raise WorkerLost("crashed", await self.exit_reason()) from exc

    def interrupt(self) -> None:
        """Ask running code to stop (it gets an exception; the namespace is kept)."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.process.pid, signal.SIGUSR1)

    async def exit_reason(self) -> str:
        with anyio.move_on_after(2):
            await self.process.wait()
        return f"the sandbox process {describe_exit(self.process.returncode)}"

    async def stop(self) -> str:
        """Kill the whole process group, reap it, remove the working directory; returns how it ended."""
        with contextlib.suppress(Exception):
            await self._stream.aclose()
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)
        with anyio.move_on_after(10):
            await self.process.wait()
        with contextlib.suppress(Exception):
            await self.process.aclose()
        shutil.rmtree(self.workdir, ignore_errors=True)
        return describe_exit(self.process.returncode)


async def _spawn(config: dict[str, Any], workdir: Path, child_sock: socket.socket) -> Process:
    """A worker started from nothing: a fresh interpreter in isolated mode."""
    env = {"PATH": os.defpath, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "HOME": str(workdir), "TMPDIR": str(workdir)}
    command = [sys.executable, "-I", "-B", "-c", _BOOTSTRAP, _PACKAGE_ROOT, json.dumps(config)]
    try:
        return await anyio.open_process(
            command,
            # Never inherit: in stdio mode the server's stdout is the protocol channel.
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=workdir,
            env=env,
            start_new_session=True,
            pass_fds=(child_sock.fileno(),),
        )
    except OSError as exc:
        raise WorkerStartError(f"could not start the sandbox worker: {exc}") from exc


def _inherited_cpu_limit(allowance: int) -> int:
    """What the worker will get: the allowance, unless the server's own hard limit (inherited) is lower."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on Windows, which the sandbox does not support
        return allowance
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    return allowance if hard == resource.RLIM_INFINITY else min(allowance, hard)


def check_reply(message: dict[str, Any], request_id: int, ops: frozenset[str], what: str) -> dict[str, Any]:
    """``message`` if it is one of ``ops`` and answers ``request_id``; a lost worker (protocol) otherwise."""
    op = message.get("op")
    if type(op) is not str or op not in ops:
        shown = f"an unexpected {clean_text(op, 40)!r} message" if type(op) is str else "a message with no operation"
        raise WorkerLost("protocol", f"the sandbox sent {shown} while {what}")
    got = message.get("id")
    if type(got) is not int:
        raise WorkerLost("protocol", f"the sandbox sent a {op!r} message without a request id while {what}")
    if op not in WORKER_REQUESTS and got != request_id:
        raise WorkerLost(
            "protocol", f"the sandbox answered request {got} while request {request_id} was in flight ({what})"
        )
    return message
