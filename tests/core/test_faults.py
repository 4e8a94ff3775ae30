"""Faults: Bedrock misbehaving, sub-calls hanging, workers and the server killed. Nothing is lost or hangs.

Bedrock faults are injected through the Converse fake, so the real boto3 path
(retries included) is what is tested. Processes are killed with real signals.
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import anyio
import pytest
from conftest import ROOT_MODEL, SUB_MODEL, HttpServer, connect, server_env
from helpers import alive, call, call_error, children, holding, until_requested

from rlm_mcp.testing.bedrock import (
    ConverseFake,
    ConverseRequest,
    Fault,
    Hangup,
    Malformed,
    Outcome,
    Reply,
    code,
    scripted,
    throttled,
)

pytestmark = pytest.mark.anyio

SUBCALL_TIMEOUT_S = 3
ASK = "try:\n    print('ok:', llm_query('hello'))\nexcept LLMError as e:\n    print('error:', e)"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, corpus_dir: Path, fake: ConverseFake) -> dict[str, str]:
    return server_env(
        tmp_path_factory.mktemp("data"), corpus_dir, fake.url, RLM_SUBCALL_TIMEOUT_S=str(SUBCALL_TIMEOUT_S)
    )


class FailFirst:
    """``outcome`` for the first ``times`` requests, then a normal reply."""

    def __init__(self, outcome: Outcome, times: int):
        self.outcome, self.times = outcome, times
        self._lock = threading.Lock()

    def __call__(self, request: ConverseRequest) -> Outcome:
        with self._lock:
            self.times -= 1
            failing = self.times >= 0
        return self.outcome if failing else Reply(text="recovered")


# (what Bedrock does, what the code must see, how many requests botocore makes with 3 attempts)
BEDROCK_FAULTS = [
    (throttled(), "error: Bedrock kept throttling", 3),
    (Fault(503, "ServiceUnavailableException", "try later"), "error: Bedrock could not serve", 3),
    (Fault(500, "InternalServerException", "boom"), "error: Bedrock could not serve", 3),
    (Malformed("<html>bad gateway</html>", status=502), "error: Bedrock error 502", 3),
    (Hangup(), "error: Bedrock call failed: Connection was closed", 3),
    (Fault(408, "ModelTimeoutException", "slow"), "error: Bedrock could not serve", 1),
    (Fault(403, "AccessDeniedException", "no"), "error: access denied to fake.sub-model-v1", 1),
    (Fault(404, "ResourceNotFoundException", "gone"), "was not found", 1),
    (Fault(400, "ValidationException", "Input is too long for requested model"), "the input is too long", 1),
    (Malformed("<html>captive portal</html>"), "error: Bedrock returned a response rlm-mcp cannot read", 1),
    (Malformed('{"output": "not an object"}'), "cannot read", 1),
    (Malformed('{"output": {"message": {"content": [{"text": "x"}]}}, "usage": {"inputTokens": "many"}}'), "cannot", 1),
    (lambda: FailFirst(throttled(), 1), "ok: recovered", 2),
    (lambda: FailFirst(Fault(503, "ServiceUnavailableException", "blip"), 2), "ok: recovered", 3),
    (lambda: FailFirst(Hangup(), 1), "ok: recovered", 2),
]


@pytest.mark.parametrize("transport", ["http"])  # the sub-call path is the same whatever the transport
async def test_bedrock_faults_are_retried_or_reported(client, fake: ConverseFake) -> None:
    sid = (await call(client, "load_context", content="faults"))["session_id"]
    problems = []
    for outcome, expected, requests in BEDROCK_FAULTS:
        fake.respond = outcome() if callable(outcome) else (lambda r, o=outcome: o)
        fake.requests.clear()
        out = await call(client, "repl_exec", session_id=sid, code=ASK)
        if out["error"] or expected not in out["stdout"] or len(fake.requests) != requests:
            problems.append(f"{outcome}: {len(fake.requests)} requests, {out['stdout'] or out['error']}")
        if "Traceback" in out["stdout"]:
            problems.append(f"{outcome}: a traceback reached the code: {out['stdout']}")
    assert not problems, "\n".join(problems)


async def test_one_bad_prompt_costs_only_its_own_answer(client, fake: ConverseFake) -> None:
    """A hanging, a malformed and a throttled prompt in one batch; the others are answered."""

    def respond(request: ConverseRequest) -> Outcome:
        prompt = request.last_user_text
        if prompt == "HANG":
            return Reply(text="too late", delay_s=SUBCALL_TIMEOUT_S + 10)
        if prompt == "GARBLE":
            return Malformed("{]")
        if prompt == "THROTTLE":
            return throttled()
        return Reply(text=prompt.lower())

    fake.respond = respond
    sid = (await call(client, "load_context", content="batch"))["session_id"]
    out = await call(
        client,
        "repl_exec",
        session_id=sid,
        code=(
            "try:\n"
            "    llm_query_batched(['A', 'HANG', 'B', 'GARBLE', 'THROTTLE', 'C'])\n"
            "except LLMBatchError as e:\n"
            "    print(e.failed, e.results)\n"
            "    print(sorted(e.errors.items()))"
        ),
    )
    assert out["error"] is None, out["error"]
    failed, errors = out["stdout"].splitlines()
    assert failed == "[1, 3, 4] ['a', None, 'b', None, None, 'c']"
    assert f"no answer from {SUB_MODEL} within {SUBCALL_TIMEOUT_S} s" in errors
    assert "cannot read" in errors and "kept throttling" in errors  # the hanging call was cut at its timeout
    assert out["sub_calls"]["count"] == 6 and out["sub_calls"]["failed"] == 3


@pytest.mark.parametrize("transport", ["http"])
@pytest.mark.parametrize(
    ("root", "message"),
    [
        (Malformed("not json at all"), "the root model failed: Bedrock returned a response rlm-mcp cannot read"),
        (Fault(403, "AccessDeniedException", "denied"), "the root model failed: access denied"),
        (throttled(), "the root model failed: Bedrock kept throttling"),
        pytest.param(
            Reply(text="late", delay_s=SUBCALL_TIMEOUT_S * 4 + 5),
            "the root model failed: Bedrock did not answer",
            marks=pytest.mark.slow,
        ),
    ],
)
async def test_root_model_faults_end_the_run_with_a_clear_status(client, fake: ConverseFake, root, message) -> None:
    fake.respond = scripted(ROOT_MODEL, [root])
    sid = (await call(client, "load_context", content="root faults"))["session_id"]
    with anyio.fail_after(60):
        out = await call(client, "rlm_query", session_id=sid, query="anything?")
    assert out["status"] == "failed"
    assert out["message"].startswith(message), out["message"]
    view = await call(client, "get_trajectory", trajectory_id=out["trajectory_id"])
    assert view["status"] == "failed" and view["message"] == out["message"]


@pytest.mark.parametrize("transport", ["http"])
async def test_worker_killed_from_outside(client, http_server: HttpServer, fake: ConverseFake) -> None:
    server = http_server.process.pid
    before = children(server)
    sid = (await call(client, "load_context", content="still here"))["session_id"]
    (worker,) = children(server) - before
    await call(client, "repl_exec", session_id=sid, code="kept = 1")

    os.kill(worker, signal.SIGKILL)  # while idle
    with anyio.fail_after(10):
        while alive(worker):
            await anyio.sleep(0.05)
    out = await call(client, "repl_exec", session_id=sid, code="len(context)")
    assert out["stdout"] == "10\n" and out["restarted"]
    assert any("SIGKILL" in n and "variables from earlier calls were lost" in n for n in out["notes"]), out["notes"]

    (worker,) = children(server) - before

    async def kill_once_running() -> None:
        await until_requested(fake, "RUNNING")
        os.kill(worker, signal.SIGKILL)

    async with anyio.create_task_group() as tg:  # while running
        tg.start_soon(kill_once_running)
        out = await call(client, "repl_exec", session_id=sid, code="llm_query('RUNNING')\nwhile True:\n    pass")
    assert out["restarted"] and out["error"]["type"] == "SandboxCrashed"
    assert "SIGKILL" in out["error"]["message"] and "corpus was reloaded" in out["error"]["message"]
    assert (await call(client, "repl_exec", session_id=sid, code="context"))["stdout"] == "'still here'\n"
    assert len(children(server) - before) == 1  # the dead workers were reaped and replaced, not piled up


async def test_server_killed_mid_run_keeps_every_finished_step(tmp_path: Path, fake: ConverseFake) -> None:
    env = server_env(tmp_path / "data", tmp_path, fake.url, RLM_SUBCALL_TIMEOUT_S="60")

    def respond(request: ConverseRequest) -> Outcome:
        if request.model_id == SUB_MODEL and request.last_user_text == "HANG":
            return Reply(text="never seen", delay_s=30)
        return steps(request)

    steps = scripted(
        ROOT_MODEL,
        [code("n = len(context)\nprint('first', n)"), code("print('second')"), Reply(text="stuck", delay_s=30)],
    )
    fake.respond = respond
    first = HttpServer(env)
    try:
        async with connect("http", env, first) as client:
            sid = (await call(client, "load_context", content="the corpus"))["session_id"]
            other = (await call(client, "load_context", content="other"))["session_id"]
            run = await call(client, "rlm_query", session_id=sid, query="count", wait=False)
            with anyio.fail_after(300):
                while len((await call(client, "get_trajectory", trajectory_id=run["trajectory_id"]))["steps"]) < 2:
                    await anyio.sleep(0.1)
        workers = children(first.process.pid)
        assert len(workers) == 2

        async def kill_soon() -> None:
            await until_requested(fake, "HANG")  # the server is serving the request when it dies
            first.process.send_signal(signal.SIGKILL)

        ended = None
        with anyio.fail_after(300):  # a request the server was serving when it died does not hang
            try:
                async with connect("http", env, first) as client, anyio.create_task_group() as tg:
                    tg.start_soon(kill_soon)
                    await client.call_tool("repl_exec", {"session_id": other, "code": "llm_query('HANG')"})
                ended = "returned"
            except Exception as exc:  # the client reports the lost connection (as an exception group)
                ended = f"raised {type(exc).__name__}"
        assert ended is not None and ended.startswith("raised"), ended
    finally:
        first.process.kill()
        first.process.wait()
    with anyio.fail_after(10):  # the sandboxes died with their server
        while any(alive(pid) for pid in workers):
            await anyio.sleep(0.05)

    second = HttpServer(env)  # same data directory
    try:
        async with connect("http", env, second) as client:
            view = await call(client, "get_trajectory", trajectory_id=run["trajectory_id"], detail="full")
            assert view["status"] == "interrupted"
            assert "server stopped" in view["message"]
            assert [s["stdout"] for s in view["steps"]] == ["first 10\n", "second\n"]
            revived = await call(client, "repl_exec", session_id=sid, code="len(context)")
            assert revived["stdout"] == "10\n"
            assert any("restored after a server restart" in n for n in revived["notes"])
    finally:
        second.stop()


@pytest.mark.slow
async def test_live_workers_never_exceed_the_limit_under_concurrency(tmp_path: Path, fake: ConverseFake) -> None:
    env = server_env(tmp_path / "data", tmp_path, fake.url, RLM_MAX_SESSIONS="2")
    big = tmp_path / "big.txt"  # big enough that loading it takes longer than starting a sandbox
    with big.open("w") as f:
        for _ in range(100):
            f.write("corpus line\n" * 87_382)
    server = HttpServer(env)
    peak = 0
    try:
        async with connect("http", env, server) as client:
            results: list[str] = []

            async def load(i: int) -> None:
                result = await client.call_tool("load_context", {"path": str(big)})
                if result.is_error:
                    results.append("error: " + result.content[0].text)
                else:
                    results.append("ok: " + result.structured_content["session_id"])

            async def watch(stop: anyio.Event) -> None:
                nonlocal peak
                while not stop.is_set():
                    peak = max(peak, len(children(server.process.pid)))
                    await anyio.sleep(0.01)

            stop = anyio.Event()
            async with anyio.create_task_group() as tg:
                tg.start_soon(watch, stop)
                async with anyio.create_task_group() as loads:
                    for i in range(8):
                        loads.start_soon(load, i)
                stop.set()
            errors = [r for r in results if r.startswith("error")]
            made = [r.removeprefix("ok: ") for r in results if r.startswith("ok")]
            assert made, results
            for error in errors:
                assert "maximum of 2 live sessions (RLM_MAX_SESSIONS)" in error, error
            live = {s["session_id"] for s in (await call(client, "list_sessions"))["sessions"]}
            assert len(live) <= 2 and live <= set(made)
            for sid in live:
                assert (await call(client, "repl_exec", session_id=sid, code="len(context) > 0"))["stdout"] == "True\n"
    finally:
        server.stop()
    assert 1 <= peak <= 2


async def test_at_the_cap_sessions_in_use_are_never_evicted(tmp_path: Path, fake: ConverseFake) -> None:
    """Two clients at RLM_MAX_SESSIONS=2: one mid-call, one between calls. A third is refused, nothing is lost."""
    env = server_env(tmp_path / "data", tmp_path, fake.url, RLM_MAX_SESSIONS="2")
    release = threading.Event()
    fake.respond = holding("HOLD", release)
    server = HttpServer(env)
    try:
        async with connect("http", env, server) as busy_client, connect("http", env, server) as thinking_client:
            busy = (await call(busy_client, "load_context", content="busy corpus"))["session_id"]
            thinking = (await call(thinking_client, "load_context", content="thinking corpus"))["session_id"]
            await call(thinking_client, "repl_exec", session_id=thinking, code="notes = ['kept']")
            outcome: dict[str, object] = {}

            async def hold() -> None:
                code_ = "answer = llm_query('HOLD please')\nprint(answer)"
                outcome.update(await call(busy_client, "repl_exec", session_id=busy, code=code_))

            async with anyio.create_task_group() as tg:
                tg.start_soon(hold)
                with anyio.fail_after(60):
                    while not any("HOLD" in r.last_user_text for r in fake.requests):
                        await anyio.sleep(0.02)
                async with connect("http", env, server) as newcomer:
                    refused = await call_error(newcomer, "load_context", content="newcomer")
                release.set()
            assert "maximum of 2 live sessions (RLM_MAX_SESSIONS)" in refused, refused
            assert "RLM_SESSION_EVICT_IDLE_S" in refused and "close_session" in refused, refused
            assert outcome["stdout"] == "HOLD PLEASE\n"
            live = {s["session_id"] for s in (await call(busy_client, "list_sessions"))["sessions"]}
            assert live == {busy, thinking}
            kept = await call(thinking_client, "repl_exec", session_id=thinking, code="notes")
            assert kept["stdout"] == "['kept']\n" and not kept["restarted"] and not kept["notes"]
            assert (await call(busy_client, "repl_exec", session_id=busy, code="answer"))["stdout"] == "'HOLD PLEASE'\n"
    finally:
        release.set()
        server.stop()


@pytest.mark.parametrize("transport", ["http"])
async def test_closing_a_session_mid_run_cancels_the_run_and_keeps_its_steps(client, fake: ConverseFake) -> None:
    release = threading.Event()
    fake.respond = scripted(
        ROOT_MODEL,
        [code("print('first step')"), code("print(llm_query('HOLD the second step'))"), Reply(text="never")],
        sub=holding("HOLD", release),
    )
    sid = (await call(client, "load_context", content="closing corpus"))["session_id"]
    other = (await call(client, "load_context", content="other corpus"))["session_id"]
    await call(client, "repl_exec", session_id=other, code="kept = 42")
    try:
        run = await call(client, "rlm_query", session_id=sid, query="anything?", wait=False)
        with anyio.fail_after(60):
            while not any("HOLD" in r.last_user_text for r in fake.requests_for(SUB_MODEL)):
                await anyio.sleep(0.02)
        assert (await call(client, "close_session", session_id=sid))["closed"]
    finally:
        release.set()
    view = await call(client, "get_trajectory", trajectory_id=run["trajectory_id"], detail="full")
    assert view["status"] == "cancelled", view["message"]
    assert view["message"] == "the session was closed while the run was in progress"
    assert [s["stdout"] for s in view["steps"]] == ["first step\n"]
    assert "no session" in await call_error(client, "repl_exec", session_id=sid, code="1")
    assert (await call(client, "repl_exec", session_id=other, code="kept"))["stdout"] == "42\n"
    sessions = (await call(client, "list_sessions"))["sessions"]
    assert [s["session_id"] for s in sessions if s["session_id"] in (sid, other)] == [other]


@pytest.mark.parametrize(
    ("cap", "clients"), [(8, 12), pytest.param(32, 40, marks=pytest.mark.slow, id="32-sessions-40-clients")]
)
async def test_simultaneous_loads_start_together_and_the_cap_stays_exact(
    tmp_path: Path, fake: ConverseFake, cap: int, clients: int
) -> None:
    """``clients`` load at once against RLM_MAX_SESSIONS=``cap``, one session already live: exactly cap - 1 get in."""
    env = server_env(tmp_path / "data", tmp_path, fake.url, RLM_MAX_SESSIONS=str(cap))
    server = HttpServer(env)
    peak = 0
    try:
        async with connect("http", env, server) as client:
            first = (await call(client, "load_context", content="already here"))["session_id"]
            await call(client, "repl_exec", session_id=first, code="kept = 'yes'")
            admitted: dict[int, str] = {}
            refused: list[str] = []

            async def load(i: int) -> None:
                async with connect("http", env, server) as own:
                    result = await own.call_tool("load_context", {"content": f"corpus number {i}"})
                if result.is_error:
                    refused.append(result.content[0].text)
                else:
                    admitted[i] = result.structured_content["session_id"]

            async def watch(stop: anyio.Event) -> None:
                nonlocal peak
                while not stop.is_set():
                    peak = max(peak, len(children(server.process.pid)))
                    await anyio.sleep(0.01)

            stop = anyio.Event()
            async with anyio.create_task_group() as tg:
                tg.start_soon(watch, stop)
                async with anyio.create_task_group() as loads:
                    for i in range(clients):
                        loads.start_soon(load, i)
                stop.set()
            assert len(admitted) == cap - 1 and len(refused) == clients - cap + 1, refused
            for error in refused:
                assert f"maximum of {cap} live sessions (RLM_MAX_SESSIONS)" in error, error
            live = {s["session_id"] for s in (await call(client, "list_sessions"))["sessions"]}
            assert live == {first, *admitted.values()}
            for i, sid in admitted.items():
                out = await call(client, "repl_exec", session_id=sid, code="context")
                assert out["stdout"] == f"'corpus number {i}'\n"
            assert (await call(client, "repl_exec", session_id=first, code="kept"))["stdout"] == "'yes'\n"
    finally:
        server.stop()
    assert peak <= cap
