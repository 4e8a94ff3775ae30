"""Checking a model setting before anything is sent: its syntax, and whether it looks like a real model.

``install`` refuses a setting that cannot work (an unknown backend, ``gpt-4o``
without ``openai:``, a space in an id) and warns about one that only looks
odd (a Bedrock provider nobody ships, an id without its version suffix); the
server logs the same findings at start-up, and ``doctor`` prints them. Nothing
here calls a model: whether the model answers is ``doctor``'s network check.

The shapes come from Bedrock's model ids (``provider.name-version``, e.g.
``anthropic.claude-haiku-4-5-20251001-v1:0``), its cross-region inference
profiles (the same with a geography first: ``us.``, ``eu.``, ``apac.``,
``global.``, ...) and ARNs (``arn:aws:bedrock:<region>:<account>:<kind>/<id>``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlparse

from rlm_mcp.config import Settings, describe_setting
from rlm_mcp.errors import ModelError
from rlm_mcp.models import parse_model

Level = Literal["ok", "warn", "fail"]
Role = Literal["root", "sub"]

GEOGRAPHIES = frozenset({"us", "eu", "apac", "us-gov", "global", "jp", "au", "ca", "de", "ap"})
"""First segments of cross-region inference profile ids."""
PROVIDERS = frozenset(
    {
        "amazon",
        "anthropic",
        "ai21",
        "cohere",
        "deepseek",
        "meta",
        "mistral",
        "openai",
        "qwen",
        "stability",
        "twelvelabs",
        "writer",
        "luma",
        "google",
        "moonshot",
        "minimax",
        "nvidia",
    }
)
"""Providers whose models Bedrock lists (a provider missing here only earns a warning)."""
_BEDROCK_ID = re.compile(r"^[a-z0-9][a-z0-9-]*(\.[a-z0-9][a-z0-9-]*)?\.[a-z0-9][a-z0-9._:-]*$")
_VERSIONED = re.compile(r"(-v\d+(:\d+)?|:\d+)(:\d+k)?$")
_ARN = re.compile(
    r"^arn:aws(-[a-z]+)*:bedrock:[a-z0-9-]+:(\d{12})?:"
    r"(foundation-model|inference-profile|application-inference-profile|provisioned-model|custom-model|"
    r"imported-model|custom-model-deployment|prompt-router|default-prompt-router)/\S+$"
)
_LOCAL_TAG = re.compile(r":(latest|[0-9.]*[a-z][a-z0-9._-]*)$")
_OPENAI_LOOKALIKE = re.compile(r"^(gpt-|o\d|chatgpt-|text-embedding)")
OPENAI_DEFAULT_URL = "https://api.openai.com/v1"


@dataclass(frozen=True)
class Finding:
    level: Level
    message: str


def check_model(model: str | None, role: Role, settings: Settings) -> list[Finding]:
    """What is right or wrong with the ``role`` model setting, most serious first."""
    setting = describe_setting(f"{role}_model")
    if model is None or not model.strip():
        if role == "sub":
            return [
                Finding(
                    "warn",
                    f"no sub-model ({setting}): the server works, but llm_query in the REPL fails until one is set",
                )
            ]
        return [
            Finding(
                "warn",
                f"no root model ({setting}): rlm_query cannot run; repl_exec works with your "
                "client's model as the root",
            )
        ]
    if model != model.strip() or any(c.isspace() for c in model):
        return [Finding("fail", f"{model!r} ({setting}) contains spaces: a model id has none")]
    try:
        backend, model_id = parse_model(model)
    except ModelError as exc:
        return [Finding("fail", f"{setting}: {exc}")]
    if backend == "bedrock":
        return _check_bedrock(model_id, setting)
    if backend == "openai":
        return _check_openai(model_id, setting, settings)
    return [Finding("ok", f"{model} ({setting}): answered by the MCP client's own model, if the client samples")]


def _check_bedrock(model_id: str, setting: str) -> list[Finding]:
    if model_id.startswith("arn:"):
        if _ARN.match(model_id):
            return [Finding("ok", f"{model_id} ({setting}): a Bedrock ARN")]
        return [
            Finding(
                "fail",
                f"{model_id!r} ({setting}) is not a Bedrock ARN "
                "(arn:aws:bedrock:<region>:<account>:inference-profile/<id>, ...)",
            )
        ]
    if "." not in model_id:
        hint = (
            f"openai:{model_id} for OpenAI's API"
            if _OPENAI_LOOKALIKE.match(model_id)
            else "a Bedrock id such as us.anthropic.claude-haiku-4-5-20251001-v1:0"
        )
        return [
            Finding(
                "fail",
                f"{model_id!r} ({setting}) names no backend and is not a Bedrock model id "
                f"(provider.model-version): write {hint}, or openai:<model> for an "
                "OpenAI-compatible server",
            )
        ]
    if not _BEDROCK_ID.match(model_id.lower()):
        return [
            Finding(
                "fail",
                f"{model_id!r} ({setting}) is not a Bedrock model id: those are lowercase "
                "letters, digits, '.', '-' and ':' (e.g. anthropic.claude-haiku-4-5-20251001-v1:0)",
            )
        ]
    findings: list[Finding] = []
    parts = model_id.split(".")
    provider = parts[1] if parts[0] in GEOGRAPHIES and len(parts) > 2 else parts[0]
    where = "aws bedrock list-foundation-models (or list-inference-profiles)"
    if model_id != model_id.lower():
        findings.append(Finding("warn", f"{model_id} ({setting}) has capitals; Bedrock ids are lowercase"))
    if provider not in PROVIDERS and _LOCAL_TAG.search(model_id):
        findings.append(
            Finding(
                "warn",
                f"{model_id} ({setting}) looks like a local model tag (Ollama's name:size), "
                f"not a Bedrock id: write openai:{model_id} with "
                f"{describe_setting('openai_base_url')} http://localhost:11434/v1",
            )
        )
        return findings
    if provider not in PROVIDERS:
        findings.append(
            Finding(
                "warn",
                f"{model_id} ({setting}): {provider!r} is not a provider Bedrock is known "
                f"to offer; check the id with {where}",
            )
        )
    if not _VERSIONED.search(model_id):
        findings.append(
            Finding(
                "warn",
                f"{model_id} ({setting}) has no version suffix (such as -v1:0), which "
                f"Bedrock ids end with; check it with {where}",
            )
        )
    return findings or [Finding("ok", f"{model_id} ({setting}): a Bedrock model id")]


def _check_openai(model_id: str, setting: str, settings: Settings) -> list[Finding]:
    base = settings.openai_base_url.rstrip("/")
    url_setting = describe_setting("openai_base_url")
    findings: list[Finding] = []
    if urlparse(base).scheme not in ("http", "https") or not urlparse(base).netloc:
        findings.append(Finding("fail", f"{url_setting} {base!r} is not an http(s) URL"))
    elif base == OPENAI_DEFAULT_URL:
        if ":" in model_id:
            findings.append(
                Finding(
                    "warn",
                    f"openai:{model_id} ({setting}) looks like a local model tag, but "
                    f"{url_setting} is OpenAI's API: for Ollama set it to "
                    "http://localhost:11434/v1",
                )
            )
        if settings.openai_api_key is None:
            findings.append(
                Finding(
                    "warn",
                    f"openai:{model_id} ({setting}) goes to OpenAI's API, which needs a key: "
                    f"set {describe_setting('openai_api_key')} or OPENAI_API_KEY",
                )
            )
    elif not urlparse(base).path.rstrip("/").endswith("/v1"):
        findings.append(
            Finding(
                "warn",
                f"{url_setting} {base} does not end in /v1, where OpenAI-compatible servers "
                "(Ollama, vLLM, LM Studio) serve their API",
            )
        )
    return findings or [Finding("ok", f"openai:{model_id} ({setting}) at {base}")]


def check_models(settings: Settings) -> list[Finding]:
    """Both model settings, root first."""
    return [*check_model(settings.root_model, "root", settings), *check_model(settings.sub_model, "sub", settings)]
