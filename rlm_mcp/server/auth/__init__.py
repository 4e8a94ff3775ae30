"""HTTP authentication with the mcp SDK's own machinery, and the rules for exposing a server.

The SDK does the protocol: given a ``TokenVerifier`` and ``AuthSettings``,
``MCPServer`` puts its bearer middleware in front of ``/mcp`` (401 with
``WWW-Authenticate: Bearer ...`` for a missing or refused token), serves the
RFC 9728 protected resource metadata when a resource URL is set, and makes the
verified token available to handlers (``get_access_token()``), from which
:func:`rlm_mcp.principals.current` takes the principal. This package supplies
the verifiers (static tokens in :mod:`.static`, an issuer's JWTs in
:mod:`.oidc`), the signed viewer links (:mod:`.links`), and the start-up rule: a
server reachable beyond this machine must authenticate, unless told otherwise.
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mcp.server.auth.provider import AccessToken, TokenVerifier
from mcp.server.auth.routes import build_resource_metadata_url
from mcp.server.auth.settings import AuthSettings
from mcp.server.transport_security import TransportSecuritySettings

from rlm_mcp.auth_tokens import parse_token_entries
from rlm_mcp.errors import InvalidInput, RLMError
from rlm_mcp.server.auth.oidc import JWTVerifier
from rlm_mcp.server.auth.static import StaticTokenVerifier, read_token_file

if TYPE_CHECKING:
    from rlm_mcp.config import Settings

log = logging.getLogger(__name__)
NO_ISSUER = "http://127.0.0.1"
"""``AuthSettings`` requires an issuer; static tokens have none, and the SDK publishes it only with resource metadata,
which is served for JWTs only."""


class AnyVerifier:
    """Static tokens first (a table lookup), then the issuer's JWTs."""

    def __init__(self, verifiers: list[TokenVerifier]):
        self.verifiers = verifiers

    async def verify_token(self, token: str) -> AccessToken | None:
        for verifier in self.verifiers:
            found = await verifier.verify_token(token)
            if found is not None:
                return found
        return None


@dataclass(frozen=True)
class Authentication:
    verifier: TokenVerifier
    settings: AuthSettings

    @property
    def resource_metadata_url(self) -> str | None:
        """Where clients read this server's protected resource metadata (for ``WWW-Authenticate``), if published."""
        url = self.settings.resource_server_url
        return None if url is None else str(build_resource_metadata_url(url))


def from_settings(settings: Settings) -> Authentication | None:
    """The configured verification, or None when the server authenticates nobody."""
    entries = [entry.get_secret_value() for entry in settings.auth_tokens]
    if settings.auth_tokens_file is not None:
        try:
            entries += read_token_file(settings.auth_tokens_file)
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"RLM_AUTH_TOKENS_FILE cannot be read: {exc}") from None
    try:
        tokens = parse_token_entries(entries, "RLM_AUTH_TOKENS and RLM_AUTH_TOKENS_FILE")
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    verifiers: list[TokenVerifier] = []
    if tokens:
        verifiers.append(StaticTokenVerifier(tokens))
    if settings.auth_issuer:
        verifiers.append(
            JWTVerifier(
                settings.auth_issuer, settings.auth_audience, settings.auth_jwks_url, settings.auth_principal_claim
            )
        )
    if not verifiers:
        return None
    resource = settings.auth_resource_url if settings.auth_issuer else None
    auth_settings = AuthSettings.model_validate(  # from strings: the SDK keeps a path-less issuer exactly as given
        {
            "issuer_url": settings.auth_issuer or NO_ISSUER,
            "resource_server_url": resource,
            "validate_token_resource": False,  # the verifiers check the audience themselves
        }
    )
    verifier = verifiers[0] if len(verifiers) == 1 else AnyVerifier(verifiers)
    return Authentication(verifier=verifier, settings=auth_settings)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_exposure(settings: Settings, host: str, authentication: Authentication | None) -> None:
    """Refuse to serve everyone's sessions to a network: off loopback, HTTP needs auth or an explicit waiver."""
    if authentication is not None or is_loopback(host):
        return
    if not settings.allow_unauthenticated:
        raise RLMError(
            f"refusing to serve on {host} without authentication: anyone who reaches it could read and run every "
            "session. Set RLM_AUTH_TOKENS (or RLM_AUTH_TOKENS_FILE) or RLM_AUTH_ISSUER, or bind 127.0.0.1; if "
            "something in front of it authenticates every request (AgentCore with IAM), set "
            "RLM_ALLOW_UNAUTHENTICATED=true"
        )
    log.warning(
        "serving on %s WITHOUT authentication (RLM_ALLOW_UNAUTHENTICATED=true): every client shares every session",
        host,
    )


def transport_security(host: str) -> TransportSecuritySettings | None:
    """The Host/Origin checks the SDK applies to /mcp by default for this bind address (the same settings object
    is given to the SDK and to our own routes, so /mcp, /ping and /trajectories check alike)."""
    if host not in ("127.0.0.1", "localhost", "::1"):  # exactly where the SDK turns its checks on by default
        return None
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*"],
        allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"],
    )
