"""Session and trajectory ids: made here, and checked wherever one comes in from a caller.

Ids end up in file names and store keys, so anything but the expected shape is
refused before it is used.
"""

from __future__ import annotations

import re
import secrets

from rlm_mcp.errors import InvalidInput

_ID = re.compile(r"^[st]_[A-Za-z0-9_-]{8,64}$")


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_urlsafe(12)}"


def check_id(value: str, what: str) -> str:
    """Ids end up in file names: anything but the expected shape is refused."""
    if not isinstance(value, str) or not _ID.match(value):
        raise InvalidInput(f"{value!r} is not a valid {what} id")
    return value
