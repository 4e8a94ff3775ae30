"""The MCP client's own model, for tests: a ``sampling_callback`` that plays scripted replies.

Give an instance to ``mcp.Client(..., sampling_callback=fake)`` and the server's
``sampling/createMessage`` requests (or the 2026-07-28 protocol's input rounds)
are answered with the same :class:`Reply` values the Converse and
chat-completions fakes play, turned into MCP's ``CreateMessageResult`` content
(text, ``tool_use`` blocks, a stop reason). Sampling has no token counts and no
reasoning blocks, so ``Reply.reasoning`` travels as a ``<think>`` block in the
text, as a client relaying a reasoning model's raw output would send it; tool
inputs must be JSON objects there (MCP's ``ToolUseContent.input``).

Models are told apart by the hint of their setting: ``sampling:root`` asks with
the hint ``root``, which is the request's ``model_id``.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any

import anyio
from mcp_types import (
    CreateMessageRequestParams,
    CreateMessageResult,
    CreateMessageResultWithTools,
    ErrorData,
    TextContent,
    ToolUseContent,
)

from rlm_mcp.testing.base import Fault, Outcome, Reply, Responder, echo

__all__ = ["SamplingFake", "SamplingRequest"]

_STOP = {"end_turn": "endTurn", "tool_use": "toolUse", "max_tokens": "maxTokens", "stop_sequence": "stopSequence"}


@dataclass
class SamplingRequest:
    model_id: str
    params: CreateMessageRequestParams

    @property
    def messages(self) -> list[dict[str, Any]]:
        return [m.model_dump(mode="json", by_alias=True, exclude_none=True) for m in self.params.messages]

    @property
    def system(self) -> str:
        return self.params.system_prompt or ""

    @property
    def tools(self) -> list[dict[str, Any]]:
        return [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in self.params.tools or []]

    @property
    def last_user_text(self) -> str:
        """Text of the last user message, tool results included."""
        for message in reversed(self.params.messages):
            if message.role == "user":
                return "\n".join(_text(block) for block in message.content_as_list)
        return ""

    @property
    def all_text(self) -> str:
        """Everything the model was sent, as one string (to check what it saw)."""
        return json.dumps({"system": self.system, "messages": self.messages}, ensure_ascii=False)

    @property
    def tool_results(self) -> list[str]:
        last = self.params.messages[-1] if self.params.messages else None
        if last is None:
            return []
        return [_text(block) for block in last.content_as_list if getattr(block, "type", "") == "tool_result"]


def _text(block: Any) -> str:
    if isinstance(block, TextContent):
        return block.text
    if getattr(block, "type", "") == "tool_result":
        return "\n".join(c.text for c in block.content if isinstance(c, TextContent))
    return ""


class SamplingFake:
    """A ``sampling_callback`` answering with what ``respond`` returns; ``requests`` records every request."""

    def __init__(self, respond: Responder = echo):
        self.respond = respond
        self.requests: list[SamplingRequest] = []
        self._lock = threading.Lock()
        self._ids = 0

    def requests_for(self, model_id: str) -> list[SamplingRequest]:
        with self._lock:
            return [r for r in self.requests if r.model_id == model_id]

    async def __call__(
        self, context: Any, params: CreateMessageRequestParams
    ) -> CreateMessageResult | CreateMessageResultWithTools | ErrorData:
        hints = params.model_preferences.hints if params.model_preferences and params.model_preferences.hints else []
        request = SamplingRequest(model_id=(hints[0].name if hints else None) or "sampling", params=params)
        with self._lock:
            self.requests.append(request)
        outcome: Outcome = self.respond(request)
        if outcome.delay_s:
            await anyio.sleep(outcome.delay_s)
        if isinstance(outcome, Fault):
            return ErrorData(code=-32603, message=outcome.message)
        if not isinstance(outcome, Reply):
            raise TypeError(f"sampling cannot carry {type(outcome).__name__}")
        return self._result(outcome, with_tools=bool(params.tools))

    def _result(self, reply: Reply, *, with_tools: bool) -> CreateMessageResult | CreateMessageResultWithTools:
        text = f"<think>\n{reply.reasoning}\n</think>\n{reply.text}" if reply.reasoning else reply.text
        blocks: list[Any] = [TextContent(type="text", text=text)] if text else []
        for name, tool_input in reply.tool_calls:
            if not isinstance(tool_input, dict):
                raise TypeError("sampling tool inputs are JSON objects (MCP's ToolUseContent.input)")
            with self._lock:
                self._ids += 1
                tool_id = f"use_{self._ids:06d}"
            blocks.append(ToolUseContent(type="tool_use", id=tool_id, name=name, input=tool_input))
        stop = reply.stop_reason or ("tool_use" if reply.tool_calls else "end_turn")
        common: dict[str, Any] = {"role": "assistant", "model": "client-model", "stop_reason": _STOP.get(stop, stop)}
        if with_tools:
            return CreateMessageResultWithTools(content=blocks or [TextContent(type="text", text="")], **common)
        return CreateMessageResult(content=blocks[0] if blocks else TextContent(type="text", text=""), **common)
