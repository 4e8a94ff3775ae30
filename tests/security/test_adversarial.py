"""Hostile code through the MCP tools, with canaries planted where an escape would find them.

The server runs with a fake AWS key and a fake token in its environment, a
credentials file in its home directory, a secret file outside and one inside
the allowed roots, a listener on a loopback port, and a second session holding
a marker. Every category of attack runs in its own session; after each snippet
the test checks that no canary shows up in any output, and after each category
that no file appeared outside the sandbox, nothing connected to the listener,
the other session is intact and the hostile session still works.

Each row is ``(code, expected)``: ``expected`` is the error type the snippet
must end with, ``None`` when it must run cleanly, or ``ANY_ERROR``.
"""

from __future__ import annotations

import json
import secrets
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from attacks import ANY_ERROR, CATEGORIES, EXHAUSTION, PWNED
from conftest import SUB_MODEL, server_env
from helpers import call, call_error
from mcp import Client

from rlm_mcp.testing.bedrock import ConverseFake

pytestmark = pytest.mark.anyio


@dataclass
class Canaries:
    aws_key_id: str
    aws_secret: str
    api_token: str
    home_credentials: str
    outside_file: str
    inside_file: str
    marker: str
    home: Path
    outside_dir: Path
    port: int
    connections: list[str] = field(default_factory=list)

    def secrets(self) -> dict[str, str]:
        return {
            "AWS key id": self.aws_key_id,
            "AWS secret": self.aws_secret,
            "API token": self.api_token,
            "credentials file": self.home_credentials,
            "secret file outside the roots": self.outside_file,
            "secret file inside the roots": self.inside_file,
            "other session's marker": self.marker,
        }


def _listen(port_holder: list[int], connections: list[str], stop: threading.Event) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.settimeout(0.2)
        port_holder.append(server.getsockname()[1])
        while not stop.is_set():
            try:
                conn, peer = server.accept()
            except TimeoutError:
                continue
            connections.append(str(peer))
            conn.close()


@pytest.fixture(scope="module")
def canaries(tmp_path_factory: pytest.TempPathFactory, corpus_dir: Path) -> Iterator[Canaries]:
    def unique(kind: str) -> str:
        return f"CANARY-{kind}-{secrets.token_hex(8)}"

    home = tmp_path_factory.mktemp("home")
    outside = tmp_path_factory.mktemp("outside")
    values = {k: unique(k) for k in ("KEYID", "SECRET", "TOKEN", "CREDS", "OUTSIDE", "INSIDE", "MARKER")}
    (home / ".aws").mkdir()
    (home / ".aws" / "credentials").write_text(f"[default]\naws_secret_access_key = {values['CREDS']}\n")
    (outside / "secret.txt").write_text(values["OUTSIDE"])
    (corpus_dir / "secret-inside.txt").write_text(values["INSIDE"])
    port: list[int] = []
    connections: list[str] = []
    stop = threading.Event()
    thread = threading.Thread(target=_listen, args=(port, connections, stop), daemon=True)
    thread.start()
    while not port:
        stop.wait(0.01)
    yield Canaries(
        aws_key_id="AKIA" + values["KEYID"],
        aws_secret=values["SECRET"],
        api_token=values["TOKEN"],
        home_credentials=values["CREDS"],
        outside_file=values["OUTSIDE"],
        inside_file=values["INSIDE"],
        marker=values["MARKER"],
        home=home,
        outside_dir=outside,
        port=port[0],
        connections=connections,
    )
    stop.set()
    thread.join()


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, corpus_dir: Path, fake: ConverseFake, canaries: Canaries):
    """The server's environment, canaries included (overrides conftest's ``env`` for this module)."""
    return server_env(
        tmp_path_factory.mktemp("data"),
        corpus_dir,
        fake.url,
        AWS_ACCESS_KEY_ID=canaries.aws_key_id,
        AWS_SECRET_ACCESS_KEY=canaries.aws_secret,
        GITHUB_TOKEN=canaries.api_token,
        HOME=str(canaries.home),
        RLM_WORKER_MEMORY_MB="384",
        RLM_MAX_SUB_CALLS="20",
        # Every snippet here is refused at once, or runs until a limit stops it: none is ordinary work that a
        # slow machine could push over two seconds (the largest, 300,000 nested tuples, takes milliseconds).
        RLM_EXEC_TIMEOUT_S="2",
    )


# -- the attacks ---------------------------------------------------------------------------------

# -- checks --------------------------------------------------------------------------------------


def leaked(canaries: Canaries, text: str) -> list[str]:
    return [name for name, value in canaries.secrets().items() if value in text]


def files_outside(canaries: Canaries, corpus_dir: Path, env: dict[str, str]) -> list[Path]:
    roots = [canaries.home, canaries.outside_dir, corpus_dir, Path(env["RLM_DATA_DIR"])]
    found = [p for root in roots for p in root.rglob(f"*{PWNED}*")]
    found += [p for p in (Path("/tmp"), Path.cwd()) for p in p.glob(f"*{PWNED}*")]
    return found


async def victim_session(client: Client, canaries: Canaries) -> str:
    """Another session, holding the marker in its corpus and a variable, with random seeded."""
    sid = (await call(client, "load_context", content=f"victim corpus {canaries.marker}"))["session_id"]
    out = await call(
        client, "repl_exec", session_id=sid, code="import random\nrandom.seed(7)\nmarker = context.split()[-1]"
    )
    assert out["error"] is None, out["error"]
    return sid


async def check_victim(client: Client, sid: str, canaries: Canaries) -> None:
    import random

    expected = random.Random(7).random()
    out = await call(
        client,
        "repl_exec",
        session_id=sid,
        code="import json, random\nprint(marker == context.split()[-1], json.loads('[2]')[0], len('ab'))\n"
        "print(repr(random.random()))",
    )
    assert out["error"] is None, out["error"]
    assert out["stdout"].splitlines() == ["True 2 2", repr(expected)], "the other session was disturbed"


async def run_attacks(client: Client, sid: str, attacks: list[tuple[str, str | None]], canaries: Canaries) -> list[str]:
    problems = []
    for code, expected in attacks:
        out = await call(client, "repl_exec", session_id=sid, code=code)
        text = json.dumps(out)
        if leaks := leaked(canaries, text):
            problems.append(f"{code!r} leaked {leaks}: {text[:500]}")
        if PWNED in out["stdout"] or PWNED in (out["final"] or ""):
            problems.append(f"{code!r} printed the escape marker: {out['stdout'][:300]!r}")
        error = out["error"]
        got = error["type"] if error else None
        if expected == ANY_ERROR and got is None:
            problems.append(f"{code!r} should have failed; it printed {out['stdout'][:300]!r}")
        elif expected != ANY_ERROR and got != expected:
            problems.append(f"{code!r}: expected {expected}, got {got}: {error and error['message'][:300]}")
        if out["restarted"]:
            problems.append(f"{code!r} restarted the sandbox")
    return problems


@pytest.mark.parametrize("category", sorted(CATEGORIES))
async def test_hostile_code_is_contained(client, category: str, canaries: Canaries, corpus_dir: Path, env) -> None:
    victim = await victim_session(client, canaries)
    loaded = await call(client, "load_context", content="hostile session corpus\nnothing to see\n")
    sid = loaded["session_id"]

    problems = await run_attacks(client, sid, CATEGORIES[category], canaries)
    assert not problems, "\n".join(problems)

    trajectory = await call(client, "get_trajectory", trajectory_id=loaded["trajectory_id"], detail="full")
    assert len(trajectory["steps"]) == len(CATEGORIES[category])
    assert not leaked(canaries, json.dumps(trajectory))
    assert not leaked(canaries, json.dumps(await call(client, "list_sessions")))
    assert files_outside(canaries, corpus_dir, env) == []
    assert canaries.connections == []
    await check_victim(client, victim, canaries)
    after = await call(client, "repl_exec", session_id=sid, code="len(context)")
    assert after["stdout"] == "38\n" and not after["restarted"]
    for done in (sid, victim):  # the module shares one server: leave room under RLM_MAX_SESSIONS for the next
        await call(client, "close_session", session_id=done)


# -- resource exhaustion (one transport: these take seconds each) ------------------------------


SLOW_MACHINE_MAY_TIME_OUT = frozenset({"MemoryError", "SandboxCrashed"})
"""Outcomes that need work before them (filling memory, building a deep tuple) a slow machine may not finish
within the compute limit; a timeout there is containment too."""


@pytest.mark.slow
@pytest.mark.parametrize("transport", ["http"])
async def test_resource_exhaustion_is_contained(client, fake: ConverseFake, canaries: Canaries) -> None:
    victim = await victim_session(client, canaries)
    sid = (await call(client, "load_context", content="hostile session corpus\nnothing to see\n"))["session_id"]
    problems = []
    for code, expected, restarts in EXHAUSTION:
        out = await call(client, "repl_exec", session_id=sid, code=code + "\nkept = 1")
        got = out["error"]["type"] if out["error"] else None
        if expected in SLOW_MACHINE_MAY_TIME_OUT and got == "TimeoutError":
            # On a slow or busy machine the compute limit can come first: contained all the same.
            expected, restarts = got, out["restarted"]
        if got != expected or out["restarted"] != restarts:
            problems.append(f"{code[:60]!r}: expected {expected} (restarted={restarts}), got {got} {out}"[:600])
        if len(out["stdout"]) > 21_000 or len(json.dumps(out)) > 40_000:
            problems.append(f"{code[:60]!r}: {len(json.dumps(out)):,} characters came back")
        if restarts and not any("restarted" in note or "reloaded" in note for note in [out["error"]["message"]]):
            problems.append(f"{code[:60]!r}: the restart was not reported: {out['error']['message']}")
        alive = await call(client, "repl_exec", session_id=sid, code="len(context)")
        if alive["stdout"] != "38\n":
            problems.append(f"after {code[:60]!r} the session answered {alive}")
    assert not problems, "\n".join(problems)
    assert len(fake.requests_for(SUB_MODEL)) <= 20  # the budget held through both floods

    too_big = await call_error(client, "repl_exec", session_id=sid, code="x = 1\n" * 40_000)
    assert "over the limit" in too_big and "split it" in too_big
    final = await call(client, "repl_exec", session_id=sid, code="FINAL('f' * 3_000_000)")
    assert 1_000_000 <= len(final["final"]) <= 1_001_000  # RLM_MAX_FINAL_CHARS-style clip
    await check_victim(client, victim, canaries)
    assert canaries.connections == []
