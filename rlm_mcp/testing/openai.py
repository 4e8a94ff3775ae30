"""A local HTTP server that speaks the OpenAI chat-completions API, for tests and offline demos.

Point ``RLM_OPENAI_BASE_URL`` at it and the real client code runs end to end
(JSON bodies, bearer auth, tool calls with JSON-string arguments, error bodies,
``Retry-After``) against the same scripted :class:`Reply`/:class:`Fault` values
the Converse fake plays. Ollama, vLLM and LM Studio serve this same
``POST /v1/chat/completions`` shape, so passing here means speaking to them.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from rlm_mcp.testing.base import (
    Fault,
    JsonHTTPFake,
    Reply,
    Responder,
    Response,
    code,
    echo,
    estimated_tokens,
    passthrough,
    scripted,
    throttled,
)

__all__ = ["ChatCompletionsFake", "ChatRequest", "Fault", "Reply", "code", "echo", "scripted", "throttled"]

_STOP = {"end_turn": "stop", "tool_use": "tool_calls", "max_tokens": "length", "content_filtered": "content_filter"}
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_exceeded",
}


@dataclass
class ChatRequest:
    model_id: str
    body: dict[str, Any]
    received_at: float
    authorization: str | None = None

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The conversation without the system message."""
        return [m for m in self.body.get("messages", []) if m.get("role") != "system"]

    @property
    def system(self) -> str:
        return "\n".join(str(m.get("content", "")) for m in self.body.get("messages", []) if m.get("role") == "system")

    @property
    def tools(self) -> list[dict[str, Any]]:
        return list(self.body.get("tools", []))

    @property
    def last_user_text(self) -> str:
        """Text of the trailing user and tool messages (what the model is answering)."""
        texts: list[str] = []
        for message in reversed(self.messages):
            if message.get("role") == "assistant":
                break
            texts.append(_text(message.get("content")))
        return "\n".join(reversed(texts))

    @property
    def tool_results(self) -> list[str]:
        trailing = []
        for message in reversed(self.messages):
            if message.get("role") != "tool":
                break
            trailing.append(_text(message.get("content")))
        return list(reversed(trailing))

    @property
    def all_text(self) -> str:
        return json.dumps(self.body, ensure_ascii=False)


def _text(content: Any) -> str:
    """Content is a string, or a list of parts of which the text ones count."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


class ChatCompletionsFake(JsonHTTPFake):
    """A threaded HTTP server answering ``POST {base}/chat/completions``.

    ``api_key`` makes it insist on ``Authorization: Bearer <key>``;
    ``completion_tokens_models`` lists models that refuse ``max_tokens`` and want
    ``max_completion_tokens``, as OpenAI's reasoning models do; ``reasoning_field``
    is where a reply's reasoning goes (``reasoning_content`` as DeepSeek, vLLM and
    LM Studio send it, ``reasoning`` as Ollama and OpenRouter do).
    """

    name = "chat-completions-fake"

    def __init__(
        self,
        respond: Responder = echo,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        api_key: str | None = None,
        completion_tokens_models: frozenset[str] = frozenset(),
        reasoning_field: str = "reasoning_content",
    ):
        super().__init__(respond, host, port)
        self.api_key = api_key
        self.completion_tokens_models = completion_tokens_models
        self.reasoning_field = reasoning_field

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def bad_request(self, status: int, message: str) -> Response:
        return status, {}, _error(status, message, None)

    def handle(self, path: str, headers: dict[str, str], body: dict[str, Any]) -> Response:
        if path.rstrip("/") != "/v1/chat/completions":
            return self.bad_request(404, f"unknown path {path}")
        auth = next((v for k, v in headers.items() if k.lower() == "authorization"), None)
        if self.api_key is not None and auth != f"Bearer {self.api_key}":
            return 401, {}, _error(401, "Incorrect API key provided.", "invalid_api_key")
        model = str(body.get("model", ""))
        if model in self.completion_tokens_models and "max_tokens" in body:
            refusal = "Unsupported parameter: 'max_tokens' is not supported with this model; use max_completion_tokens"
            return 400, {}, _error(400, refusal, "unsupported_parameter")
        request = ChatRequest(model_id=model, body=body, received_at=time.time(), authorization=auth)
        outcome = self._play(request)
        if (raw := passthrough(outcome)) is not None:
            return raw
        if isinstance(outcome, Fault):
            extra = {"Retry-After": "0"} if outcome.status == 429 else {}
            return outcome.status, extra, _error(outcome.status, outcome.message, outcome.code)
        message: dict[str, Any] = {"role": "assistant", "content": outcome.text or None}
        if outcome.reasoning:
            message[self.reasoning_field] = outcome.reasoning
        if outcome.tool_calls:
            message["tool_calls"] = [
                {
                    "id": self._next_tool_id("call_"),
                    "type": "function",
                    "function": {
                        "name": name,
                        "arguments": tool_input if isinstance(tool_input, str) else json.dumps(tool_input),
                    },
                }
                for name, tool_input in outcome.tool_calls
            ]
        stop = outcome.stop_reason or ("tool_use" if outcome.tool_calls else "end_turn")
        input_tokens, output_tokens = estimated_tokens(outcome, body, message)
        payload = {
            "id": f"chatcmpl-{len(self.requests)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": _STOP.get(stop, stop)}],
            "usage": {
                "prompt_tokens": input_tokens,
                "completion_tokens": output_tokens,
                "total_tokens": input_tokens + output_tokens,
            },
        }
        return 200, {}, payload


def _error(status: int, message: str, code: str | None) -> dict[str, Any]:
    kind = _ERROR_TYPES.get(status, "server_error")
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}
