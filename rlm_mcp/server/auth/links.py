"""Short-lived signed links to one trajectory's page, for a browser that cannot send a bearer header.

A browser opening ``/trajectories/<id>`` sends no ``Authorization`` header, and
a cookie would need a login flow this server does not have. So ``get_trajectory``
over HTTP returns a ``viewer_url`` carrying ``?link=<expiry>.<mac>``: an
HMAC-SHA256 over the trajectory id, the principal that owns it and the expiry.
The link opens that one trajectory (and the nested runs it embeds, which have
the same owner) until it expires, and nothing else: it is not a token for the
MCP endpoint, and names neither the principal nor any secret. Anyone holding
the link within its lifetime can open the page, like any capability URL, so it
is short-lived (:data:`LINK_TTL_S`) and the page is served with
``Referrer-Policy: no-referrer`` and ``Cache-Control: no-store``.

The key is derived from the first ``RLM_REQUEST_STATE_KEYS`` entry (so a link
made by one replica opens on any other; every listed key is tried, for
rotation), or is random per process when none is set.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import time

LINK_TTL_S = 900
_CONTEXT = b"rlm-mcp viewer link v1"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


class ViewerLinks:
    def __init__(self, secrets: list[str] | None = None, ttl_s: int = LINK_TTL_S):
        raw = [s.encode() for s in secrets] if secrets else [os.urandom(32)]
        self._keys = [hmac.new(secret, _CONTEXT, hashlib.sha256).digest() for secret in raw]
        self.ttl_s = ttl_s

    @staticmethod
    def _mac(key: bytes, trajectory_id: str, owner: str, expires: int) -> str:
        message = f"{trajectory_id}\n{owner}\n{expires}".encode("utf-8", "surrogatepass")
        return _b64(hmac.new(key, message, hashlib.sha256).digest())

    def sign(self, trajectory_id: str, owner: str, now: float | None = None) -> str:
        expires = int((time.time() if now is None else now) + self.ttl_s)
        return f"{expires}.{self._mac(self._keys[0], trajectory_id, owner, expires)}"

    def valid(self, link: str, trajectory_id: str, owner: str, now: float | None = None) -> bool:
        expiry, _, mac = link.partition(".")
        if not expiry.isdigit() or len(expiry) > 12 or not mac:
            return False
        expires = int(expiry)
        if expires < (time.time() if now is None else now):
            return False
        given = mac.encode("utf-8", "surrogatepass")
        expected = [self._mac(key, trajectory_id, owner, expires).encode() for key in self._keys]
        return any([hmac.compare_digest(given, candidate) for candidate in expected])  # a list: every key is tried
