#!/usr/bin/env python3
"""Check the container image without a Docker engine: its invariants, then a replay of its build.

    python3 scripts/check_image.py            # invariants, install replay, entry point smoke test
    python3 scripts/check_image.py --static   # invariants only (what tests/project/test_container.py runs)

The replay reads the Dockerfile and performs its build stage on this machine: the
build context is what ``.dockerignore`` lets through, ``COPY`` copies from it,
``RUN`` runs with the stage's ``ARG``/``ENV`` values under a scratch root (the
virtualenv path is passed as a build argument, as ``docker build --build-arg``
would). The runtime stage's ``RUN`` lines set up the system (user, directories)
and are only checked, not run. Then the ``ENTRYPOINT`` is started from the
replayed virtualenv with the image's ``ENV`` (paths moved under the scratch
root) and only ``--port`` added: once bare, where it must refuse to serve ``0.0.0.0`` without
authentication, and once with a static bearer token, when ``/ping`` and ``/mcp`` are called.

What this cannot show: that the base image pulls, that wheels exist for arm64
(every compiled dependency publishes manylinux aarch64 wheels, but only a real
``docker buildx build --platform linux/arm64`` proves it), and the container's
own user and filesystem permissions.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONTRACT = ["rlm-mcp", "serve", "--transport", "streamable-http", "--host", "0.0.0.0", "--port", "8000", "--stateless"]
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")


@dataclass
class Instruction:
    keyword: str
    args: str

    @property
    def exec_form(self) -> list[str] | None:
        try:
            value = json.loads(self.args)
        except ValueError:
            return None
        return value if isinstance(value, list) else None


@dataclass
class Stage:
    image: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


@dataclass
class Dockerfile:
    global_args: dict[str, str]
    stages: list[Stage]


def parse(text: str) -> Dockerfile:
    """Instructions with continuation lines joined and comments dropped, grouped by stage."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword, args = keyword.upper(), args.strip()
        if keyword == "FROM":
            words = args.split()
            image = expand(words[0], global_args)
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(image=image, name=name))
        elif not stages:
            if keyword == "ARG":
                key, _, value = args.partition("=")
                global_args[key] = value
        else:
            stages[-1].instructions.append(Instruction(keyword, args))
    return Dockerfile(global_args, stages)


def expand(text: str, values: dict[str, str]) -> str:
    return _VAR.sub(lambda m: values.get(m[1] or m[2], ""), text)


def env_pairs(args: str) -> list[tuple[str, str]]:
    return [tuple(word.split("=", 1)) for word in shlex.split(args)]  # type: ignore[misc]


# -- .dockerignore ----------------------------------------------------------------------------------


def ignore_patterns(text: str) -> list[tuple[bool, str]]:
    """(is_exception, pattern) pairs in order; the last pattern matching a path decides."""
    patterns = []
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            exception = line.startswith("!")
            patterns.append((exception, line.lstrip("!").strip("/")))
    return patterns


def _matches(pattern: str, path: str) -> bool:
    if pattern.startswith("**/"):
        tail = pattern[3:]
        parts = path.split("/")
        return any(fnmatch.fnmatchcase("/".join(parts[i:]), tail) for i in range(len(parts)))
    return fnmatch.fnmatchcase(path, pattern)


def included(path: str, patterns: list[tuple[bool, str]]) -> bool:
    """Whether ``path`` (relative, posix) is in the build context, as Docker decides it."""
    parts = path.split("/")
    decision = True
    for exception, pattern in patterns:
        # A pattern matching a parent directory covers everything below it.
        if any(_matches(pattern, "/".join(parts[: n + 1])) for n in range(len(parts))):
            decision = exception
    return decision


def build_context(root: Path) -> list[str]:
    patterns = ignore_patterns((root / ".dockerignore").read_text())
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != ".git"]
        for name in filenames:
            relative = (Path(dirpath) / name).relative_to(root).as_posix()
            if included(relative, patterns):
                files.append(relative)
    return sorted(files)


# -- invariants ------------------------------------------------------------------------------------


def problems(dockerfile: Dockerfile, context: list[str]) -> list[str]:
    """What is wrong with the image definition; empty when it keeps every rule."""
    found = []
    if len(dockerfile.stages) < 2:
        found.append("the build is not multi-stage")
    final = dockerfile.stages[-1]
    if "-slim" not in final.image:
        found.append(f"the runtime image {final.image!r} is not a slim image")
    users = final.all("USER")
    user = expand(users[-1].args, dockerfile.global_args).split(":")[0] if users else "root"
    if user in ("root", "0", ""):
        found.append("the runtime stage runs as root: add USER with an unprivileged uid")
    created = " ".join(i.args for i in final.all("RUN"))
    if users and f"--uid {user}" not in created:
        found.append(f"USER {user} is not a user the runtime stage creates")
    if "8000" not in " ".join(i.args for i in final.all("EXPOSE")).split():
        found.append("the runtime stage does not EXPOSE 8000")
    entrypoints = final.all("ENTRYPOINT")
    if not entrypoints or entrypoints[-1].exec_form != CONTRACT:
        found.append(f"the ENTRYPOINT is not the AgentCore contract in exec form: {CONTRACT}")
    for stage in dockerfile.stages:
        for instruction in stage.all("ADD"):
            if "://" in instruction.args:
                found.append(f"ADD fetches a URL: {instruction.args}")
        for instruction in stage.all("ENV") + stage.all("ARG"):
            for word in instruction.args.split():
                name = word.split("=")[0].upper()
                if any(secret in name for secret in ("SECRET", "PASSWORD", "TOKEN", "_KEYS", "ACCESS_KEY")):
                    found.append(f"{instruction.keyword} {name} would bake a secret into the image")
    for copy in final.all("COPY"):
        if not copy.args.startswith("--from="):
            found.append(f"the runtime stage copies from the build context ({copy.args}): copy the built venv only")
    for unwanted in ("tests/", ".git/", ".whl", "docs/", "benchmarks/"):
        leaked = [path for path in context if unwanted in path or path.endswith(unwanted)]
        if leaked:
            found.append(f"the build context holds {leaked[:3]}: exclude them in .dockerignore")
    for needed in ("pyproject.toml", "README.md", "LICENSE", "rlm_mcp/__init__.py", "sandbox/__init__.py"):
        if needed not in context:
            found.append(f"the build context lacks {needed}")
    return found


# -- replay ----------------------------------------------------------------------------------------


def _run(command: list[str] | str, **kwargs: object) -> None:
    print("+", command if isinstance(command, str) else shlex.join(command), flush=True)
    subprocess.run(command, check=True, **kwargs)  # type: ignore[call-overload]


def _copy(source: str, target: str, several: bool, context: list[str], fs: Path, cwd: Path) -> None:
    """COPY as Docker does it: a file lands at target (or in it, for target/), a directory's contents go into target."""
    base = fs / target.lstrip("/") if target.startswith("/") else cwd / target
    source = source.rstrip("/")
    if source in context:
        destination = base / Path(source).name if target.endswith("/") or several else base
        pairs = [(source, destination)]
    else:
        pairs = [(path, base / path[len(source) + 1 :]) for path in context if path.startswith(source + "/")]
    if not pairs:
        raise SystemExit(f"COPY {source}: nothing in the build context")
    for path, destination in pairs:
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / path, destination)


def replay(dockerfile: Dockerfile, context: list[str], scratch: Path) -> tuple[dict[str, str], Path]:
    """Perform the build stage under ``scratch``; returns the runtime stage's environment and working directory."""
    fs = scratch / "root"
    build_args = {"VENV": str(fs / "opt" / "rlm-mcp")}
    shims = scratch / "shims"  # `python` is the base image's interpreter, as in python:3.11-slim
    shims.mkdir(parents=True)
    (shims / "python").symlink_to(getattr(sys, "_base_executable", sys.executable))
    base_env = {"PATH": f"{shims}:/usr/local/bin:/usr/bin:/bin", "HOME": str(scratch), "LANG": "C.UTF-8"}
    for stage in dockerfile.stages[:-1]:
        values = {**dockerfile.global_args, **build_args}
        env = dict(base_env)
        cwd = fs
        for instruction in stage.instructions:
            keyword, args = instruction.keyword, instruction.args
            if keyword == "ARG":
                key, _, default = args.partition("=")
                values.setdefault(key, default)
                env[key] = values[key]
            elif keyword == "ENV":
                for key, value in env_pairs(expand(args, {**values, **env})):
                    env[key] = value
            elif keyword == "WORKDIR":
                cwd = fs / expand(args, {**values, **env}).lstrip("/")
                cwd.mkdir(parents=True, exist_ok=True)
            elif keyword == "COPY":
                *sources, target = shlex.split(expand(args, {**values, **env}))
                for source in sources:
                    _copy(source, target, len(sources) > 1, context, fs, cwd)
            elif keyword == "RUN":
                _run(["/bin/sh", "-c", args], cwd=cwd, env=env)
    return runtime_environment(dockerfile, fs, build_args, base_env)


def runtime_environment(
    dockerfile: Dockerfile, fs: Path, build_args: dict[str, str], base_env: dict[str, str]
) -> tuple[dict[str, str], Path]:
    """The runtime stage's environment and working directory, its absolute paths moved under ``fs``."""
    values = {**dockerfile.global_args, **build_args}
    env = dict(base_env)
    workdir = fs
    for instruction in dockerfile.stages[-1].instructions:
        if instruction.keyword == "ARG":
            key, _, default = instruction.args.partition("=")
            values.setdefault(key, default)
        elif instruction.keyword == "ENV":
            for key, value in env_pairs(expand(instruction.args, {**values, **env})):
                moved = value.startswith("/") and ":" not in value and not value.startswith(str(fs))
                env[key] = str(fs / value.lstrip("/")) if moved else value
                if moved:
                    Path(env[key]).mkdir(parents=True, exist_ok=True)
        elif instruction.keyword == "WORKDIR":
            workdir = fs / expand(instruction.args, values).lstrip("/")
            workdir.mkdir(parents=True, exist_ok=True)
        elif instruction.keyword == "RUN":
            print("  (runtime-stage RUN, system setup, checked not run):", instruction.args[:100], "...")
    return env, workdir


def smoke_test(dockerfile: Dockerfile, env: dict[str, str], workdir: Path, extra_env: dict[str, str]) -> None:
    """Start the ENTRYPOINT (only --port added): without authentication it must refuse to serve 0.0.0.0; with a
    static token, /ping answers anyone and /mcp only the token's holder."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    entrypoint = dockerfile.stages[-1].all("ENTRYPOINT")[-1].exec_form
    assert entrypoint is not None
    command = [*entrypoint, "--port", str(port)]
    executable = shutil.which(command[0], path=env["PATH"])
    if executable is None:
        raise SystemExit(f"{command[0]} is not on the image's PATH after the replay")
    print("+", shlex.join(command), flush=True)
    bare = subprocess.run([executable, *command[1:]], cwd=workdir, env={**env, **extra_env}, capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    if bare.returncode == 0 or "RLM_ALLOW_UNAUTHENTICATED" not in bare.stderr:
        raise SystemExit(f"the entry point served 0.0.0.0 without authentication: {bare.stderr[-500:]}")
    token = secrets.token_urlsafe(32)
    extra_env = {**extra_env, "RLM_AUTH_TOKENS": f"smoke:{token}"}
    process = subprocess.Popen([executable, *command[1:]], cwd=workdir, env={**env, **extra_env})
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as response:
                    ping = json.loads(response.read())
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("the entry point did not come up") from None
                time.sleep(0.2)
        assert ping["status"] == "Healthy", ping
        body = json.dumps(
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "tools/call",
                "params": {"name": "load_context", "arguments": {"content": "hello from the image"}},
            }
        ).encode()
        headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
        anonymous = urllib.request.Request(f"http://127.0.0.1:{port}/mcp", data=body, headers=headers)
        try:
            urllib.request.urlopen(anonymous, timeout=60)
            raise SystemExit("/mcp answered a request without a token")
        except urllib.error.HTTPError as refused:
            assert refused.code == 401 and refused.headers["WWW-Authenticate"].startswith("Bearer "), refused
        headers["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(f"http://127.0.0.1:{port}/mcp", data=body, headers=headers)
        with urllib.request.urlopen(request, timeout=60) as response:
            text = response.read().decode()
        data = [line[5:] for line in text.splitlines() if line.startswith("data:")]
        reply = json.loads(data[-1] if data else text)
        assert reply["result"]["structuredContent"]["chars"] == len("hello from the image"), reply
        print(f"entry point OK: refused without auth; /ping {ping}; /mcp 401 without the token, answered with it",
              flush=True)  # fmt: skip
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--static", action="store_true", help="check the invariants only")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = parser.parse_args()
    dockerfile = parse((ROOT / "Dockerfile").read_text())
    context = build_context(ROOT)
    found = problems(dockerfile, context)
    for problem in found:
        print("PROBLEM:", problem)
    if found:
        raise SystemExit(1)
    print(f"invariants OK ({len(dockerfile.stages)} stages, {len(context)} files in the build context)")
    if args.static:
        return
    scratch = Path(tempfile.mkdtemp(prefix="rlm-image-"))
    try:
        started = time.monotonic()
        env, workdir = replay(dockerfile, context, scratch)
        print(f"build stage replayed in {time.monotonic() - started:.0f} s")
        _run([str(Path(env["PATH"].split(":")[0]) / "python"), "-c", "import opentelemetry.sdk, rlm_mcp, sandbox"])
        smoke_test(dockerfile, env, workdir, {"AWS_DEFAULT_REGION": "us-east-1"})
    finally:
        if args.keep:
            print("scratch kept at", scratch)
        else:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
