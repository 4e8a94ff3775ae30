"""The name of every message on the parent <-> worker channel, written once.

Each frame is a JSON object whose ``"op"`` is one of these names. Both processes
compare against and send these constants (never a string literal of their own), so a
renamed message cannot leave one side speaking an older word. Plain ``str`` constants
rather than an :class:`enum.Enum`: a frame decodes to plain strings, and an enum member
hashes by its name, not its value, so ``"result" in {an enum member}`` would be false.
"""

from __future__ import annotations

from typing import Final


class Op:
    """Message names (the value of a frame's ``"op"``), grouped by who sends them and when."""

    # The parent's requests, one at a time; the worker answers each with the request's id.
    EXEC: Final = "exec"
    LOAD: Final = "load"
    VARS: Final = "vars"
    """Also the name of the answer."""
    SNAPSHOT: Final = "snapshot"
    """Also the name of the answer."""
    RESTORE: Final = "restore"
    SHUTDOWN: Final = "shutdown"

    # The worker's answers.
    READY: Final = "ready"
    """Sent once, unasked, when the worker (or the template) is confined and listening."""
    RESULT: Final = "result"
    LOADED: Final = "loaded"
    LOAD_MORE: Final = "load_more"
    """While loading: the worker has read a batch of descriptors and wants the next."""
    LOAD_ERROR: Final = "load_error"
    RESTORED: Final = "restored"
    INTERNAL_ERROR: Final = "internal_error"

    # The worker's own requests while code runs (they carry the worker's ids), and the parent's answers.
    LLM: Final = "llm"
    LLM_RESULT: Final = "llm_result"
    CALL: Final = "call"
    CALL_RESULT: Final = "call_result"

    # The template (sandbox.template <-> sandbox.worker.forking): fork a worker, and what became of it.
    FORK: Final = "fork"
    FORKED: Final = "forked"
    FORK_FAILED: Final = "fork_failed"
    EXITED: Final = "exited"


WORKER_REQUESTS: Final = frozenset({Op.LLM, Op.CALL})
"""Frames the worker starts itself (while code runs); they carry the worker's own ids."""

ANSWERS: Final = {Op.LLM: Op.LLM_RESULT, Op.CALL: Op.CALL_RESULT}
"""The parent's answer to each of the worker's requests."""
