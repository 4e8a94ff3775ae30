"""JWTs from an OAuth/OIDC issuer (Cognito, Entra ID, Auth0, Okta, Keycloak, ...), verified here.

This is resource-server token verification as the MCP authorization spec
describes it: the server never issues tokens, it checks the ones an
authorization server issued. A token is accepted when:

- its header names an asymmetric algorithm (RS*, PS*, ES*, EdDSA; never ``none``
  or a shared-secret HS*), and it is signed by a key of the issuer's JWKS
  (``RLM_AUTH_JWKS_URL``, or the ``jwks_uri`` of the issuer's OIDC discovery
  document), fetched over https and cached; an unknown ``kid`` refetches the set
  at most once per :data:`REFRESH_COOLDOWN_S`, so forged key ids cannot make the
  server hammer the issuer;
- ``iss`` is exactly ``RLM_AUTH_ISSUER``, ``exp`` is in the future (``nbf`` and
  ``iat``, when present, are checked too), with :data:`LEEWAY_S` of clock skew;
- its ``aud`` (a string or a list), or its ``client_id`` (Cognito access tokens
  carry that instead of ``aud``), is one of ``RLM_AUTH_AUDIENCE``;
- the principal claim (``sub`` unless ``RLM_AUTH_PRINCIPAL_CLAIM`` says
  otherwise) is a non-empty string.

PyJWT does the cryptography and the registered-claim checks; its
``PyJWKClient`` fetches and caches the key set. Verification is blocking
(the first use of a key set is a network fetch), so it runs in a worker thread.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.request
from typing import Any
from urllib.parse import urlsplit

import anyio.to_thread
import jwt
from jwt import PyJWK, PyJWKClient
from mcp.server.auth.provider import AccessToken

log = logging.getLogger(__name__)

ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
LEEWAY_S = 30
REFRESH_COOLDOWN_S = 30.0
FETCH_TIMEOUT_S = 10.0
MAX_DOCUMENT_BYTES = 1 << 20


def _safe_url(url: str) -> bool:
    """https, or http to this machine (a test issuer, a sidecar): keys must not travel where they can be swapped."""
    parts = urlsplit(url)
    return parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1"))


def _fetch_json(url: str) -> Any:
    request = urllib.request.Request(url, headers={"Accept": "application/json", "User-Agent": "rlm-mcp"})
    with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT_S) as response:
        return json.loads(response.read(MAX_DOCUMENT_BYTES))


class JWTVerifier:
    """The SDK's ``TokenVerifier`` for JWTs of one issuer; the principal is ``jwt:<claim value>``."""

    def __init__(self, issuer: str, audience: list[str], jwks_url: str | None = None, principal_claim: str = "sub"):
        self.issuer = issuer
        self.audience = frozenset(audience)
        self.principal_claim = principal_claim
        self._jwks_url = jwks_url
        self._client: PyJWKClient | None = None
        self._last_refresh = 0.0
        self._lock = threading.Lock()

    async def verify_token(self, token: str) -> AccessToken | None:
        if token.count(".") != 2:
            return None  # not a JWS compact token: nothing to fetch keys for
        try:
            return await anyio.to_thread.run_sync(self._verify, token)
        except jwt.PyJWTError as exc:
            log.info("refused a JWT: %s: %s", type(exc).__name__, exc)
        except (OSError, ValueError) as exc:  # the issuer's discovery document or key set could not be read
            log.warning("could not check a JWT against %s: %s", self.issuer, exc)
        return None

    # -- blocking part, in a worker thread ------------------------------------------------------

    def _keys(self) -> PyJWKClient:
        with self._lock:
            if self._client is None:
                url = self._jwks_url or self._discover()
                self._client = PyJWKClient(url, cache_jwk_set=True, lifespan=300, timeout=FETCH_TIMEOUT_S)
            return self._client

    def _discover(self) -> str:
        """The issuer's ``jwks_uri``, from its OIDC discovery document (which must name the same issuer)."""
        document = _fetch_json(self.issuer.rstrip("/") + "/.well-known/openid-configuration")
        if not isinstance(document, dict) or document.get("issuer") != self.issuer:
            raise ValueError("the discovery document does not name this issuer")
        jwks_uri = document.get("jwks_uri")
        if not isinstance(jwks_uri, str) or not _safe_url(jwks_uri):
            raise ValueError("the discovery document has no https jwks_uri")
        return jwks_uri

    def _signing_key(self, kid: Any) -> PyJWK:
        client = self._keys()
        key = PyJWKClient.match_kid(client.get_signing_keys(), kid) if isinstance(kid, str) else None
        if key is None and isinstance(kid, str):
            with self._lock:
                stale = time.monotonic() - self._last_refresh >= REFRESH_COOLDOWN_S
                if stale:
                    self._last_refresh = time.monotonic()
            if stale:  # the issuer may have rotated its keys
                key = PyJWKClient.match_kid(client.get_signing_keys(refresh=True), kid)
        if key is None:
            raise jwt.InvalidTokenError("no key of the issuer matches the token's kid")
        return key

    def _verify(self, token: str) -> AccessToken:
        header = jwt.get_unverified_header(token)
        algorithm = header.get("alg")
        if algorithm not in ALGORITHMS:
            raise jwt.InvalidAlgorithmError(f"algorithm {algorithm!r} is not accepted")
        key = self._signing_key(header.get("kid"))
        claims = jwt.decode(  # given the PyJWK itself, PyJWT also holds the token's alg to the key's own
            token,
            key,
            algorithms=[algorithm],
            issuer=self.issuer,
            leeway=LEEWAY_S,
            options={"require": ["exp", "iss"], "verify_aud": False},
        )
        audiences = claims.get("aud")
        audiences = [audiences] if isinstance(audiences, str) else audiences if isinstance(audiences, list) else []
        presented = {a for a in audiences if isinstance(a, str)} | (
            {claims["client_id"]} if isinstance(claims.get("client_id"), str) else set()
        )
        if not presented & self.audience:
            raise jwt.InvalidAudienceError("neither aud nor client_id is an accepted audience")
        principal = claims.get(self.principal_claim)
        if isinstance(principal, int) and not isinstance(principal, bool):
            principal = str(principal)
        if not isinstance(principal, str) or not principal:
            raise jwt.MissingRequiredClaimError(self.principal_claim)
        client_id = claims.get("client_id") or claims.get("azp") or next(iter(sorted(presented)))
        scopes = claims.get("scope")
        return AccessToken(
            token=token,
            client_id=str(client_id),
            scopes=scopes.split() if isinstance(scopes, str) else [],
            expires_at=int(claims["exp"]),
            subject=f"jwt:{principal}",
            claims={"iss": claims["iss"]},
        )
