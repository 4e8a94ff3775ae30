"""The shell commands: query (the whole loop, no MCP client), trajectory and sessions.

Each runs as a real subprocess, as a script would run it, against the model fakes.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import json
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest
from conftest import ROOT_MODEL, SUB_MODEL, connect, server_env
from helpers import call

from rlm_mcp.testing.bedrock import ConverseRequest, Fault, Reply, code, scripted
from rlm_mcp.testing.openai import ChatCompletionsFake
from rlm_mcp.testing.openai import code as chat_code
from rlm_mcp.testing.openai import scripted as chat_scripted

LOGS = {f"service-{name}.log": "".join(f"{name} line {i} {'ERROR' if i % 4 == 0 else 'ok'}\n" for i in range(40))
        for name in ("api", "db", "web")}  # fmt: skip
COUNT_ERRORS = """
answers = llm_query_batched(['Count the lines that report an error:\\n' + doc for doc in context])
FINAL(sum(int(a) for a in answers))
"""


def count_errors(request: ConverseRequest) -> Reply:
    return Reply(text=str(request.last_user_text.count("ERROR")))


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    folder = tmp_path / "logs"
    folder.mkdir()
    for name, text in LOGS.items():
        (folder / name).write_text(text)
    return folder


REPO = Path(__file__).resolve().parents[2]


def here(env: dict[str, str]) -> dict[str, str]:
    """Run this checkout's rlm_mcp whatever the working directory (``-m`` looks in the working directory first)."""
    return {**env, "PYTHONPATH": str(REPO)}


def rlm(
    env: dict[str, str], *args: str, stdin: str | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rlm_mcp", *args],
        env=here(env),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
    )


@pytest.fixture
def cli_env(tmp_path: Path, fake) -> dict[str, str]:
    # The allowed roots do not include the logs folder: naming a path on the command line is the permission.
    return server_env(tmp_path / "data", tmp_path / "elsewhere", fake.url)


def test_query_prints_the_answer_and_nothing_else_when_piped(cli_env, fake, logs: Path, tmp_path: Path) -> None:
    fake.respond = scripted(ROOT_MODEL, [code("print(len(context))"), code(COUNT_ERRORS)], sub=count_errors)
    done = rlm(cli_env, "query", "--context", str(logs), "How many error lines are there?", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "30\n"
    assert done.stderr == ""  # no progress bar, no logs: stderr is not a terminal here
    assert len(fake.requests_for(SUB_MODEL)) == 3

    page = tmp_path / "run.html"
    done = rlm(cli_env, "query", "-c", str(logs / "*.log"), "--json", "--html", str(page), "Errors?", cwd=tmp_path)
    result = json.loads(done.stdout)
    assert (result["status"], result["answer"], result["sub_calls"]) == ("completed", "30", 3)
    assert result["trajectory_id"] in page.read_text() and "<svg" not in page.read_text()  # drawn by the browser

    # The run's trajectory is in the data directory for the other commands.
    listed = rlm(cli_env, "trajectory").stdout
    assert result["trajectory_id"] in listed and "Errors?" in listed
    summary = rlm(cli_env, "trajectory", result["trajectory_id"]).stdout
    assert "answer:   30" in summary and "3 sub-calls" in summary
    full = json.loads(rlm(cli_env, "trajectory", result["trajectory_id"], "--json", "--full").stdout)
    assert len(full["steps"][1]["sub_calls"]) == 3
    assert full["corpus_chars"] > sum(map(len, LOGS.values()))  # the texts and their '==> path <==' headers
    html = rlm(cli_env, "trajectory", result["trajectory_id"], "--html", "-")
    assert html.stdout.startswith("<!doctype html>") and html.returncode == 0


def test_query_from_stdin_on_a_local_openai_compatible_server(tmp_path: Path) -> None:
    """No AWS at all: root and sub-model on an OpenAI-compatible server, the corpus piped in."""
    with ChatCompletionsFake() as local:
        local.respond = chat_scripted(
            "coder", [chat_code("FINAL(llm_query('words: ' + str(len(context.split()))))")],
            sub=lambda request: Reply(text=request.last_user_text.split(": ")[1]),
        )  # fmt: skip
        env = server_env(
            tmp_path / "data", tmp_path, "", AWS_ACCESS_KEY_ID="", AWS_SECRET_ACCESS_KEY="", AWS_DEFAULT_REGION="",
            RLM_ROOT_MODEL="openai:coder", RLM_SUB_MODEL="openai:small", RLM_OPENAI_BASE_URL=local.base_url,
        )  # fmt: skip
        done = rlm(env, "query", "--context", "-", "How many words?", stdin="one two three four")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "4\n"


def test_failures_have_clear_messages_and_exit_codes(cli_env, fake, logs: Path) -> None:
    done = rlm(cli_env, "query", "--context", str(logs / "missing.log"), "?")
    assert done.returncode == 2 and "missing.log" in done.stderr and "Traceback" not in done.stderr
    fake.respond = scripted(ROOT_MODEL, [Fault(400, "ValidationException", "Input is too long for requested model.")])
    done = rlm(cli_env, "query", "--context", str(logs), "?")
    assert done.returncode == 1 and done.stdout == ""
    assert "the run ended failed" in done.stderr and "too long" in done.stderr
    fake.respond = scripted(ROOT_MODEL, [lambda r: code("print(1)") if "tool calls" not in r.last_user_text
                                         else Reply(text="my best guess: 2")])  # fmt: skip
    done = rlm(cli_env, "query", "--context", str(logs), "--max-iterations", "2", "?")
    assert done.returncode == 3 and done.stdout == "my best guess: 2\n" and "limit_reached" in done.stderr
    assert rlm(cli_env, "trajectory", "t_noSuchTrajectory").returncode == 2


def on_terminal(env: dict[str, str], *args: str, cwd: Path | None = None) -> tuple[str, str, int]:
    """Run ``rlm-mcp ARGS`` with stderr on a pseudo-terminal (120 columns): (stdout, what the terminal showed, code)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # a terminal has a size
    process = subprocess.Popen(
        [sys.executable, "-m", "rlm_mcp", *args],
        env=here(env),
        stdout=subprocess.PIPE,
        stderr=slave,
        text=True,
        cwd=cwd,
    )
    os.close(slave)
    shown = b""
    deadline = time.monotonic() + 300
    while process.poll() is None and time.monotonic() < deadline:
        if select.select([master], [], [], 0.2)[0]:
            try:
                shown += os.read(master, 65536)
            except OSError:
                break
    with contextlib.suppress(OSError):
        while select.select([master], [], [], 0.2)[0]:
            chunk = os.read(master, 65536)
            if not chunk:
                break
            shown += chunk
    stdout = process.communicate(timeout=300)[0]
    os.close(master)
    return stdout, shown.decode(errors="replace"), process.returncode


def test_progress_bar_on_a_terminal(cli_env, fake, logs: Path) -> None:
    fake.respond = scripted(
        ROOT_MODEL,
        [
            code("x = 1", delay_s=0.3),
            code("y = len(llm_query_batched(['a', 'b', 'c', 'd']))", delay_s=0.3),
            code("FINAL(x + y)", delay_s=0.3),
        ],
        sub=lambda request: Reply(text="ok", delay_s=0.2),
    )
    stdout, terminal, _ = on_terminal(cli_env, "query", "--context", str(logs), "?")
    assert stdout == "5\n"
    assert "\r" in terminal  # a bar redrawn in place, on the terminal only
    # Loading: files and bytes, counted.
    assert "looking at files" in terminal and "reading files" in terminal and "3/3 files" in terminal
    assert "loaded" in terminal
    # The run: steps out of the limit and sub-calls as integers, the batch as a bar inside its step.
    assert "step 1/20: the root model is writing" in terminal and "step 2/20" in terminal
    assert "4/4 sub-calls" in terminal and "sub-calls in all" in terminal
    assert not re.search(r"\d\.\d{2,}/\d", terminal), terminal  # never a raw float such as 1.909.../20
    assert "step" not in terminal.split("step 1/20", 1)[0]  # no step counter before the first one
    assert "3 steps, 4 sub-calls" in terminal


def test_query_reads_folders_as_the_shell_names_them(cli_env, fake, tmp_path: Path) -> None:
    """Relative paths from the working directory, undecodable files left out, and the load options as flags."""
    mixed = tmp_path / "work" / "corp"
    mixed.mkdir(parents=True)
    (mixed / "a.log").write_text("alpha\n")
    (mixed / "b.log").write_text("bravo\n")
    (mixed / "latin.txt").write_bytes("caf\u00e9\n".encode("latin-1"))
    first_lines = "[d.splitlines()[0] for d in context] if isinstance(context, list) else context.strip()"
    fake.respond = scripted(ROOT_MODEL, [code(f"FINAL({first_lines})")])
    work = tmp_path / "work"

    def answer(*args: str) -> str:
        done = rlm(cli_env, "query", "--context", *args, "?", cwd=work)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    assert answer("corp") == "['==> a.log <==', '==> b.log <==']"  # latin.txt does not decode: left out
    assert answer("corp/a.log") == "alpha"  # a relative file, from the working directory (not an allowed root)
    assert answer("./corp/../corp/b.log") == "bravo"  # what the shell means, '..' included
    replaced = answer("corp", "--errors", "replace")
    assert replaced == "['==> a.log <==', '==> b.log <==', '==> latin.txt <==']"
    assert answer("corp", "--include", "*.txt", "--encoding", "latin-1") == "['==> latin.txt <==']"
    assert answer("corp", "--exclude", "a.*", "--exclude", "*.txt") == "['==> b.log <==']"
    # On a terminal the left-out file is named, with what to do about it.
    _, terminal, code_ = on_terminal(cli_env, "query", "--context", "corp", "?", cwd=work)
    assert code_ == 0
    assert "skipped latin.txt: not valid utf-8 (byte 3: invalid continuation byte)" in terminal
    assert "errors='replace'" in terminal
    # A single file that does not decode is still refused, with the reason.
    done = rlm(cli_env, "query", "--context", "corp/latin.txt", "?", cwd=work)
    assert done.returncode == 2 and "not valid utf-8" in done.stderr


def test_no_root_model_is_said_before_loading(cli_env, tmp_path: Path) -> None:
    env = {**cli_env}
    del env["RLM_ROOT_MODEL"]
    done = rlm(env, "query", "--context", str(tmp_path / "not-there-yet"), "?")
    assert done.returncode == 2
    assert "no root model (--root-model / RLM_ROOT_MODEL): give one" in done.stderr
    assert "not-there-yet" not in done.stderr  # checked before anything was loaded
    no_keys = {k: v for k, v in cli_env.items() if not k.startswith("AWS_ACCESS") and not k.startswith("AWS_SECRET")}
    no_keys["AWS_SHARED_CREDENTIALS_FILE"] = str(tmp_path / "none")
    no_keys["AWS_CONFIG_FILE"] = str(tmp_path / "none")
    no_keys["AWS_EC2_METADATA_DISABLED"] = "true"
    done = rlm(no_keys, "query", "--context", str(tmp_path / "not-there-yet"), "?")
    assert done.returncode == 2 and "no AWS credentials were found" in done.stderr
    assert "not-there-yet" not in done.stderr


@pytest.mark.anyio
async def test_sessions_lists_what_a_server_left(tmp_path: Path, fake, corpus_dir: Path) -> None:
    env = server_env(tmp_path / "data", corpus_dir, fake.url)
    fake.respond = scripted(ROOT_MODEL, [code("FINAL(len(context))")])
    async with connect("stdio", env) as client:
        sid = (await call(client, "load_context", content="kept for later", name="notes.txt"))["session_id"]
        run = await call(client, "rlm_query", session_id=sid, query="?")
    listed = rlm(env, "sessions").stdout
    assert sid in listed and "notes.txt" in listed and run["trajectory_id"] in listed
    as_json = json.loads(rlm(env, "sessions", "--json").stdout)
    mine = next(s for s in as_json["sessions"] if s["session_id"] == sid)
    assert mine["runs"] == [run["trajectory_id"]] and mine["documents"] == ["notes.txt"]
    empty = server_env(tmp_path / "nothing", corpus_dir, fake.url)
    assert "no stored sessions" in rlm(empty, "sessions").stdout


def test_reading_a_running_trajectory_changes_nothing(cli_env, tmp_path: Path) -> None:
    """The CLI reads files a live server may be writing: it must not mark a running run as interrupted."""
    folder = Path(cli_env["RLM_DATA_DIR"]) / "trajectories"
    folder.mkdir(parents=True)
    start = {"event": "start", "trajectory": {"id": "t_liveRun0000000", "kind": "run", "session_id": "s_x0000000",
             "status": "running", "created_at": 1.0, "updated_at": 1.0}}  # fmt: skip
    path = folder / "t_liveRun0000000.jsonl"
    path.write_text(json.dumps(start) + "\n")
    done = rlm(cli_env, "trajectory", "t_liveRun0000000")
    assert "running" in done.stdout and path.read_text() == json.dumps(start) + "\n"


@pytest.mark.anyio
async def test_progress_without_tqdm_is_one_status_line(monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from rlm_mcp.cli.progress_bar import RunProgress
    from rlm_mcp.progress import Progress

    monkeypatch.setitem(sys.modules, "tqdm", None)  # the optional extra is not installed
    stream = io.StringIO()
    with RunProgress(enabled=True, stream=stream) as progress:
        await progress(Progress(0.01, 20, "step 1: the root model is writing", step=1, max_steps=20))
        await progress(Progress(1.3, 20, "step 2: 3/8 sub-calls", step=2, max_steps=20, done=3, of=8, sub_calls=3))
        await progress(Progress(40, None, "looking at files", phase="scan", done=40, size=123_456))
    lines = stream.getvalue().split("\r")
    assert lines[1].startswith("step 1/20: the root model is writing · 0 sub-calls in all · 0 s")
    assert lines[2].startswith("step 2/20 · 3/8 sub-calls · 3 sub-calls in all · 0 s")
    assert lines[3].startswith("looking at files · 40 files · 123 KB · 0 s")
    quiet = io.StringIO()
    with RunProgress(enabled=False, stream=quiet) as progress:
        await progress(Progress(1, 20, "step 1"))
    assert quiet.getvalue() == ""


@pytest.mark.anyio
async def test_run_progress_follows_batches_inside_a_step_and_only_increases() -> None:
    from rlm_mcp.progress import Progress, StepProgress, increasing

    step = StepProgress(2)  # the third step: its values lie in [2, 3)
    values = [step.begin(), step.batch(1, 4), step.batch(2, 4), step.batch(4, 4)]
    assert values[0] == 2.01 and values[3] == pytest.approx(2.505)
    assert values[2] - values[1] == pytest.approx(values[1] - values[0])  # in step with the batch, not k/(k+1)
    values += [step.batch(1, 10), step.batch(10, 10), step.nested(0.5), step.nested(0.2)]
    assert all(a < b for a, b in itertools.pairwise(values[:-1])) and values[-1] == values[-2]
    assert all(2 < v < 3 for v in values)
    sent: list[float] = []

    async def notify(value: float, total: float | None, message: str) -> None:
        sent.append(value)

    report = increasing(notify)
    for value in (1.0, 1.5, 1.5, 1.2, 2.0):
        await report(Progress(value, 20, "x"))
    assert sent == [1.0, 1.5, 2.0]  # MCP: never the same or a lower value twice
