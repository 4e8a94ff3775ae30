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

from pydantic import AliasChoices, Field, FilePath, SecretStr, field_validator
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
    allowed_roots: Annotated[list[Path], NoDecode] = Field(
        default_factory=lambda: [Path.cwd()],
        description=f"directories load_context may read, separated by '{os.pathsep}' (default: the working directory)",
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
    trajectories_max_mb: int = Field(2048, ge=0, description="trajectories kept, in MB (0: no limit)")
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
    def _resolve_roots(cls, value: list[Path]) -> list[Path]:
        if not value:
            raise ValueError("at least one allowed root is needed")
        return [Path(os.path.expanduser(p)).resolve() for p in value]

    @field_validator("allowed_s3", "allowed_models", "request_state_keys", mode="before")
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


def settings_from_args(args: argparse.Namespace) -> Settings:
    overrides = {key.removeprefix("setting_"): value for key, value in vars(args).items() if key.startswith("setting_")}
    return Settings(**overrides)
