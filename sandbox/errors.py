"""The sandbox's exceptions: what a caller may see, and how a worker can be lost."""

from __future__ import annotations

from typing import Literal


class SandboxError(Exception):
    """Base class for sandbox failures the caller should report."""


class WorkerStartError(SandboxError):
    """The worker process did not start or did not confine itself."""


class LoadError(SandboxError):
    """A document could not be opened or decoded."""


class CodeTooLarge(SandboxError):
    """The code exceeds ``max_code_chars``."""


class WorkerLost(SandboxError):
    """The worker stopped answering (timeout), died, or broke the protocol: it must be replaced."""

    def __init__(self, kind: Literal["timeout", "crashed", "protocol", "cancelled"], message: str):
        super().__init__(message)
        self.kind = kind
        self.undelivered = False
        """The request that found the worker gone never reached it (so nothing of it ran)."""
