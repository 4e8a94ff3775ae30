"""Which backend serves a model client, by the names model settings use (``bedrock``, ``openai``, ``sampling``).

Telemetry labels each model call with the backend that served it and takes that
as a plain string; this is where core finds it, from the client it holds.
"""

from __future__ import annotations

from rlm_mcp.models import BedrockClient, ModelClient, OpenAIClient, SamplingClient

_BACKENDS: tuple[tuple[type, str], ...] = (
    (BedrockClient, "bedrock"),
    (OpenAIClient, "openai"),
    (SamplingClient, "sampling"),
)


def backend_of(client: ModelClient) -> str:
    """The backend's name; another client (a test's in-process model) may say its own with a ``backend`` attribute."""
    for cls, name in _BACKENDS:
        if isinstance(client, cls):
            return name
    named = getattr(client, "backend", None)
    return named if isinstance(named, str) else type(client).__name__
