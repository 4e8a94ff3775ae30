"""The ``NAME:TOKEN`` entries of ``RLM_AUTH_TOKENS`` and ``RLM_AUTH_TOKENS_FILE``.

Settings validation needs the parser, and the ground floor imports nothing above it, so it lives here
rather than with the token verifier in ``rlm_mcp.server.auth``, which uses it too.
"""

from __future__ import annotations

import re

MIN_TOKEN_CHARS = 32
_TOKEN_NAME = re.compile(r"^[A-Za-z0-9._@+-]{1,64}$")
TOKEN_HOW_TO = "make a token with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"


def parse_token_entries(entries: list[str], where: str) -> dict[str, str]:
    """``NAME:TOKEN`` entries as {name: token}; a ValueError says which entry is wrong and why."""
    tokens: dict[str, str] = {}
    for number, entry in enumerate(entries, start=1):
        name, sep, token = entry.strip().partition(":")
        if not sep or not _TOKEN_NAME.match(name):
            raise ValueError(
                f"entry {number} of {where} is not NAME:TOKEN (NAME of letters, digits and ._@+-, then ':', "
                "then the token)"
            )
        if len(token) < MIN_TOKEN_CHARS or any(ch.isspace() for ch in token):
            raise ValueError(
                f"the token of {name!r} in {where} needs at least {MIN_TOKEN_CHARS} characters and no spaces; "
                f"{TOKEN_HOW_TO}"
            )
        if name in tokens:
            raise ValueError(f"{name!r} appears twice in {where}; give each principal one entry")
        if token in tokens.values():
            raise ValueError(f"{name!r} in {where} reuses another principal's token; each needs its own")
        tokens[name] = token
    return tokens
