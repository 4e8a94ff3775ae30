"""Static bearer tokens: the simple way to give a few people or services their own principal.

Each token maps to a principal name (``alice:<token>``). A presented token is
hashed and compared against every configured token's hash in constant time, so
neither the comparison nor the loop says how much of a token was right or which
entry came close. Tokens are never logged or echoed: errors name the entry by
its position and principal name only.
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

from mcp.server.auth.provider import AccessToken


def read_token_file(path: Path) -> list[str]:
    """The entries of a tokens file: one ``NAME:TOKEN`` per line; blank lines and ``#`` comments are skipped."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


class StaticTokenVerifier:
    """The SDK's ``TokenVerifier`` for a fixed table of tokens; the principal is ``token:<name>``."""

    def __init__(self, tokens: dict[str, str]):
        self._digests = [(name, _digest(token)) for name, token in tokens.items()]

    async def verify_token(self, token: str) -> AccessToken | None:
        presented = _digest(token)
        found: str | None = None
        for name, digest in self._digests:  # no early exit: every entry costs the same
            if hmac.compare_digest(presented, digest):
                found = name
        if found is None:
            return None
        return AccessToken(token=token, client_id=found, scopes=[], subject=f"token:{found}")
