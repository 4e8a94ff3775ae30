"""``rlm-mcp doctor``: what works on this machine and with these settings, and what to do about the rest.

Each check returns lines of OK, WARN or FAIL. They look at the real thing where
that is cheap: a sandbox worker is started and runs code, and its own report of
the confinement it applied is read back (``Sandbox.confinement``); each
configured model gets one short call (a few tokens) unless ``--no-network``;
the data directory is written to; client configurations are parsed with the
same code ``install`` uses. Offline, AWS credentials are resolved without the
providers that call out (instance and container roles, ``credential_process``).
"""

from __future__ import annotations

import os
import platform
import shutil
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import anyio

from rlm_mcp.cli import client_entries as install
from rlm_mcp.cli import launcher
from rlm_mcp.config import Settings, describe_setting, too_broad, tool_directories
from rlm_mcp.errors import InvalidInput, ModelError
from rlm_mcp.models.names import Finding, check_model

Status = Literal["OK", "WARN", "FAIL"]
GIB = 1024**3
MIN_PYTHON = (3, 11)
LOW_SPACE = GIB
PING = "Reply with the single word OK."
SENSITIVE = (".ssh", ".aws", ".gnupg", ".kube", ".docker", ".config", ".netrc", ".codex", ".claude.json")


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    message: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def _from_finding(name: str, finding: Finding) -> Check:
    return Check(name, {"ok": "OK", "warn": "WARN", "fail": "FAIL"}[finding.level], finding.message)  # type: ignore[arg-type]


# -- the interpreter and the sandbox ------------------------------------------------------------


def python_check() -> Check:
    version = platform.python_version()
    if sys.version_info[:2] < MIN_PYTHON:
        return Check("python", "FAIL", f"Python {version} at {sys.executable}: rlm-mcp needs 3.11 or later")
    return Check("python", "OK", f"Python {version} at {sys.executable}")


async def confinement_checks(settings: Settings) -> list[Check]:
    """Start a real worker, run code in it, and read back the measures it applied."""
    from rlm_mcp.core.session_state import sandbox_limits
    from sandbox import Sandbox, SandboxError

    checks: list[Check] = []
    with tempfile.TemporaryDirectory(prefix="rlm-doctor-") as workdirs:
        try:
            async with Sandbox(sandbox_limits(settings), workdir_parent=Path(workdirs)) as box:
                result = await box.execute("print(6 * 7)")
                lines = list(box.confinement)
                pid = box.pid
        except (SandboxError, OSError) as exc:
            return [Check("sandbox", "FAIL", f"a sandbox worker could not start: {exc}")]
    if result.stdout != "42\n":
        error = result.error.message if result.error else result.stdout
        return [Check("sandbox", "FAIL", f"a sandbox worker started but could not run code: {error}")]
    checks.append(Check("sandbox", "OK", f"a worker started (pid {pid}) and ran code"))
    if not sys.platform.startswith("linux"):
        return [
            *checks,
            Check(
                "confinement",
                "WARN",
                f"on {sys.platform} only resource limits hold: "
                "code that escaped RestrictedPython could do what your user can",
            ),
        ]

    def line(prefix: str) -> str | None:
        return next((x for x in lines if x.startswith(prefix)), None)

    seccomp = line("system-call filter")
    checks.append(_measure("seccomp", seccomp, "no system-call filter: escaped code could fork, connect, write files"))
    landlock = line("file system")
    checks.append(
        _measure(
            "landlock", landlock, "no Landlock (Linux 5.13+): an escaped worker could read what the server's user can"
        )
    )
    network = line("network")
    checks.append(_measure("network", network, "escaped code is still refused sockets by seccomp"))
    if os.geteuid() == 0:
        user = line("user") or "user: not switched"
        status: Status = "OK" if "uid" in user and "still root" not in user else "WARN"
        checks.append(Check("user", status, f"the server runs as root; workers: {user.removeprefix('user: ')}"))
    else:
        checks.append(Check("user", "OK", f"the server runs as uid {os.geteuid()} (not root); workers keep it"))
    return checks


def _measure(name: str, line: str | None, consequence: str) -> Check:
    if line is None:
        return Check(name, "WARN", f"the worker did not report it; {consequence}")
    if "NOT" in line:
        return Check(name, "WARN", f"{line}; {consequence}")
    return Check(name, "OK", line)


# -- models -------------------------------------------------------------------------------------


async def model_checks(settings: Settings, network: bool) -> list[Check]:
    checks: list[Check] = []
    for role in ("root", "sub"):
        name = f"{role} model"
        model = getattr(settings, f"{role}_model")
        findings = check_model(model, role, settings)  # type: ignore[arg-type]
        checks += [_from_finding(name, f) for f in findings if f.level != "ok"]
        if model is None or any(f.level == "fail" for f in findings):
            continue
        checks.append(await _reach(name, model, settings, network))
    return checks


async def _reach(name: str, model: str, settings: Settings, network: bool) -> Check:
    from rlm_mcp.models import ModelRouter, parse_model

    backend, _ = parse_model(model)
    if backend == "sampling":
        return Check(name, "OK", f"{model}: the MCP client's own model answers, at run time (not checkable here)")
    where = _aws_where(settings, network) if backend == "bedrock" else f"at {settings.openai_base_url}"
    if isinstance(where, Check):
        return Check(name, where.status, where.message)
    if not network:
        return Check(name, "OK", f"{model} {where} (not called: --no-network)")
    quick = settings.model_copy(update={"bedrock_max_attempts": 1, "openai_max_attempts": 1, "subcall_timeout_s": 30})
    router = ModelRouter(quick)
    try:
        client, resolved = router.client_for(model)
        await client.check()
        with anyio.fail_after(60):
            completion = await client.complete(resolved, PING, max_tokens=16)
    except ModelError as exc:
        return Check(name, "FAIL", f"{model} {where}: {exc}")
    except TimeoutError:
        return Check(name, "FAIL", f"{model} {where}: no answer within 60 s")
    finally:
        await router.aclose()
    return Check(name, "OK", f"{model} {where} answered in {completion.latency_ms:.0f} ms")


def _aws_where(settings: Settings, network: bool) -> str | Check:
    """Region, credentials and endpoint as boto3 resolves them; offline, without the providers that call out."""
    import boto3
    import botocore.session

    from rlm_mcp import aws

    core = botocore.session.get_session()
    if not network:
        resolver = core.get_component("credential_provider")
        for provider in ("iam-role", "container-role", "custom-process"):
            if resolver.get_provider(provider) is not None:
                resolver.remove(provider)
    session = boto3.session.Session(botocore_session=core)
    region = aws.resolve_region(session, settings.aws_region)
    if region is None:
        return Check(
            "",
            "FAIL",
            f"no AWS region: set AWS_REGION (or {describe_setting('aws_region')}, or a region in your AWS profile)",
        )
    credentials = session.get_credentials()
    if credentials is None:
        offline = " (instance and container roles are not looked up with --no-network)" if not network else ""
        return Check(
            "",
            "FAIL",
            f"no AWS credentials{offline}: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, or run on a role",
        )
    endpoint = session.client("bedrock-runtime", region_name=region).meta.endpoint_url
    return f"on Bedrock in {region} ({endpoint}, credentials from {credentials.method})"


# -- files --------------------------------------------------------------------------------------


def root_checks(settings: Settings) -> list[Check]:
    roots = list(settings.allowed_roots)
    if not roots:
        return [
            Check(
                "roots",
                "OK",
                f"no allowed roots: path loads are refused (inline content and S3 still work); "
                f"{describe_setting('allowed_roots')} names the folders to read",
            )
        ]
    return [_one_root(root) for root in roots]


def _one_root(root: Path) -> Check:
    if not root.exists():
        return Check("roots", "WARN", f"{root} does not exist: loads under it will fail")
    if not root.is_dir():
        return Check("roots", "WARN", f"{root} is not a directory")
    if too_broad(root):
        return Check(
            "roots",
            "WARN",
            f"{root} is far too wide (allowed only by {describe_setting('allow_broad_roots')}): it gives "
            "load_context system files or a whole home directory; name the folders that hold your documents",
        )
    exposed = [name for name in SENSITIVE if (root / name).exists()]
    if exposed:
        what = ", ".join(f"{root / name}" for name in exposed)
        return Check(
            "roots",
            "WARN",
            f"{root} is too wide: it lets load_context read {what}; name the folders that hold your documents instead",
        )
    return Check("roots", "OK", f"{root}")


def data_dir_check(settings: Settings) -> list[Check]:
    path = settings.data_dir
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    checks: list[Check] = []
    if path.exists() and not path.is_dir():
        return [Check("data dir", "FAIL", f"{path} is not a directory: point {describe_setting('data_dir')} elsewhere")]
    try:
        if path.exists():
            with tempfile.NamedTemporaryFile(dir=path, prefix=".doctor-"):
                pass
        elif not os.access(existing, os.W_OK):
            raise PermissionError(f"{existing} is not writable")
    except OSError as exc:
        return [
            Check(
                "data dir",
                "FAIL",
                f"{path} cannot be written ({exc}): fix its permissions or point "
                f"{describe_setting('data_dir')} elsewhere",
            )
        ]
    free = shutil.disk_usage(existing).free
    created = "" if path.exists() else " (created on first use)"
    if free < LOW_SPACE:
        checks.append(
            Check(
                "data dir",
                "WARN",
                f"{path}{created}: only {free / GIB:.1f} GiB free; corpora and trajectories are written there",
            )
        )
    else:
        checks.append(Check("data dir", "OK", f"{path}{created}: writable, {free / GIB:.1f} GiB free"))
    if settings.store:
        checks.append(Check("store", "OK", f"{settings.store} (S3; not checked here)"))
    return checks


def client_checks(project: Path | None = None) -> list[Check]:
    """Every client file that exists (user and project scope) and its entries that start rlm-mcp."""
    checks: list[Check] = []
    dirs = tool_directories()
    seen = 0
    read: set[Path] = set()
    for name, fmt in install.CLIENTS.items():
        paths = [install.config_path(name, "user")]
        if fmt.project_file is not None:
            paths.append(install.config_path(name, "project", project))
        for path in paths:
            if not path.exists() or path.resolve() in read:
                continue
            read.add(path.resolve())  # run from home, a project file can be the user file
            try:
                servers = install.open_file(name, path).servers()
            except (InvalidInput, OSError) as exc:
                checks.append(Check(fmt.title, "FAIL", f"cannot read {path}: {exc}"))
                continue
            for server_name, server in servers.items():
                if install.mentions_us(server):
                    seen += 1
                    checks += _entry_checks(fmt, path, server_name, server, dirs)
    if not seen:
        checks.append(
            Check("clients", "OK", "no client configuration starts rlm-mcp yet (rlm-mcp install --client NAME adds it)")
        )
    return checks


def _entry_checks(fmt: install.ClientFormat, path: Path, name: str, server: dict[str, Any], dirs: Any) -> list[Check]:
    label = f"{name!r} in {path}"
    command = str(server.get("command", ""))
    checks: list[Check] = []
    if os.path.isabs(command):
        if not (os.path.isfile(command) and os.access(command, os.X_OK)):
            return [
                Check(
                    fmt.title,
                    "FAIL",
                    f"{label} runs {command}, which does not exist (any more): run "
                    f"rlm-mcp install --client {fmt.name} again",
                )
            ]
        if launcher.within(Path(command), dirs.uv_caches) or launcher.within(Path(command), dirs.pipx_caches):
            checks.append(
                Check(
                    fmt.title,
                    "WARN",
                    f"{label} runs {command}, inside a tool cache that uv or pipx "
                    f"deletes: run rlm-mcp install --client {fmt.name} again from an "
                    "installed rlm-mcp (from uvx it writes `uvx rlm-mcp`)",
                )
            )
        else:
            checks.append(Check(fmt.title, "OK", f"{label} runs {command}"))
    else:
        found = shutil.which(command) if command else None
        if found is None:
            return [
                Check(
                    fmt.title,
                    "FAIL",
                    f"{label} runs {command!r}, which is not on PATH: run rlm-mcp install --client {fmt.name} again",
                )
            ]
        if fmt.desktop:
            checks.append(
                Check(
                    fmt.title,
                    "WARN",
                    f"{label} runs {command!r}, found on this shell's PATH "
                    f"({found}); {fmt.title} starts servers with its own, often shorter "
                    f"PATH: an absolute path is safer",
                )
            )
        else:
            checks.append(Check(fmt.title, "OK", f"{label} runs {command} ({found})"))
    env = server.get("env") or {}
    try:
        entry = install.entry_settings({}, {str(k): str(v) for k, v in env.items()})
    except InvalidInput as exc:
        return [*checks, Check(fmt.title, "FAIL", f"{label}: {exc}")]
    checks += [Check(fmt.title, "WARN", f"{label}: {warning}") for warning in entry.warnings]
    return checks


# -- all of it ----------------------------------------------------------------------------------


async def run_checks(settings: Settings | None, problem: str | None, network: bool) -> list[Check]:
    """Every check, in the order they are shown; ``problem`` is why ``settings`` could not be built."""
    checks = [python_check()]
    if settings is None:
        checks.append(Check("settings", "FAIL", problem or "the settings are not valid"))
        checks += await confinement_checks(Settings.model_construct(**_defaults()))
    else:
        checks += await confinement_checks(settings)
        checks += await model_checks(settings, network)
        checks += root_checks(settings)
        checks += data_dir_check(settings)
    checks += client_checks()
    return checks


def _defaults() -> dict[str, Any]:
    """Every setting at its default, without reading the environment (which just failed validation)."""
    values: dict[str, Any] = {}
    for name, field in Settings.model_fields.items():
        values[name] = field.default_factory() if field.default_factory is not None else field.default  # type: ignore[call-arg]
    return values


def failed(checks: list[Check]) -> bool:
    return any(c.status == "FAIL" for c in checks)
