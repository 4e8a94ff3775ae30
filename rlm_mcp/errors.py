"""Errors meant for the caller: each message says what went wrong and what to do about it.

The MCP layer turns every :class:`RLMError` into a tool error with its message
as the text; anything else is a bug and is logged with its traceback. Every
error class a caller can see is defined here (the sandbox's own, which never
import rlm_mcp, are in ``sandbox.errors``); exceptions a module raises and
catches itself stay in that module.
"""

from __future__ import annotations

import json
from enum import StrEnum

from pydantic import ValidationError


class RLMError(Exception):
    """Base class for failures reported to the caller as they are."""


class InvalidInput(RLMError):
    """The request itself is wrong (missing or conflicting fields, bad values)."""


class PathRefused(InvalidInput):
    """A path is outside the allowed roots, or not a regular file or directory."""


class Binary(InvalidInput):
    """A file that is not text (and not a PDF or gzip file). Loading a folder skips such files."""


class TooLarge(InvalidInput):
    """A source grew past the corpus limit while being converted (a gzip bomb stops here)."""


class NotFound(RLMError):
    """A session, trajectory or file does not exist."""


class Damaged(RLMError):
    """A stored record cannot be read: the message says which, where, and what is wrong with it."""


class CapacityExceeded(RLMError):
    """A server-wide limit (live sessions, corpus size) would be exceeded."""


class StoreError(RLMError):
    """The store could not be reached or refused the operation; the message says which store and why."""


class KeyNotFound(RLMError, KeyError):
    """No object under this key in a store. Also a ``KeyError``, the way a mapping says the same."""

    def __str__(self) -> str:
        return f"nothing is stored under {self.args[0]!r}" if self.args else "nothing is stored under that key"


class ModelErrorKind(StrEnum):
    """What kind of failure a :class:`ModelError` is. The values are written into trajectories and span
    attributes and compared by tests, so they are part of the outside world's vocabulary: never rename one."""

    CONFIG = "config"
    """A setting, a credential or a model name is wrong: retrying will not help, the user must change something."""
    VALIDATION = "validation"
    """The backend refused this request (empty prompt, a parameter the model does not take)."""
    TIMEOUT = "timeout"
    """No answer in time."""
    UNAVAILABLE = "unavailable"
    """The backend cannot be reached or could not serve the model just now."""
    MALFORMED = "malformed"
    """The backend answered something that cannot be read."""
    AUTH = "auth"
    """The credentials were refused or lack the permission."""
    THROTTLED = "throttled"
    """The backend kept rate-limiting after retries."""
    CONTEXT_WINDOW = "context_window"
    """The input is longer than the model takes."""
    TOOLS_UNSUPPORTED = "tools_unsupported"
    """The backend or model has no tool calling (the root then falls back to text, when allowed)."""
    ERROR = "error"
    """Anything else."""


class ModelError(RLMError):
    """A model call failed; ``kind`` tells retryable faults from configuration mistakes."""

    def __init__(self, message: str, kind: ModelErrorKind = ModelErrorKind.ERROR):
        super().__init__(message)
        self.kind = ModelErrorKind(kind)  # a misspelt kind fails here, not silently in a comparison


class Redactor:
    """Takes the server's own locations out of a message meant for a client.

    Messages are written to name what the client gave (its path, a document's name relative to its allowed
    root), never the server's directories; this is the backstop for text that came from elsewhere (an OS error,
    a library, a store) on its way out: each location becomes a placeholder (``<data dir>``, ``~``, ...).
    """

    def __init__(self, places: dict[str, str]):
        # Longest first, so the data directory inside the home directory is named as such.
        self._places = sorted(
            ((place.rstrip("/"), name) for place, name in places.items() if place.rstrip("/")),
            key=lambda item: -len(item[0]),
        )

    def __call__(self, text: str) -> str:
        for place, name in self._places:
            text = text.replace(place, name)
        return text


def describe_damage(exc: Exception) -> str:
    """What is wrong with a stored record that could not be read, in a few words."""
    if isinstance(exc, json.JSONDecodeError):
        return f"not valid JSON ({exc.msg} at character {exc.pos + 1})"
    if isinstance(exc, UnicodeDecodeError):
        return f"not valid UTF-8 (at byte {exc.start + 1})"
    if isinstance(exc, ValidationError):
        errors = exc.errors()
        if all(e["type"] == "missing" for e in errors):
            names = ", ".join(".".join(str(part) for part in e["loc"]) for e in errors)
            return f"required fields are missing: {names}"
        first = errors[0]
        place = ".".join(str(part) for part in first["loc"]) or "the record"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        return f"{place}: {first['msg']}{more}"
    if isinstance(exc, KeyError):
        return f"the field {exc} is missing"
    return str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"
