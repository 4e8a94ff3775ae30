"""A local HTTP server that speaks the Bedrock Converse API, for tests, benchmarks and offline demos.

Point boto3 at it with ``AWS_ENDPOINT_URL_BEDROCK_RUNTIME`` and the real client
code path runs end to end (signing, serialisation, retries, error parsing)
against replies you script in Python: a function gets each request and returns
a :class:`Reply` (text and/or tool calls, optional latency) or a :class:`Fault`
(an HTTP error in Bedrock's shape, e.g. throttling).
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from rlm_mcp.testing.base import (
    Fault,
    Hangup,
    JsonHTTPFake,
    Malformed,
    Outcome,
    Reply,
    Responder,
    Response,
    Step,
    code,
    echo,
    estimated_tokens,
    passthrough,
    scripted,
    throttled,
)

__all__ = [
    "ConverseFake",
    "ConverseRequest",
    "Fault",
    "Hangup",
    "Malformed",
    "Outcome",
    "Reply",
    "Step",
    "code",
    "echo",
    "scripted",
    "throttled",
]

_PATH = re.compile(r"^/model/(?P<model>[^/]+)/converse$")
_ERROR_TYPES = {400: "ValidationException", 404: "UnknownOperationException", 500: "InternalServerException"}


@dataclass
class ConverseRequest:
    model_id: str
    body: dict[str, Any]
    received_at: float

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages", []))

    @property
    def system(self) -> str:
        return "\n".join(block.get("text", "") for block in self.body.get("system", []))

    @property
    def tools(self) -> list[dict[str, Any]]:
        return list(self.body.get("toolConfig", {}).get("tools", []))

    @property
    def last_user_text(self) -> str:
        """Text of the last user message, tool results included."""
        for message in reversed(self.messages):
            if message.get("role") == "user":
                return "\n".join(_block_text(b) for b in message.get("content", []))
        return ""

    @property
    def tool_results(self) -> list[str]:
        """Texts of the tool results in the last user message."""
        last = self.messages[-1] if self.messages else {}
        return [_block_text(b) for b in last.get("content", []) if "toolResult" in b]

    @property
    def all_text(self) -> str:
        """Everything the model was sent, as one string (to check what it saw)."""
        return json.dumps(self.body, ensure_ascii=False)


def _block_text(block: dict[str, Any]) -> str:
    if "text" in block:
        return str(block["text"])
    if "toolResult" in block:
        return "\n".join(str(c.get("text", "")) for c in block["toolResult"].get("content", []))
    if "toolUse" in block:
        return json.dumps(block["toolUse"].get("input"))
    return ""


class ConverseFake(JsonHTTPFake):
    """A threaded HTTP server answering ``POST /model/{id}/converse``.

    ``requests`` records every request (thread-safe); ``max_in_flight`` is the
    highest number of requests served at the same moment, to observe concurrency.
    """

    name = "converse-fake"

    def __init__(self, respond: Responder = echo, host: str = "127.0.0.1", port: int = 0):
        super().__init__(respond, host, port)

    def bad_request(self, status: int, message: str) -> Response:
        return status, {"x-amzn-ErrorType": _ERROR_TYPES.get(status, "InternalServerException")}, {"message": message}

    def handle(self, path: str, headers: dict[str, str], body: dict[str, Any]) -> Response:
        match = _PATH.match(path)
        if match is None:
            return self.bad_request(404, "not found")
        request = ConverseRequest(model_id=unquote(match["model"]), body=body, received_at=time.time())
        outcome = self._play(request)
        if (raw := passthrough(outcome)) is not None:
            return raw
        if isinstance(outcome, Fault):
            headers = {"x-amzn-ErrorType": f"{outcome.code}:http://internal.amazon.com/coral/com.amazon.bedrock/"}
            return outcome.status, headers, {"message": outcome.message}
        content: list[dict[str, Any]] = []
        if outcome.reasoning:
            content.append({"reasoningContent": {"reasoningText": {"text": outcome.reasoning, "signature": "fake"}}})
        if outcome.text:
            content.append({"text": outcome.text})
        for name, tool_input in outcome.tool_calls:
            tool_id = self._next_tool_id("tooluse_")
            content.append({"toolUse": {"toolUseId": tool_id, "name": name, "input": tool_input}})
        stop = outcome.stop_reason or ("tool_use" if outcome.tool_calls else "end_turn")
        input_tokens, output_tokens = estimated_tokens(outcome, body, content)
        payload = {
            "output": {"message": {"role": "assistant", "content": content}},
            "stopReason": stop,
            "usage": {
                "inputTokens": input_tokens,
                "outputTokens": output_tokens,
                "totalTokens": input_tokens + output_tokens,
            },
            "metrics": {"latencyMs": int(outcome.delay_s * 1000)},
        }
        return 200, {}, payload
