"""How a failure of user code reads to the caller: type, message, and a traceback through its own lines."""

from __future__ import annotations

import traceback
from typing import Any

from sandbox.worker.interrupts import ExecInterrupted

MAX_MESSAGE_CHARS = 4000


def clip(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    return text if len(text) <= limit else text[:limit] + f"... [{len(text) - limit:,} more characters]"


def _safe_str(value: object) -> str:
    """``str(value)`` as an exact str (the user's ``__str__`` may return a subclass whose methods lie)."""
    try:
        return str.__str__(str(value))
    except ExecInterrupted:
        raise
    except BaseException:
        return f"<{type(value).__name__} whose str() failed>"


def describe_exception(exc: BaseException) -> dict[str, Any]:
    """Type, message and a traceback that shows only the user's own lines."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.startswith("<cell-")]
    message = _safe_str(exc)
    if issubclass(type(exc), MemoryError) and not message:
        message = "out of memory: the sandbox's memory limit was reached"
    lines = ["Traceback (most recent call last):\n", *traceback.StackSummary.from_list(frames).format()]
    lines.append(f"{type(exc).__name__}: {message}" if message else type(exc).__name__)
    return {
        "type": type(exc).__name__,
        "message": clip(message),
        "traceback": clip("".join(lines if frames else lines[-1:]), 4 * MAX_MESSAGE_CHARS),
        "line": frames[-1].lineno if frames else None,
    }


def describe_syntax_error(exc: SyntaxError) -> dict[str, Any]:
    detail = "".join(traceback.format_exception_only(SyntaxError, exc)).rstrip()
    return {
        "type": "SyntaxError",
        "message": clip(exc.msg or str(exc)),
        "traceback": clip(detail),
        "line": exc.lineno,
    }
