"""rlm-mcp doctor, run as the real command: a real sandbox worker, models behind the local fakes, real files.

Every run has a temporary HOME (so the client configurations it reads are the
test's) and AWS_EC2_METADATA_DISABLED, so boto3 never looks for an instance role.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
from conftest import ROOT_MODEL, SUB_MODEL

from rlm_mcp.testing.base import Fault
from rlm_mcp.testing.bedrock import ConverseFake, Reply
from rlm_mcp.testing.openai import ChatCompletionsFake
from sandbox import Sandbox

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    (path / "docs").mkdir(parents=True)
    return path


def base_env(home: Path, **extra: str) -> dict[str, str]:
    env = {
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(ROOT),
        "AWS_EC2_METADATA_DISABLED": "true",
        "RLM_DATA_DIR": str(home / "data"),
        "RLM_ALLOWED_ROOTS": str(home / "docs"),
    }
    env.update(extra)
    return {k: v for k, v in env.items() if v != ""}


def bedrock_env(home: Path, fake: ConverseFake, **extra: str) -> dict[str, str]:
    return base_env(home, AWS_ENDPOINT_URL_BEDROCK_RUNTIME=fake.url, AWS_ACCESS_KEY_ID="AKIAFAKEFAKEFAKE",
                    AWS_SECRET_ACCESS_KEY="fake-secret", AWS_DEFAULT_REGION="us-east-1", RLM_ROOT_MODEL=ROOT_MODEL,
                    RLM_SUB_MODEL=SUB_MODEL, **extra)  # fmt: skip


def doctor(env: dict[str, str], *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rlm_mcp", "doctor", *args], env=env, cwd=cwd or env["HOME"],
                          capture_output=True, text=True, timeout=180)  # fmt: skip


def checks(done: subprocess.CompletedProcess) -> list[dict[str, str]]:
    return json.loads(done.stdout)["checks"]


def named(found: list[dict[str, str]], name: str) -> list[dict[str, str]]:
    return [c for c in found if c["name"] == name]


def test_a_good_setup_reads_the_workers_own_confinement_and_calls_each_model_once(home: Path, fake) -> None:
    done = doctor(bedrock_env(home, fake), "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    found = checks(done)
    assert named(found, "python")[0]["status"] == "OK"
    assert named(found, "sandbox")[0]["status"] == "OK" and "ran code" in named(found, "sandbox")[0]["message"]

    async def confinement() -> list[str]:  # what a worker reports on this kernel, read the same way
        async with Sandbox() as box:
            return box.confinement

    lines = anyio.run(confinement)
    if sys.platform.startswith("linux"):
        seccomp = next(x for x in lines if x.startswith("system-call filter"))
        landlock = next(x for x in lines if x.startswith("file system"))
        assert named(found, "seccomp")[0]["message"].startswith(seccomp)
        assert named(found, "landlock")[0]["message"].startswith(landlock)
        assert named(found, "network")[0]["message"].startswith(next(x for x in lines if x.startswith("network")))
        user = named(found, "user")[0]["message"]
        assert ("runs as root" in user) == (os.geteuid() == 0)
    for role, model in (("root model", ROOT_MODEL), ("sub model", SUB_MODEL)):
        reached = [c for c in named(found, role) if "answered in" in c["message"]]
        assert reached and reached[0]["status"] == "OK" and "us-east-1" in reached[0]["message"]
        assert len(fake.requests_for(model)) == 1  # one short call each
    assert named(found, "roots") == [{"name": "roots", "status": "OK", "message": str((home / "docs").resolve())}]
    assert named(found, "data dir")[0]["status"] == "OK" and "GiB free" in named(found, "data dir")[0]["message"]
    assert "no client configuration starts rlm-mcp" in named(found, "clients")[0]["message"]


def test_no_network_calls_no_model_and_a_model_that_fails_is_a_failure(home: Path, fake) -> None:
    done = doctor(bedrock_env(home, fake), "--no-network")
    assert done.returncode == 0, done.stdout
    assert "(not called: --no-network)" in done.stdout and "credentials from env" in done.stdout
    assert fake.requests == []
    fake.respond = lambda request: Fault(400, "ValidationException", "The provided model identifier is invalid.")
    done = doctor(bedrock_env(home, fake))
    assert done.returncode == 1
    assert any(line.startswith("FAIL") and "model identifier is invalid" in line for line in done.stdout.splitlines())
    assert "FAIL" in done.stderr  # the tally: N OK, N WARN, N FAIL


def test_missing_credentials_and_region_are_named_offline(home: Path) -> None:
    env = base_env(home, RLM_SUB_MODEL="us.anthropic.claude-haiku-4-5-20251001-v1:0", AWS_DEFAULT_REGION="eu-west-1",
                   AWS_SHARED_CREDENTIALS_FILE=str(home / "none"), AWS_CONFIG_FILE=str(home / "none"))  # fmt: skip
    done = doctor(env, "--no-network", "--json")
    sub = named(checks(done), "sub model")
    assert done.returncode == 1 and sub[-1]["status"] == "FAIL" and "no AWS credentials" in sub[-1]["message"]
    env.pop("AWS_DEFAULT_REGION")
    sub = named(checks(doctor(env, "--no-network", "--json")), "sub model")
    assert "no AWS region" in sub[-1]["message"]


def test_an_openai_compatible_model_is_called_at_its_base_url(home: Path) -> None:
    with ChatCompletionsFake() as local:
        local.respond = lambda request: Reply(text="OK")
        env = base_env(home, RLM_SUB_MODEL="openai:llama3.1:8b", RLM_OPENAI_BASE_URL=local.base_url)
        done = doctor(env, "--json")
        assert len(local.requests) == 1
    sub = named(checks(done), "sub model")
    assert sub == [{"name": "sub model", "status": "OK", "message": sub[0]["message"]}]
    assert f"at {local.base_url} answered in" in sub[0]["message"]
    assert "no root model" in named(checks(done), "root model")[0]["message"]  # a warning: rlm_query needs one
    assert done.returncode == 0


def test_roots_data_dir_and_bad_settings(home: Path, tmp_path: Path) -> None:
    (home / ".ssh").mkdir()
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("")
    (home / "notes").mkdir()
    (home / "notes" / ".aws").mkdir()
    roots_setting = f"{home}:{home / 'notes'}:{home / 'missing'}:/"
    env = base_env(home, RLM_ALLOWED_ROOTS=roots_setting, RLM_ALLOW_BROAD_ROOTS="true", RLM_DATA_DIR=str(blocked))
    done = doctor(env, "--no-network", "--json")
    roots = {c["message"].split(" ")[0]: c for c in named(checks(done), "roots")}
    assert roots[str(home.resolve())]["status"] == "WARN" and "far too wide" in roots[str(home.resolve())]["message"]
    notes = roots[str((home / "notes").resolve())]
    assert notes["status"] == "WARN" and ".aws" in notes["message"]
    assert "does not exist" in roots[str((home / "missing").resolve())]["message"]
    assert "far too wide" in roots["/"]["message"]
    assert named(checks(done), "data dir")[0]["status"] == "FAIL" and done.returncode == 1

    done = doctor(base_env(home, RLM_MAX_ITERATIONS="0"), "--no-network", "--json")
    found = checks(done)
    assert done.returncode == 1 and named(found, "settings")[0]["status"] == "FAIL"
    assert "--max-iterations / RLM_MAX_ITERATIONS" in named(found, "settings")[0]["message"]
    assert named(found, "sandbox")[0]["status"] == "OK"  # the rest is still checked

    unset = base_env(home, RLM_ALLOWED_ROOTS="")
    assert "no allowed roots: path loads are refused" in doctor(unset, "--no-network").stdout


def test_client_configurations_that_start_rlm_mcp(home: Path) -> None:
    env = base_env(home, RLM_SUB_MODEL="openai:llama3.1:8b", RLM_OPENAI_BASE_URL="http://localhost:11434/v1")
    installed = subprocess.run([sys.executable, "-m", "rlm_mcp", "install", "--client", "cursor", "--allowed-roots", "",
                                "--sub-model", "openai:llama3.1:8b", "--openai-base-url", "http://localhost:11434/v1"],
                               env=env, cwd=home, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert installed.returncode == 0, installed.stderr
    cache_command = home / ".cache" / "uv" / "archive-v0" / "abc" / "bin" / "rlm-mcp"
    cache_command.parent.mkdir(parents=True)
    cache_command.write_text("#!/bin/sh\n")
    cache_command.chmod(0o755)
    claude = home / ".config" / "Claude" / "claude_desktop_config.json"
    claude.parent.mkdir(parents=True)
    claude.write_text(json.dumps({"mcpServers": {
        "gone": {"command": str(home / "old-venv" / "bin" / "rlm-mcp"), "args": ["serve"]},
        "cached": {"command": str(cache_command), "args": ["serve"]},
        "bare": {"command": "sh", "args": ["-c", "rlm-mcp serve"]},
        "unrelated": {"command": "npx", "args": ["-y", "other-server"]},
    }}))  # fmt: skip
    windsurf = home / ".codeium" / "windsurf" / "mcp_config.json"
    windsurf.parent.mkdir(parents=True)
    windsurf.write_text("{not json")
    done = doctor(env, "--no-network", "--json")
    assert done.returncode == 1
    found = checks(done)
    cursor = named(found, "Cursor")
    assert cursor[0]["status"] == "OK" and cursor[0]["message"].endswith(
        f"runs {sys.executable.rsplit('/', 1)[0]}/rlm-mcp"
    )
    assert [c["message"] for c in cursor if c["status"] == "WARN"] == [
        f"'rlm' in {home / '.cursor' / 'mcp.json'}: no root model (--root-model / RLM_ROOT_MODEL): rlm_query cannot "
        "run; repl_exec works with your client's model as the root"
    ]
    desktop: dict[str, list[tuple[str, str]]] = {}
    for c in named(found, "Claude Desktop"):
        desktop.setdefault(c["message"].split(" ")[0], []).append((c["status"], c["message"]))
    assert desktop["'gone'"] == [("FAIL", desktop["'gone'"][0][1])] and "does not exist" in desktop["'gone'"][0][1]
    assert any(status == "WARN" and "tool cache" in message for status, message in desktop["'cached'"])
    assert any(status == "WARN" and "shorter PATH" in message for status, message in desktop["'bare'"])
    assert "'unrelated'" not in desktop
    assert (
        named(found, "Windsurf")[0]["status"] == "FAIL"
        and "is not valid JSON" in named(found, "Windsurf")[0]["message"]
    )


def test_the_text_output_is_one_line_per_check(home: Path) -> None:
    done = doctor(base_env(home), "--no-network")
    lines = done.stdout.splitlines()
    assert lines and all(line.split()[0] in ("OK", "WARN", "FAIL") for line in lines)
    assert done.stderr.strip().endswith("FAIL")
