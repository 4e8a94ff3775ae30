"""Model clients: the interface, and the backends that implement it."""

from __future__ import annotations

from rlm_mcp.config import Settings
from rlm_mcp.errors import ModelError
from rlm_mcp.models.base import (
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

__all__ = [
    "BedrockClient",
    "Completion",
    "Message",
    "ModelClient",
    "ModelError",
    "ModelRouter",
    "TextBlock",
    "ToolCall",
    "ToolResult",
    "ToolSpec",
    "Usage",
]


def pool_size(settings: Settings) -> int:
    """HTTP connections (and threads) per backend client: several sessions share it, so never below the concurrency."""
    return max(10, 4 * settings.subcall_concurrency)


class ModelRouter:
    """Maps a model setting to the client that serves it (Bedrock for now)."""

    def __init__(self, settings: Settings):
        self._settings = settings
        self._bedrock: BedrockClient | None = None

    def client_for(self, model: str) -> tuple[ModelClient, str]:
        if self._bedrock is None:
            s = self._settings
            self._bedrock = BedrockClient(
                pool_size=pool_size(s),
                max_attempts=s.bedrock_max_attempts,
                read_timeout_s=s.subcall_timeout_s,
                fallback_region=s.aws_region,
            )
        return self._bedrock, model
