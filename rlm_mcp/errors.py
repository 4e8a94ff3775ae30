"""Errors meant for the caller: each message says what went wrong and what to do about it.

The MCP layer turns every :class:`RLMError` into a tool error with its message
as the text; anything else is a bug and is logged with its traceback.
"""

from __future__ import annotations


class RLMError(Exception):
    """Base class for failures reported to the caller as they are."""


class InvalidInput(RLMError):
    """The request itself is wrong (missing or conflicting fields, bad values)."""


class PathRefused(InvalidInput):
    """A path is outside the allowed roots, or not a regular file or directory."""


class NotFound(RLMError):
    """A session, trajectory or file does not exist."""


class CapacityExceeded(RLMError):
    """A server-wide limit (live sessions, corpus size) would be exceeded."""


class ModelError(RLMError):
    """A model call failed; ``kind`` tells retryable faults from configuration mistakes."""

    def __init__(self, message: str, kind: str = "error"):
        super().__init__(message)
        self.kind = kind
