"""Every knob of rlm-mcp: its default, its environment variable and its command-line flag.

This is the only module that reads the environment. A setting ``foo_bar`` is
read from ``RLM_FOO_BAR`` and can be overridden on the command line with
``--foo-bar``; ``rlm-mcp serve --help`` lists them all. AWS settings are left to
boto3's own chain (``AWS_PROFILE``, ``AWS_DEFAULT_REGION``,
``AWS_ENDPOINT_URL_BEDROCK_RUNTIME``, ...), with one addition: ``AWS_REGION``,
which the AWS runtimes set but botocore does not read, is used when boto3
finds no region of its own.

This module holds the settings and the places on this machine they default to (``XDG_*``, ``APPDATA``,
``CODEX_HOME``, ``UV_*``, ``PIPX_HOME``: the platform's own variables). Beside it, and free of the
environment: :mod:`rlm_mcp.setting_names` (the one rule from a setting to its variable and flag, re-exported
here), :mod:`rlm_mcp.auth_tokens` (the ``NAME:TOKEN`` parser) and, for the command line,
:mod:`rlm_mcp.cli.flags`.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AliasChoices,
    Field,
    FilePath,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from rlm_mcp.auth_tokens import MIN_TOKEN_CHARS as MIN_TOKEN_CHARS
from rlm_mcp.auth_tokens import TOKEN_HOW_TO as TOKEN_HOW_TO
from rlm_mcp.auth_tokens import parse_token_entries
from rlm_mcp.setting_names import ENV_PREFIX, env_name
from rlm_mcp.setting_names import describe_setting as describe_setting
from rlm_mcp.setting_names import flag_dest as flag_dest
from rlm_mcp.setting_names import flag_name as flag_name
from rlm_mcp.setting_names import settings_given as settings_given

# -- where things live on this machine ------------------------------------------------------------


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "rlm-mcp"


def user_config_dir() -> Path:
    """Where desktop applications keep their settings on this platform (for ``rlm-mcp install``)."""
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support"
    if sys.platform == "win32":
        return Path(os.environ.get("APPDATA") or Path.home() / "AppData" / "Roaming")
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")


SYSTEM_DIRECTORIES = frozenset(
    Path(p) for p in ("/etc", "/root", "/var", "/usr", "/home", "/Users", "/private", "/boot", "/opt", "/srv", "/mnt")
)
"""Top-level folders that hold the system's or every user's files: too wide to be an allowed root."""


def too_broad(root: Path) -> bool:
    """Whether an allowed root would open far more than anyone means to share: a file system's root, a
    system folder, or a home directory or a folder holding one (``~/.ssh``, ``~/.aws`` live there)."""
    home = Path.home().resolve()
    if root == Path(root.anchor) or root in SYSTEM_DIRECTORIES or home.is_relative_to(root):
        return True
    return root.parent in (Path("/home"), Path("/Users"))  # someone else's home


def codex_home() -> Path:
    """Where the Codex CLI keeps ``config.toml``: ``$CODEX_HOME``, else ``~/.codex``."""
    return Path(os.environ.get("CODEX_HOME") or Path.home() / ".codex")


@dataclass(frozen=True)
class ToolDirectories:
    """Where uv and pipx keep the environments they create (for ``rlm-mcp install``'s launcher choice).

    uv: tool runs (``uvx``) live in its cache (``$UV_CACHE_DIR``, ``$XDG_CACHE_HOME/uv``, ``~/.cache/uv``,
    ``%LOCALAPPDATA%\\uv\\cache``), which ``uv cache clean``/``prune`` may delete; ``uv tool install`` puts
    tools under ``$UV_TOOL_DIR`` or ``<data>/uv/tools``. pipx: ``pipx run`` environments live in
    ``$PIPX_HOME/.cache`` or the user cache's ``pipx`` folder and are removed after 14 days unused;
    ``pipx install`` puts them under ``$PIPX_HOME/venvs``.
    """

    uv_caches: tuple[Path, ...]
    uv_tools: tuple[Path, ...]
    pipx_caches: tuple[Path, ...]
    pipx_venvs: tuple[Path, ...]


def tool_directories() -> ToolDirectories:
    env = os.environ
    home = Path.home()

    def given(*names: str) -> list[Path]:
        return [Path(env[name]) for name in names if env.get(name)]

    cache = Path(env.get("XDG_CACHE_HOME") or home / ".cache")
    data = Path(env.get("XDG_DATA_HOME") or home / ".local" / "share")
    local_app = given("LOCALAPPDATA")
    pipx_homes = [*given("PIPX_HOME"), home / ".local" / "pipx", data / "pipx"]
    pipx_homes.append(home / "Library" / "Application Support" / "pipx")
    return ToolDirectories(
        uv_caches=(*given("UV_CACHE_DIR"), cache / "uv", *(p / "uv" / "cache" for p in local_app)),
        uv_tools=(
            *given("UV_TOOL_DIR"),
            data / "uv" / "tools",
            *(p / "uv" / "data" / "tools" for p in given("APPDATA")),
        ),
        pipx_caches=(
            *(h / ".cache" for h in pipx_homes),
            cache / "pipx",
            home / "Library" / "Caches" / "pipx",
            *(p / "pipx" / "pipx" / "Cache" for p in local_app),
        ),
        pipx_venvs=tuple(h / "venvs" for h in pipx_homes),
    )


# -- the settings --------------------------------------------------------------------------------


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True, populate_by_name=True)

    root_model: str | None = Field(
        None,
        description="model of the root in rlm_query: a Bedrock model id, bedrock:<id>, openai:<model> or sampling",
    )
    sub_model: str | None = Field(
        None,
        description="model behind llm_query: a Bedrock model id, bedrock:<id>, openai:<model> or sampling",
    )
    data_dir: Path = Field(
        default_factory=default_data_dir, description="where corpora, sessions and trajectories live"
    )
    allow_broad_roots: bool = Field(
        False,
        description="let RLM_ALLOWED_ROOTS name '/', a home directory or a folder holding one (logged as a warning)",
    )
    allowed_roots: Annotated[list[Path], NoDecode] = Field(
        default_factory=list,
        description=f"directories load_context may read, separated by '{os.pathsep}' (none by default: path loads "
        "are refused until you name one)",
    )
    allowed_s3: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="s3://bucket/prefix/ locations load_context may read, separated by ',' (none by default; "
        "'*' allows every bucket the credentials reach)",
    )
    allowed_models: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="models code may name in llm_query(model=...), separated by ',' (default: the configured root "
        "and sub models; '*' allows any)",
    )
    max_iterations: int = Field(20, ge=1, description="root turns per rlm_query run")
    max_sub_calls: int = Field(50, ge=0, description="sub-calls per rlm_query run, or per session in repl_exec")
    max_tokens: int | None = Field(
        None,
        ge=1,
        description="tokens (input + output) per rlm_query run, root turns included, or of sub-calls per session "
        "in repl_exec; none by default",
    )
    max_cost_usd: float | None = Field(
        None,
        gt=0,
        description="dollars (by the price table) per rlm_query run, or of sub-calls per session in repl_exec; "
        "none by default. Models without a price are then refused",
    )
    subcall_cache: Literal["on", "off", "shared"] = Field(
        "on",
        description="reuse a sub-call's answer for the same model, prompt and parameters: 'on' (each principal "
        "has its own cache), 'shared' (one cache for every principal) or 'off'",
    )
    subcall_cache_max_mb: int = Field(512, ge=0, description="size of the sub-call cache; the oldest entries go first")
    subcall_cache_max_age_days: float = Field(
        30.0, ge=0, description="sub-call cache entries older than this are removed (0: no age limit)"
    )
    snapshot_max_mb: int = Field(
        4,
        ge=0,
        le=64,  # far below the largest message the sandbox channel carries (256 MB), either way
        description="plain-data REPL variables saved after each step of an rlm_query run, so that it can be "
        "resumed (0: none saved; at most 64)",
    )
    subcall_concurrency: int = Field(8, ge=1, le=256, description="sub-calls of one batch running at once")
    subcall_timeout_s: float = Field(120.0, gt=0, description="seconds one sub-call may take, retries included")
    sub_max_tokens: int = Field(4096, ge=1, description="output token limit of one sub-call")
    sub_context_tokens: int = Field(100_000, ge=1000, description="input budget of the sub-model, told to the root")
    root_max_tokens: int = Field(8192, ge=256, description="output token limit of one root turn")
    root_protocol: Literal["auto", "tools", "text"] = Field(
        "auto",
        description="how the root runs code: 'tools' (the python tool), 'text' (```repl blocks in its replies, "
        "for models without tool calling) or 'auto' (tools, unless the backend or model has none)",
    )
    run_timeout_s: float = Field(1800.0, gt=0, description="wall-clock limit of one rlm_query run")
    bedrock_max_attempts: int = Field(8, ge=1, description="attempts per Bedrock call (botocore's standard retry mode)")
    openai_base_url: str = Field(
        "https://api.openai.com/v1",
        description="base URL of the OpenAI-compatible API behind openai:<model> (Ollama: http://localhost:11434/v1)",
    )
    openai_api_key: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices(env_name("openai_api_key"), "OPENAI_API_KEY"),
        description="API key for openai:<model> (falls back to OPENAI_API_KEY; local servers need none)",
    )
    openai_max_attempts: int = Field(6, ge=1, description="attempts per OpenAI-compatible call (429, 5xx retried)")
    max_depth: int = Field(
        1, ge=1, le=5, description="recursion depth of rlm_query inside the REPL; 1 means the REPL has no rlm_query"
    )
    exec_timeout_s: float = Field(60.0, gt=0, description="compute seconds one code execution may take")
    kill_grace_s: float = Field(5.0, gt=0, description="seconds after the soft timeout before the sandbox is killed")
    worker_memory_mb: int = Field(2048, ge=64, description="working memory of a sandbox, on top of its corpus")
    worker_template: bool = Field(
        True,
        description="fork sandbox workers from a pre-started template process (a session starts in milliseconds); "
        "false starts each worker as a fresh interpreter",
    )
    max_corpus_mb: int = Field(4096, ge=1, description="largest corpus one session may load")
    max_output_chars: int = Field(20_000, ge=100, description="printed output kept per execution (head and tail)")
    max_code_chars: int = Field(200_000, ge=100, description="largest code one execution may submit")
    max_sessions: int = Field(
        32, ge=1, description="live sessions; at the limit the least recently used evictable one makes room"
    )
    session_idle_timeout_s: float = Field(3600.0, gt=0, description="idle seconds after which a session is closed")
    session_evict_idle_s: float = Field(
        300.0,
        ge=0,
        description="idle seconds before a session may be evicted to make room at RLM_MAX_SESSIONS (it comes back "
        "with its corpus on its next use); a session used more recently is never evicted",
    )
    max_request_mb: int = Field(64, ge=1, description="largest HTTP request body (inline content)")
    corpora_max_age_days: float = Field(
        7.0, ge=0, description="inline corpora unused for this many days are removed (0: no age limit)"
    )
    corpora_max_mb: int = Field(
        8192, ge=0, description="inline corpora kept, in MB; past it the least recently used go (0: no limit)"
    )
    derived_max_age_days: float = Field(
        7.0, ge=0, description="derived files (decompressed, extracted, downloaded) unused for this many days go"
    )
    derived_max_mb: int = Field(8192, ge=0, description="derived files kept, in MB (0: no limit)")
    trajectories_max_age_days: float = Field(
        90.0, ge=0, description="trajectories unchanged for this many days are removed (0: no age limit)"
    )
    trajectories_max_mb: int = Field(
        2048,
        ge=0,
        description="trajectories kept, in MB, each run's transcript and snapshot (runs/) counted with its "
        "trajectory (0: no limit)",
    )
    gc_interval_s: float = Field(
        3600.0, gt=0, description="seconds between two clean-ups of the data directory (also one at start-up)"
    )
    prices_file: FilePath | None = Field(None, description="JSON file of model prices that extends the built-in table")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="log level (logs go to stderr)")
    log_format: Literal["text", "json"] = Field(
        "text", description="'json' writes one JSON object per log line (with trace ids), for log pipelines"
    )
    store: str | None = Field(
        None,
        description="where corpora, trajectories and session records live: empty for the data directory, "
        "or s3://bucket/prefix to share them between replicas",
    )
    request_state_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="comma-separated secrets (32+ characters each; the first seals) shared by every replica, "
        "so a multi-round-trip request can finish on any of them",
    )
    auth_tokens: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="static bearer tokens for HTTP, as comma-separated NAME:TOKEN pairs: a request bearing TOKEN "
        "acts as the principal NAME (32+ characters of randomness per token)",
    )
    auth_tokens_file: FilePath | None = Field(
        None, description="a file of NAME:TOKEN lines, read at start-up, instead of (or besides) RLM_AUTH_TOKENS"
    )
    auth_issuer: str | None = Field(
        None,
        description="accept JWTs from this OAuth/OIDC issuer (its exact 'iss'), e.g. "
        "https://cognito-idp.<region>.amazonaws.com/<user pool id>",
    )
    auth_jwks_url: str | None = Field(
        None, description="the issuer's signing keys (default: jwks_uri of <issuer>/.well-known/openid-configuration)"
    )
    auth_audience: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="accepted 'aud' (or, for Cognito access tokens, 'client_id') values of JWTs, separated by ','; "
        "required with RLM_AUTH_ISSUER",
    )
    auth_principal_claim: str = Field(
        "sub", description="the JWT claim naming the principal that owns sessions, runs and trajectories"
    )
    auth_resource_url: str | None = Field(
        None,
        description="this server's public MCP URL (https://host/mcp), published as OAuth protected resource "
        "metadata (RFC 9728) so that clients find the issuer",
    )
    allow_unauthenticated: bool = Field(
        False,
        description="serve HTTP on a non-loopback address without authentication, every client sharing every "
        "session (only behind something that authenticates, such as AgentCore with IAM)",
    )
    traces: Literal["off", "otlp", "console"] = Field(
        "off",
        description="OpenTelemetry traces: 'otlp' exports to OTEL_EXPORTER_OTLP_* (needs the otel extra), "
        "'console' prints spans to stderr; 'off' leaves any tracer set up by the host",
    )
    aws_region: str | None = Field(
        None,
        validation_alias=AliasChoices("aws_region", env_name("aws_region")),
        description="region used when boto3's own chain finds none",
    )

    @field_validator("allowed_roots", mode="before")
    @classmethod
    def _split_roots(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part for part in value.split(os.pathsep) if part.strip()]
        return value

    @field_validator("allowed_roots")
    @classmethod
    def _resolve_roots(cls, value: list[Path], info: ValidationInfo) -> list[Path]:
        roots = [Path(os.path.expanduser(p)).resolve() for p in value]
        broad = [str(root) for root in roots if too_broad(root)]
        if broad and not info.data.get("allow_broad_roots"):
            raise ValueError(
                f"{', '.join(broad)} would let load_context read every file the server's user can (~/.ssh, ~/.aws, "
                "...): name the folders you mean, or set RLM_ALLOW_BROAD_ROOTS=true (--allow-broad-roots true) "
                "if that is really what you want"
            )
        return roots

    @field_validator(
        "allowed_s3", "allowed_models", "request_state_keys", "auth_tokens", "auth_audience", mode="before"
    )
    @classmethod
    def _split_commas(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("allowed_s3")
    @classmethod
    def _check_s3(cls, value: list[str]) -> list[str]:
        for entry in value:
            if entry != "*" and not re.match(r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$", entry):
                raise ValueError(f"{entry!r} is not an s3://bucket or s3://bucket/prefix/ location (or '*')")
        return value

    @field_validator("store")
    @classmethod
    def _check_store(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip()
        if not value.startswith("s3://") or not value[5:].split("/", 1)[0]:
            raise ValueError("give s3://bucket/prefix, or leave it empty to keep everything in the data directory")
        return value

    @field_validator("request_state_keys")
    @classmethod
    def _check_keys(cls, value: list[SecretStr]) -> list[SecretStr]:
        for key in value:
            if len(key.get_secret_value().encode()) < 32:
                raise ValueError(
                    "each key needs at least 32 characters of secret randomness; make one with "
                    "python3 -c 'import secrets; print(secrets.token_hex(32))'"
                )
        return value

    @field_validator("auth_tokens")
    @classmethod
    def _check_tokens(cls, value: list[SecretStr]) -> list[SecretStr]:
        parse_token_entries([entry.get_secret_value() for entry in value], "RLM_AUTH_TOKENS")
        return value

    @field_validator("auth_issuer", "auth_jwks_url", "auth_resource_url")
    @classmethod
    def _check_auth_urls(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip()
        parsed = urlsplit(value)
        loopback = parsed.hostname in ("localhost", "127.0.0.1", "::1")
        if not parsed.hostname or not (parsed.scheme == "https" or (parsed.scheme == "http" and loopback)):
            raise ValueError(f"{value!r} must be an https:// URL (http:// only on loopback)")
        return value

    @model_validator(mode="after")
    def _check_auth(self) -> Settings:
        if self.auth_issuer and not self.auth_audience:
            raise ValueError(
                "auth_issuer (RLM_AUTH_ISSUER) needs auth_audience (RLM_AUTH_AUDIENCE): the 'aud' or client_id your "
                "tokens carry, or any token the issuer signs for any application would be accepted"
            )
        if (self.auth_jwks_url or self.auth_resource_url) and not self.auth_issuer:
            raise ValueError("auth_jwks_url and auth_resource_url (RLM_AUTH_*) are for JWTs: set RLM_AUTH_ISSUER too")
        return self

    @field_validator("data_dir")
    @classmethod
    def _expand_data_dir(cls, value: Path) -> Path:
        return Path(os.path.expanduser(value)).resolve()


def setting_for_env(variable: str) -> str | None:
    """The setting an environment variable sets, or None when it is not one of ours."""
    for name in Settings.model_fields:
        if env_name(name) == variable:
            return name
    return None
