"""Model clients: the interface, and the backends that implement it."""

from __future__ import annotations

import logging
import re

from rlm_mcp.config import Settings
from rlm_mcp.errors import ModelError, ModelErrorKind
from rlm_mcp.models import sampling
from rlm_mcp.models.base import (
    CHARS_PER_TOKEN,
    Block,
    Completion,
    Message,
    ModelClient,
    TextBlock,
    ToolCall,
    ToolResult,
    ToolSpec,
    Usage,
)
from rlm_mcp.models.bedrock import BedrockClient
from rlm_mcp.models.openai import OpenAIClient
from rlm_mcp.models.sampling import SamplingClient

log = logging.getLogger(__name__)

__all__ = [
    "CHARS_PER_TOKEN",
    "BedrockClient",
    "Block",
    "Completion",
    "Message",
    "ModelClient",
    "ModelError",
    "ModelRouter",
    "OpenAIClient",
    "SamplingClient",
    "TextBlock",
    "ToolCall",
    "ToolResult",
    "ToolSpec",
    "Usage",
    "parse_model",
]


BACKENDS = ("bedrock", "openai", "sampling")
_SCHEME = re.compile(r"^(?P<scheme>[a-z][a-z0-9_-]*):")


def parse_model(model: str) -> tuple[str, str]:
    """A model setting as (backend, model id).

    ``bedrock:<id>``, ``openai:<model>`` and ``sampling`` (or ``sampling:<hint>``)
    name their backend; a bare id is a Bedrock model id, as it always was. Bedrock
    ids and ARNs contain colons too (``...-v1:0``, ``arn:aws:...``) but never start
    with a lowercase word and a colon other than ``arn:``, so they stay bare.
    """
    model = model.strip()
    if model == sampling.PREFIX or model.startswith(sampling.PREFIX + ":"):
        return "sampling", model
    match = _SCHEME.match(model)
    if match is None or match["scheme"] == "arn":
        backend, model_id = "bedrock", model
    elif match["scheme"] in BACKENDS:
        backend, model_id = match["scheme"], model[match.end() :]
    else:
        raise ModelError(
            f"unknown model backend {match['scheme']!r} in {model!r}: write bedrock:<model-id>, openai:<model> "
            "(any OpenAI-compatible server, with RLM_OPENAI_BASE_URL), or sampling (the MCP client's own model)",
            kind=ModelErrorKind.CONFIG,
        )
    if not model_id:
        raise ModelError(f"{model!r} names no model: write {backend}:<model>", kind=ModelErrorKind.CONFIG)
    return backend, model_id


def pool_size(settings: Settings) -> int:
    """HTTP connections (and threads) per backend client: several sessions share it, so never below the concurrency."""
    return max(10, 4 * settings.subcall_concurrency)


class ModelRouter:
    """Maps a model setting to the client that serves it: Bedrock, an OpenAI-compatible API, or sampling.

    Clients are built on first use, so a backend that is never named needs no
    configuration (no AWS credentials for an Ollama-only setup, and the reverse).
    """

    def __init__(self, settings: Settings):
        self._settings = settings
        self._bedrock: BedrockClient | None = None
        self._openai: OpenAIClient | None = None
        self._sampling = SamplingClient()

    def client_for(self, model: str) -> tuple[ModelClient, str]:
        backend, model_id = parse_model(model)
        s = self._settings
        pool = pool_size(s)
        if backend == "sampling":
            return self._sampling, model_id
        if backend == "openai":
            if self._openai is None:
                self._openai = OpenAIClient(
                    base_url=s.openai_base_url,
                    api_key=s.openai_api_key.get_secret_value() if s.openai_api_key else None,
                    max_attempts=s.openai_max_attempts,
                    read_timeout_s=s.subcall_timeout_s,
                    pool_size=pool,
                )
            return self._openai, model_id
        if self._bedrock is None:
            self._bedrock = BedrockClient(
                pool_size=pool,
                max_attempts=s.bedrock_max_attempts,
                read_timeout_s=s.subcall_timeout_s,
                fallback_region=s.aws_region,
            )
        return self._bedrock, model_id

    async def warm(self, models: list[str | None]) -> None:
        """Build the clients of ``models`` now, at server start, so the first sub-call does not pay for it (boto3
        reads the service's model and finds credentials: a few hundred milliseconds). A client that cannot be built
        says so when it is used, as before: nothing is raised here."""
        for model in models:
            if not model:
                continue
            try:
                client, _ = self.client_for(model)
                if not isinstance(client, SamplingClient):  # sampling has no client: only a request has a sampler
                    await client.check()
            except Exception as exc:  # reported on first use, with what to set
                log.debug("model client for %s not ready: %s", model, exc)

    async def aclose(self) -> None:
        if self._openai is not None:
            await self._openai.aclose()
