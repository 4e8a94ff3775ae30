"""Every knob of rlm-mcp: its default, its environment variable and its command-line flag.

This is the only module that reads the environment. A setting ``foo_bar`` is
read from ``RLM_FOO_BAR`` and can be overridden on the command line with
``--foo-bar``; ``rlm-mcp serve --help`` lists them all. AWS settings are left to
boto3's own chain (``AWS_PROFILE``, ``AWS_DEFAULT_REGION``,
``AWS_ENDPOINT_URL_BEDROCK_RUNTIME``, ...), with one addition: ``AWS_REGION``,
which the AWS runtimes set but botocore does not read, is used when boto3
finds no region of its own.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin
from urllib.parse import urlsplit

from pydantic import (
    AliasChoices,
    Field,
    FilePath,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


def _default_data_dir() -> Path:
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


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RLM_", extra="ignore", frozen=True, populate_by_name=True)

    root_model: str | None = Field(
        None,
        description="model of the root in rlm_query: a Bedrock model id, bedrock:<id>, openai:<model> or sampling",
    )
    sub_model: str | None = Field(
        None,
        description="model behind llm_query: a Bedrock model id, bedrock:<id>, openai:<model> or sampling",
    )
    data_dir: Path = Field(
        default_factory=_default_data_dir, description="where corpora, sessions and trajectories live"
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
        validation_alias=AliasChoices("RLM_OPENAI_API_KEY", "OPENAI_API_KEY"),
        description="API key for openai:<model> (falls back to OPENAI_API_KEY; local servers need none)",
    )
    openai_max_attempts: int = Field(6, ge=1, description="attempts per OpenAI-compatible call (429, 5xx retried)")
    max_depth: int = Field(
        1, ge=1, le=5, description="recursion depth of rlm_query inside the REPL; 1 means the REPL has no rlm_query"
    )
    exec_timeout_s: float = Field(60.0, gt=0, description="compute seconds one code execution may take")
    kill_grace_s: float = Field(5.0, gt=0, description="seconds after the soft timeout before the sandbox is killed")
    worker_memory_mb: int = Field(2048, ge=64, description="working memory of a sandbox, on top of its corpus")
    max_corpus_mb: int = Field(4096, ge=1, description="largest corpus one session may load")
    max_output_chars: int = Field(20_000, ge=100, description="printed output kept per execution (head and tail)")
    max_code_chars: int = Field(200_000, ge=100, description="largest code one execution may submit")
    max_sessions: int = Field(32, ge=1, description="live sessions; the oldest idle one is closed to make room")
    session_idle_timeout_s: float = Field(3600.0, gt=0, description="idle seconds after which a session is closed")
    max_request_mb: int = Field(64, ge=1, description="largest HTTP request body (inline content)")
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
        validation_alias=AliasChoices("aws_region", "AWS_REGION"),
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
        from rlm_mcp.auth.static import parse_token_entries  # the one parser, shared with RLM_AUTH_TOKENS_FILE

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


def add_setting_flags(parser: argparse.ArgumentParser) -> None:
    """One ``--flag`` per setting, with its environment variable in the help."""
    group = parser.add_argument_group("settings (each also read from its environment variable)")
    for name, field in Settings.model_fields.items():
        env = "AWS_REGION" if name == "aws_region" else f"RLM_{name.upper()}"
        annotation = field.annotation
        kind: Any = str
        choices = None
        for candidate in (annotation, *get_args(annotation)):
            if candidate in (int, float):
                kind = candidate
            if get_origin(candidate) is Literal:
                choices = get_args(candidate)
        group.add_argument(
            "--" + name.replace("_", "-"),
            dest=f"setting_{name}",
            metavar=None if choices else name.upper(),
            type=kind,
            choices=choices,
            default=argparse.SUPPRESS,
            help=f"{field.description} [{env}]",
        )


def describe_errors(exc: ValidationError) -> str:
    """A settings error as a person reads it: which setting (variable and flag), and what is wrong."""
    problems = []
    for err in exc.errors():
        message = str(err["msg"])
        if not err["loc"]:  # a rule that spans several settings names them itself
            problems.append(message)
            continue
        name = str(err["loc"][0])
        env = "AWS_REGION" if name == "aws_region" else f"RLM_{name.upper()}"
        problems.append(f"{name} ({env} or --{name.replace('_', '-')}): {message}")
    return "; ".join(problems)


def settings_from_args(args: argparse.Namespace) -> Settings:
    overrides = {key.removeprefix("setting_"): value for key, value in vars(args).items() if key.startswith("setting_")}
    return Settings(**overrides)
