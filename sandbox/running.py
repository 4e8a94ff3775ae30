"""Running one cell in the worker: the frames exchanged while code runs, and what a lost worker reads as.

Apart from :mod:`sandbox.host`, which owns the worker's life (start, replace, restart, the
lock), because this is the one conversation of several turns: while code runs the worker
may ask for sub-calls (``llm``) and named calls (``call``), each served through the
caller's handler, until its result comes; a cancelled caller leaves code to interrupt and
frames to drain. The host decides what happens when that fails (the worker is replaced);
this module speaks the protocol and turns a lost worker into a result the caller can read.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio

from sandbox.errors import WorkerLost
from sandbox.fields import Fields
from sandbox.limits import SandboxLimits
from sandbox.process import WorkerProcess
from sandbox.protocol import ANSWERS, WORKER_REQUESTS, Op, ProtocolError
from sandbox.results import CallHandler, ExecError, ExecResult, SubcallHandler
from sandbox.serving import serve_call, serve_subcall

EXEC_FRAMES = WORKER_REQUESTS | {Op.RESULT, Op.INTERNAL_ERROR}
"""What the worker may send while code runs: its own requests, and the end of the cell."""

Pending = tuple[str, int] | None
"""The answer op and id of the worker's request being served, if one is."""


async def run_cell(
    worker: WorkerProcess,
    code: str,
    timeout: float,
    limits: SandboxLimits,
    on_subcall: SubcallHandler | None,
    on_call: CallHandler | None,
    stop: Callable[[int, Pending], Awaitable[None]],
) -> ExecResult:
    """Run ``code``, serving the worker's requests, until its result; if the caller cancels, ``stop`` (shielded).

    Raises :class:`WorkerLost` when the worker overruns the timeout plus the kill grace (compute time:
    time spent serving its requests does not count) or sends a malformed frame.
    """
    try:
        request_id = await worker.request({"op": Op.EXEC, "code": code, "timeout": timeout})
    except WorkerLost as lost:
        lost.undelivered = True  # it died before the code reached it: the caller may run the code on a new one
        raise
    budget = timeout + limits.kill_grace_s
    pending: Pending = None
    try:
        while True:
            started = anyio.current_time()
            with anyio.move_on_after(max(budget, 0)) as scope:
                message = await worker.reply(request_id, EXEC_FRAMES, "running code")
            if scope.cancelled_caught:
                raise WorkerLost("timeout", "hard timeout")
            budget -= anyio.current_time() - started
            try:
                if message["op"] == Op.RESULT:
                    return ExecResult.parse(message, limits.max_output_chars, limits.max_final_chars)
                if message["op"] == Op.INTERNAL_ERROR:
                    text = Fields(message, "the internal error").text("message", 2000)
                    error = ExecError(type="SandboxError", message=text)
                    return ExecResult(stdout="", error=error, final=None, variables=[], elapsed_ms=0.0)
                pending = (ANSWERS[message["op"]], message["id"])
                if message["op"] == Op.LLM:
                    answer = await serve_subcall(message, on_subcall)
                else:
                    answer = await serve_call(message, on_call)
            except ProtocolError as exc:
                raise WorkerLost("protocol", f"the sandbox sent a malformed message: {exc}") from None
            await worker.send(answer)
            pending = None
    except anyio.get_cancelled_exc_class():
        with anyio.CancelScope(shield=True):
            await stop(request_id, pending)
        raise


async def stop_cell(worker: WorkerProcess, request_id: int, pending: Pending, grace: float) -> None:
    """After the caller cancelled: interrupt the code, and drain its frames up to its result.

    Raises :class:`WorkerLost` or ``TimeoutError`` when the worker does not stop within ``grace``
    seconds; the caller then replaces it.
    """
    if pending is not None:
        await worker.send({"op": pending[0], "id": pending[1], "interrupt": True})
    else:
        worker.interrupt()
    with anyio.fail_after(grace):
        while True:
            message = await worker.reply(request_id, EXEC_FRAMES, "stopping code")
            if message["op"] not in WORKER_REQUESTS:
                return
            await worker.send({"op": ANSWERS[message["op"]], "id": message["id"], "interrupt": True})


def lost_result(lost: WorkerLost, timeout: float, kill_grace_s: float, notes: list[str]) -> ExecResult:
    """The result of code whose worker was lost (and has been replaced, with ``notes`` on how that went)."""
    if lost.kind == "timeout":
        kind, message = (
            "TimeoutError",
            (
                f"execution exceeded {timeout:g} s and did not stop when interrupted, so the sandbox was "
                f"killed after a further {kill_grace_s:g} s"
            ),
        )
    elif lost.kind == "cancelled":
        kind, message = "Cancelled", "execution was cancelled and did not stop, so the sandbox was killed"
    elif lost.kind == "protocol":
        kind = "ProtocolViolation"
        message = f"the sandbox process broke the channel protocol, so it was killed: {lost}"
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
