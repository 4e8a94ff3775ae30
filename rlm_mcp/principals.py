"""Who owns what: the principal a request acts for, as the core sees it (a plain string).

Over stdio, and over HTTP without authentication, there is one principal,
:data:`LOCAL`: the client that launched the server (or everyone who can reach a
loopback port). Over HTTP with authentication, the token verifiers of
:mod:`rlm_mcp.server.auth` put the principal into the SDK's ``AccessToken.subject``
(``token:<name>`` for a static bearer token, ``jwt:<claim>`` for a JWT), and
every session, run, trajectory and inline corpus a request creates belongs to
it. The core takes the principal as an ``owner`` argument and never looks at
MCP; only the MCP layer calls :func:`current`.
"""

from __future__ import annotations

import hashlib

from mcp.server.auth.middleware.auth_context import get_access_token

LOCAL = "local"
"""The one principal of stdio and of unauthenticated HTTP; also the owner of records written before owners."""


def current() -> str:
    """The principal of the request being served: its verified token's subject, else :data:`LOCAL`."""
    token = get_access_token()
    if token is None:
        return LOCAL
    return token.subject or f"client:{token.client_id}"


def directory_name(owner: str) -> str:
    """A file-name-safe, fixed-length name for an owner's private folder (the owner's name is never a path)."""
    return hashlib.sha256(owner.encode("utf-8", "surrogatepass")).hexdigest()[:32]
