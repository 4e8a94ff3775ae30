"""HTTP principals: bearer tokens and JWTs through the SDK's own auth, and nothing shared between principals.

One server, started as a user would start it, accepts two static tokens (alice,
bob) and the JWTs of an issuer played by a small OIDC server on loopback (keys
generated here). Each principal speaks through a real ``mcp.Client`` whose HTTP
client carries its ``Authorization`` header. Whatever one principal made, the
other cannot list, run, read, load, view or close, and every such attempt reads
exactly like the answer for an id that never existed.
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx2
import jwt
import pytest
from conftest import ROOT_MODEL, HttpServer, free_port, server_env
from cryptography.hazmat.primitives.asymmetric import rsa
from helpers import call, call_error
from jwt.algorithms import RSAAlgorithm
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from rlm_mcp.testing.bedrock import code, scripted

ALICE = secrets.token_urlsafe(32)
BOB = secrets.token_urlsafe(32)
AUDIENCE = "rlm-api"
MCP_ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
HELLO = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}},
}
"""The first request of a handshake-era client: answered 200 by any server that lets the caller in."""


class Issuer:
    """An OIDC issuer on loopback: a discovery document and a JWKS with one RSA key; it signs what it is told."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.fetches: list[str] = []
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                issuer.fetches.append(self.path)
                if self.path == "/.well-known/openid-configuration":
                    body: Any = {"issuer": issuer.url, "jwks_uri": f"{issuer.url}/jwks.json"}
                elif self.path == "/jwks.json":
                    public = RSAAlgorithm.to_jwk(issuer.key.public_key(), as_dict=True)
                    body = {"keys": [{**public, "kid": "k1", "alg": "RS256", "use": "sig"}]}
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def token(self, *, key: Any = None, kid: str = "k1", algorithm: str = "RS256", **claims: Any) -> str:
        now = int(time.time())
        body = {"iss": self.url, "sub": "carol", "aud": AUDIENCE, "iat": now, "exp": now + 300, **claims}
        body = {name: value for name, value in body.items() if value is not None}
        return jwt.encode(body, key if key is not None else self.key, algorithm=algorithm, headers={"kid": kid})

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def issuer() -> Iterator[Issuer]:
    found = Issuer()
    yield found
    found.close()


@pytest.fixture(scope="module")
def server_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("log") / "server.log"


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, corpus_dir: Path, fake, issuer: Issuer, server_log: Path
) -> Iterator[HttpServer]:
    port = free_port()
    env = server_env(
        tmp_path_factory.mktemp("data"),
        corpus_dir,
        fake.url,
        RLM_AUTH_TOKENS=f"alice:{ALICE},bob:{BOB}",
        RLM_AUTH_ISSUER=issuer.url,
        RLM_AUTH_AUDIENCE=f"{AUDIENCE},cognito-app-client",
        RLM_AUTH_RESOURCE_URL=f"http://127.0.0.1:{port}/mcp",
        RLM_LOG_LEVEL="DEBUG",  # even the most talkative log must hold no token
    )
    with server_log.open("w") as log:
        started = HttpServer(env, port=port, stderr=log)
    yield started
    started.stop()


@contextlib.asynccontextmanager
async def principal(server: HttpServer, token: str) -> AsyncIterator[Client]:
    """A real MCP client whose every request carries ``Authorization: Bearer <token>``."""
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=120) as http,
        Client(streamable_http_client(server.url, http_client=http), read_timeout_seconds=120) as client,
    ):
        yield client


def base(server: HttpServer) -> str:
    return server.url.removesuffix("/mcp")


def same_answer(foreign: str, foreign_id: str, unknown: str, unknown_id: str) -> None:
    """Another principal's object must read exactly like one that never existed (the id aside)."""
    assert foreign.replace(foreign_id, "<id>") == unknown.replace(unknown_id, "<id>"), (foreign, unknown)


async def refused(action: Any) -> str:
    with pytest.raises(MCPError) as caught:
        await action
    return caught.value.error.message


def unknown_session() -> str:
    return "s_" + secrets.token_urlsafe(12)


def unknown_trajectory() -> str:
    return "t_" + secrets.token_urlsafe(12)


# -- refusals at the door -------------------------------------------------------------------------


def test_requests_without_a_valid_token_are_refused(server: HttpServer, issuer: Issuer) -> None:
    listing = HELLO
    for headers in ({}, {"Authorization": "Bearer " + secrets.token_urlsafe(32)}, {"Authorization": f"Basic {ALICE}"}):
        answer = httpx2.post(server.url, json=listing, headers={**MCP_ACCEPT, **headers}, timeout=30)
        assert answer.status_code == 401, answer.text
        challenge = answer.headers["WWW-Authenticate"]
        assert challenge.startswith('Bearer error="invalid_token"')
        metadata_url = f"{base(server)}/.well-known/oauth-protected-resource/mcp"
        assert f'resource_metadata="{metadata_url}"' in challenge
    # RFC 9728: where a client learns which authorization server issues tokens for this resource.
    metadata = httpx2.get(f"{base(server)}/.well-known/oauth-protected-resource/mcp", timeout=30).json()
    assert metadata["resource"] == server.url and metadata["authorization_servers"] == [issuer.url]
    # /ping stays open for the platform's health check.
    assert httpx2.get(f"{base(server)}/ping", timeout=30).json()["status"] in ("Healthy", "HealthyBusy")


@pytest.mark.anyio
async def test_an_mcp_client_without_a_token_cannot_connect(server: HttpServer) -> None:
    with pytest.raises(BaseExceptionGroup) as caught:  # the SDK wraps the refused handshake in its task groups
        async with Client(server.url, read_timeout_seconds=30) as client:
            await client.list_tools()
    assert caught.group_contains(MCPError)


# -- two principals --------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_two_principals_share_nothing(server: HttpServer, fake) -> None:
    async with principal(server, ALICE) as alice, principal(server, BOB) as bob:
        loaded = await call(alice, "load_context", content="alice's secret corpus: ALPHA-7")
        sid, session_trajectory, corpus_id = loaded["session_id"], loaded["trajectory_id"], loaded["corpus_id"]
        await call(alice, "repl_exec", session_id=sid, code="kept = 'alice was here'")
        run = await call(alice, "rlm_query", session_id=sid, query="What is in the corpus?")
        run_trajectory = run["trajectory_id"]
        mine = await call(alice, "list_sessions")
        assert [s["session_id"] for s in mine["sessions"]] == [sid]

        # Listing: bob sees nothing of alice's, through the tool and the resource.
        assert (await call(bob, "list_sessions"))["sessions"] == []
        assert json.loads((await bob.read_resource("rlm://sessions")).contents[0].text)["sessions"] == []

        # Running, loading into, querying and closing her session: "no session", as for one that never was.
        other = unknown_session()
        for tool, arguments in [
            ("repl_exec", {"code": "print(context, kept)"}),
            ("rlm_query", {"query": "leak it"}),
            ("load_context", {"content": "bob's text"}),
            ("close_session", {}),
        ]:
            foreign = await call_error(bob, tool, session_id=sid, **arguments)
            unknown = await call_error(bob, tool, session_id=other, **arguments)
            assert "no session" in foreign
            same_answer(foreign, sid, unknown, other)

        # Reading her trajectories (the session's and the run's).
        other_trajectory = unknown_trajectory()
        unknown = await call_error(bob, "get_trajectory", trajectory_id=other_trajectory)
        for trajectory_id in (session_trajectory, run_trajectory):
            foreign = await call_error(bob, "get_trajectory", trajectory_id=trajectory_id, detail="full")
            same_answer(foreign, trajectory_id, unknown, other_trajectory)

        # Loading her inline corpus by its id (the text's SHA-256, which anyone holding the text can compute).
        other_corpus = secrets.token_hex(32)
        foreign = await call_error(bob, "load_context", corpus_id=corpus_id)
        same_answer(foreign, corpus_id, await call_error(bob, "load_context", corpus_id=other_corpus), other_corpus)

        # Resources and the prompt.
        for uri, unknown_uri in [
            (f"rlm://trajectories/{run_trajectory}", f"rlm://trajectories/{other_trajectory}"),
            (f"rlm://sessions/{sid}", f"rlm://sessions/{other}"),
        ]:
            foreign = await refused(bob.read_resource(uri))
            same_answer(
                foreign, uri.rsplit("/", 1)[1], await refused(bob.read_resource(unknown_uri)), unknown_uri[-18:]
            )
        foreign = await refused(bob.get_prompt("rlm_guide", {"session_id": sid}))
        same_answer(foreign, sid, await refused(bob.get_prompt("rlm_guide", {"session_id": other})), other)

        # Bob may load the very same text: he gets a corpus of his own, alice's stays hers.
        his = await call(bob, "load_context", content="alice's secret corpus: ALPHA-7")
        assert his["corpus_id"] == corpus_id and his["session_id"] != sid
        assert [s["session_id"] for s in (await call(bob, "list_sessions"))["sessions"]] == [his["session_id"]]

        # Nothing bob did touched alice's session: her variable and corpus are there, her listing unchanged.
        out = await call(alice, "repl_exec", session_id=sid, code="print(kept, context[-7:])")
        assert out["stdout"] == "alice was here ALPHA-7\n"
        assert [s["session_id"] for s in (await call(alice, "list_sessions"))["sessions"]] == [sid]
        assert (await call(alice, "get_trajectory", trajectory_id=run_trajectory))["status"] == "completed"
        again = await call(alice, "load_context", corpus_id=corpus_id)
        assert again["chars"] == loaded["chars"]


@pytest.mark.anyio
async def test_nested_runs_belong_to_their_parents_owner(server: HttpServer, fake) -> None:
    fake.respond = lambda request: (
        scripted(ROOT_MODEL, [code("FINAL(context.upper())")])(request)
        if "Question: inner" in request.all_text
        else scripted(ROOT_MODEL, [code("FINAL(rlm_query('inner', context='nested text'))")])(request)
    )
    async with principal(server, ALICE) as alice, principal(server, BOB) as bob:
        sid = (await call(alice, "load_context", content="outer text"))["session_id"]
        run = await call(alice, "rlm_query", session_id=sid, query="outer", max_depth=2)
        assert (run["status"], run["answer"]) == ("completed", "NESTED TEXT")
        outer = await call(alice, "get_trajectory", trajectory_id=run["trajectory_id"], detail="full")
        [child] = [c for step in outer["steps"] for c in step["child_runs"]]
        assert (await call(alice, "get_trajectory", trajectory_id=child))["answer"] == "NESTED TEXT"
        ghost = unknown_trajectory()
        same_answer(
            await call_error(bob, "get_trajectory", trajectory_id=child),
            child,
            await call_error(bob, "get_trajectory", trajectory_id=ghost),
            ghost,
        )
        # The page embeds the nested run for its owner, and only for its owner.
        page = httpx2.get(outer["viewer_url"], timeout=60)
        assert page.status_code == 200 and child in page.text
        assert httpx2.get(outer["viewer_url"].replace(run["trajectory_id"], child), timeout=60).status_code == 404


@pytest.mark.anyio
async def test_the_viewer_needs_the_owner_or_a_signed_link(server: HttpServer) -> None:
    async with principal(server, ALICE) as alice:
        loaded = await call(alice, "load_context", content="for the page")
        trajectory_id = loaded["trajectory_id"]
        other = (await call(alice, "load_context", content="another page"))["trajectory_id"]
        shown = await call(alice, "get_trajectory", trajectory_id=trajectory_id)
    page = f"{base(server)}/trajectories/{trajectory_id}"
    link = shown["viewer_url"]
    assert link.startswith(page + "?link=")
    signature = link.partition("?link=")[2]

    async with httpx2.AsyncClient(timeout=60) as http:
        # A browser, holding only the link: the page, with no referrer leaking it onwards.
        opened = await http.get(link)
        assert opened.status_code == 200 and opened.headers["content-type"].startswith("text/html")
        assert opened.headers["referrer-policy"] == "no-referrer" and opened.headers["cache-control"] == "no-store"
        # The owner's bearer token opens it too; the other principal's reads "no trajectory".
        assert (await http.get(page, headers={"Authorization": f"Bearer {ALICE}"})).status_code == 200
        foreign = await http.get(page, headers={"Authorization": f"Bearer {BOB}"})
        ghost = unknown_trajectory()
        unknown = await http.get(f"{base(server)}/trajectories/{ghost}", headers={"Authorization": f"Bearer {BOB}"})
        assert foreign.status_code == unknown.status_code == 404
        same_answer(foreign.text, trajectory_id, unknown.text, ghost)
        # No credentials at all: 401 with the same challenge as /mcp.
        bare = await http.get(page)
        assert bare.status_code == 401 and bare.headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"')
        # The link opens that one page: not another trajectory, not when altered, not when expired.
        moved = await http.get(f"{base(server)}/trajectories/{other}?link={signature}")
        expiry, _, mac = signature.partition(".")
        forged = await http.get(f"{page}?link={int(expiry) + 3600}.{mac}")
        expired = await http.get(f"{page}?link={int(time.time()) - 10}.{mac}")
        nonsense = await http.get(f"{page}?link=%C3%A9.%00")
        missing = await http.get(f"{base(server)}/trajectories/{ghost}?link={signature}")
        for answer in (moved, forged, expired, nonsense, missing):
            assert answer.status_code == 404, answer.text
        assert forged.text == expired.text == nonsense.text  # one answer, whatever was wrong


def index_runs(page: str) -> list[dict[str, Any]]:
    """The rows the index page draws, from the data it embeds."""
    data = page.split('<script type="application/json" id="rlm-data">', 1)[1].split("</script>", 1)[0]
    return json.loads(data)["runs"]


@pytest.mark.anyio
async def test_the_index_lists_only_the_callers_runs_with_links_that_open(server: HttpServer) -> None:
    async with principal(server, ALICE) as alice, principal(server, BOB) as bob:
        hers = []
        for text in ("alice's first", "alice's second"):
            loaded = await call(alice, "load_context", content=text)
            await call(alice, "repl_exec", session_id=loaded["session_id"], code="1")  # a session with steps: listed
            hers.append(loaded["trajectory_id"])
        loaded = await call(bob, "load_context", content="bob's")
        await call(bob, "repl_exec", session_id=loaded["session_id"], code="2")
        his = loaded["trajectory_id"]
    index = f"{base(server)}/trajectories/"
    async with httpx2.AsyncClient(timeout=60) as http:
        as_alice = await http.get(index, headers={"Authorization": f"Bearer {ALICE}"})
        as_bob = await http.get(index, headers={"Authorization": f"Bearer {BOB}"})
        assert as_alice.status_code == as_bob.status_code == 200
        assert as_alice.headers["referrer-policy"] == "no-referrer" and as_alice.headers["cache-control"] == "no-store"
        alice_rows, bob_rows = index_runs(as_alice.text), index_runs(as_bob.text)
        assert set(hers) <= {row["id"] for row in alice_rows} and his not in as_alice.text
        assert his in {row["id"] for row in bob_rows} and not any(t in as_bob.text for t in hers)
        # Each row links with a signed link: the page opens in a browser that sends no header, for the owner.
        for row in alice_rows:
            assert row["link"], row
            opened = await http.get(f"{index}{row['id']}?link={row['link']}")
            assert opened.status_code == 200 and row["id"] in opened.text
        # A row's link opens its own run, not another's (bob's run, with alice's link, is missing).
        stolen = await http.get(f"{index}{his}?link={alice_rows[0]['link']}")
        assert stolen.status_code == 404
        # Without a bearer header the index is refused as /mcp refuses (a link opens one page, never a list).
        for refused_answer in (await http.get(index), await http.get(f"{index}?link={alice_rows[0]['link']}")):
            assert refused_answer.status_code == 401
            assert refused_answer.headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"')
            assert "alice" not in refused_answer.text


# -- JWTs -------------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_jwt_from_the_issuer_is_a_principal_of_its_own(server: HttpServer, issuer: Issuer) -> None:
    async with principal(server, issuer.token(sub="carol")) as carol, principal(server, ALICE) as alice:
        mine = (await call(carol, "load_context", content="carol's notes"))["session_id"]
        hers = (await call(alice, "load_context", content="alice's notes"))["session_id"]
        assert [s["session_id"] for s in (await call(carol, "list_sessions"))["sessions"]] == [mine]
        assert "no session" in await call_error(carol, "repl_exec", session_id=hers, code="context")
        assert "no session" in await call_error(alice, "repl_exec", session_id=mine, code="context")
    # A new token for the same subject is the same principal; another subject is another one.
    async with principal(server, issuer.token(sub="carol")) as carol_again:
        assert (await call(carol_again, "repl_exec", session_id=mine, code="context"))["stdout"] == '"carol\'s notes"\n'
    async with principal(server, issuer.token(sub="dave")) as dave:
        assert "no session" in await call_error(dave, "repl_exec", session_id=mine, code="context")
    # Cognito access tokens carry client_id instead of aud.
    cognito = issuer.token(sub="carol", aud=None, client_id="cognito-app-client", token_use="access")
    async with principal(server, cognito) as carol_via_cognito:
        assert (await call(carol_via_cognito, "repl_exec", session_id=mine, code="len(context)"))["stdout"] == "13\n"


@pytest.mark.anyio
async def test_the_agentcore_contract_with_inbound_jwt(tmp_path: Path, fake, issuer: Issuer) -> None:
    """The image's entry point (0.0.0.0, stateless) with the JWT settings of the deployment guide's 5b."""
    env = server_env(
        tmp_path / "data", tmp_path, fake.url, RLM_AUTH_ISSUER=issuer.url, RLM_AUTH_AUDIENCE="cognito-app-client"
    )
    started = HttpServer(env, "--host", "0.0.0.0", "--stateless")
    try:
        carol_token = issuer.token(sub="carol", aud=None, client_id="cognito-app-client", token_use="access")
        dave_token = issuer.token(sub="dave", aud=None, client_id="cognito-app-client", token_use="access")
        async with principal(started, carol_token) as carol, principal(started, dave_token) as dave:
            sid = (await call(carol, "load_context", content="carol only"))["session_id"]
            assert (await call(carol, "repl_exec", session_id=sid, code="len(context)"))["stdout"] == "10\n"
            assert "no session" in await call_error(dave, "repl_exec", session_id=sid, code="context")
            assert (await call(dave, "list_sessions"))["sessions"] == []
        wrong_client = issuer.token(sub="carol", aud=None, client_id="another-app")
        answer = httpx2.post(started.url, json=HELLO, headers={**MCP_ACCEPT, "Authorization": f"Bearer {wrong_client}"})
        assert answer.status_code == 401
    finally:
        started.stop()


def test_bad_jwts_are_refused(server: HttpServer, issuer: Issuer) -> None:
    now = int(time.time())
    bad = {
        "expired": issuer.token(exp=now - 3600, iat=now - 7200),
        "wrong audience": issuer.token(aud="someone-else"),
        "no audience": issuer.token(aud=None),
        "wrong issuer": issuer.token(iss="https://evil.example"),
        "wrong signature": issuer.token(key=issuer.stranger),
        "unknown key id": issuer.token(key=issuer.stranger, kid="k2"),
        "not yet valid": issuer.token(nbf=now + 3600),
        "no subject": issuer.token(sub=None),
        "no expiry": issuer.token(exp=None),
        "shared-secret algorithm": jwt.encode(
            {"iss": issuer.url, "sub": "carol", "aud": AUDIENCE, "exp": now + 300}, "k" * 32, algorithm="HS256"
        ),
        "unsigned": jwt.encode({"iss": issuer.url, "sub": "carol", "aud": AUDIENCE, "exp": now + 300}, None, "none"),
    }
    listing = HELLO
    for why, token in bad.items():
        answer = httpx2.post(server.url, json=listing, headers={**MCP_ACCEPT, "Authorization": f"Bearer {token}"})
        assert answer.status_code == 401, why
    good = httpx2.post(
        server.url, json=listing, headers={**MCP_ACCEPT, "Authorization": f"Bearer {issuer.token()}"}, timeout=30
    )
    assert good.status_code == 200
    # Forged key ids do not make the server fetch the issuer's keys again and again.
    fetches = len([f for f in issuer.fetches if f == "/jwks.json"])
    for _ in range(5):
        forged = issuer.token(key=issuer.stranger, kid=secrets.token_hex(4))
        httpx2.post(server.url, json=listing, headers={**MCP_ACCEPT, "Authorization": f"Bearer {forged}"})
    assert len([f for f in issuer.fetches if f == "/jwks.json"]) <= fetches + 1


# -- exposure and Host/Origin checks -----------------------------------------------------------


def _serve(env: dict[str, str], host: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "rlm_mcp", "serve", "--transport", "streamable-http", "--host", host]
    return subprocess.run([*command, "--port", str(free_port())], env=env, capture_output=True, text=True, timeout=60)


def test_a_non_loopback_server_without_auth_does_not_start(tmp_path: Path, fake) -> None:
    env = server_env(tmp_path / "data", tmp_path, fake.url)
    for transport in ("streamable-http", "sse"):
        command = [sys.executable, "-m", "rlm_mcp", "serve", "--transport", transport, "--host", "0.0.0.0"]
        done = subprocess.run([*command, "--port", str(free_port())], env=env, capture_output=True, text=True,
                              timeout=60)  # fmt: skip
        assert done.returncode != 0
        assert "refusing to serve on 0.0.0.0 without authentication" in done.stderr
        assert "RLM_AUTH_TOKENS" in done.stderr and "RLM_ALLOW_UNAUTHENTICATED=true" in done.stderr


def test_a_non_loopback_server_with_a_token_serves_only_its_holder(tmp_path: Path, fake) -> None:
    port = free_port()
    tokens = tmp_path / "tokens"
    tokens.write_text(f"# who may call\n\nops:{ALICE}\n")
    env = server_env(tmp_path / "data", tmp_path, fake.url, RLM_AUTH_TOKENS_FILE=str(tokens))
    # A bad entry stops the server with a reason that shows no token, from the file or the variable.
    weak = "ops:" + "x" * 12
    for bad in ({"RLM_AUTH_TOKENS": weak}, {"RLM_AUTH_TOKENS": f"ops:{ALICE},ops:{BOB}"}):
        done = _serve({**env, **bad}, "0.0.0.0")
        assert done.returncode != 0 and "RLM_AUTH_TOKENS" in done.stderr, done.stderr
        assert "x" * 12 not in done.stderr and ALICE not in done.stderr and BOB not in done.stderr
    tokens.write_text(f"ops:{ALICE}\nops short\n")
    done = _serve(env, "0.0.0.0")
    assert done.returncode != 0 and "entry 2 of RLM_AUTH_TOKENS" in done.stderr and ALICE not in done.stderr
    tokens.write_text(f"# who may call\n\nops:{ALICE}\n")
    started = HttpServer(env, "--host", "0.0.0.0", port=port)
    try:
        listing = HELLO
        assert httpx2.post(started.url, json=listing, headers=MCP_ACCEPT, timeout=30).status_code == 401
        allowed = httpx2.post(started.url, json=listing, headers={**MCP_ACCEPT, "Authorization": f"Bearer {ALICE}"})
        assert allowed.status_code == 200
        assert httpx2.get(f"http://127.0.0.1:{port}/ping", timeout=30).status_code == 200  # the platform's probe
    finally:
        started.stop()


@pytest.mark.anyio
async def test_host_and_origin_are_checked_on_every_route(server: HttpServer) -> None:
    """DNS rebinding: a page on another site must not reach a loopback server through the browser."""
    async with principal(server, ALICE) as alice:
        trajectory_id = (await call(alice, "load_context", content="x"))["trajectory_id"]
    auth = {"Authorization": f"Bearer {ALICE}"}
    listing = HELLO
    routes = {
        "/mcp": lambda headers: httpx2.post(server.url, json=listing, headers={**MCP_ACCEPT, **auth, **headers}),
        "/ping": lambda headers: httpx2.get(f"{base(server)}/ping", headers=headers),
        "/trajectories": lambda headers: httpx2.get(
            f"{base(server)}/trajectories/{trajectory_id}", headers={**auth, **headers}
        ),
        "/trajectories/": lambda headers: httpx2.get(f"{base(server)}/trajectories/", headers={**auth, **headers}),
    }
    for route, send in routes.items():
        assert send({}).status_code == 200, route
        assert send({"Origin": f"http://localhost:{server.port}"}).status_code == 200, route
        assert send({"Host": "evil.example"}).status_code == 421, route
        assert send({"Host": f"evil.example:{server.port}"}).status_code == 421, route
        assert send({"Origin": "http://evil.example"}).status_code == 403, route


def test_error_texts_name_no_token(server: HttpServer) -> None:
    """A refused token is not echoed back (the 401 body is the SDK's fixed text)."""
    token = secrets.token_urlsafe(32)
    listing = HELLO
    answer = httpx2.post(server.url, json=listing, headers={**MCP_ACCEPT, "Authorization": f"Bearer {token}"})
    assert token not in answer.text and token not in answer.headers["WWW-Authenticate"]
    assert re.fullmatch(r'Bearer error="invalid_token", .*', answer.headers["WWW-Authenticate"])


def test_tokens_and_links_are_never_logged(server: HttpServer, server_log: Path, issuer: Issuer) -> None:
    """Last in this module: by now the server has seen every kind of credential, good and bad, at DEBUG."""
    log = server_log.read_text()
    assert "POST /mcp" in log and "GET /trajectories/" in log  # the log is the server's, and it is talkative
    assert ALICE not in log and BOB not in log
    assert "eyJ" not in log  # no JWT (their header always starts so)
    assert "link=<hidden>" in log and not re.search(r"link=\d", log)
