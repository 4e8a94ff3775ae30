"""The MCP client's own model, through sampling (``sampling/createMessage``).

The model setting ``sampling`` (or ``sampling:<hint>``, a model-name hint the
client may honour) sends sub-calls, or the root's turns, to whatever model the
connected client offers. That route exists only while a tool call of that
client is being served, so the client is found per call: the MCP layer puts a
:class:`Sampler` for the current request in :data:`current_sampler`, and
everything the call starts (the loop, the sub-call batches) inherits it.
How a sampler reaches the client depends on the protocol version; that part
lives in :mod:`rlm_mcp.server.sampling_rounds`.

Sampling results carry no token counts, so usage is estimated at four
characters per token; costs stay unknown (``null``).
"""

from __future__ import annotations

import contextvars
from typing import Any, Protocol

from mcp_types import (
    CreateMessageRequestParams,
    CreateMessageResult,
    CreateMessageResultWithTools,
    ModelHint,
    ModelPreferences,
    SamplingMessage,
    TextContent,
    Tool,
    ToolChoice,
    ToolResultContent,
    ToolUseContent,
)

from rlm_mcp.errors import ModelError, ModelErrorKind
from rlm_mcp.models.base import CHARS_PER_TOKEN, Completion, Message, TextBlock, ToolCall, ToolResult, ToolSpec, Usage

PREFIX = "sampling"
_STOP = {"endTurn": "end_turn", "toolUse": "tool_use", "maxTokens": "max_tokens", "stopSequence": "end_turn"}


class Sampler(Protocol):
    """Reaches the client of the current tool call."""

    supports_tools: bool
    """The client declared ``sampling.tools``: it can run the root's tool-using turns."""

    async def sample(self, params: CreateMessageRequestParams) -> CreateMessageResult | CreateMessageResultWithTools:
        """Ask the client's model; raise :class:`ModelError` if the client refuses or cannot be reached."""
        ...


current_sampler: contextvars.ContextVar[Sampler | None] = contextvars.ContextVar("rlm_current_sampler", default=None)
NO_SAMPLER = (
    "the model 'sampling' asks the MCP client's own model, which is only reachable while one of its tool calls "
    "runs, and only if the client declared the sampling capability. This call has no such client (VS Code "
    "supports sampling; Claude Desktop, Claude Code and Cursor do not document it). Choose a bedrock: or "
    "openai: model instead"
)


def hint_of(model: str) -> str | None:
    _, _, hint = model.partition(":")
    return hint or None


class SamplingClient:
    """A :class:`~rlm_mcp.models.base.ModelClient` that samples the connected client's model."""

    def _sampler(self) -> Sampler:
        sampler = current_sampler.get()
        if sampler is None:
            raise ModelError(NO_SAMPLER, kind=ModelErrorKind.CONFIG)
        return sampler

    async def check(self) -> None:
        self._sampler()

    def tool_support(self, model: str) -> bool | None:
        sampler = current_sampler.get()
        return None if sampler is None else sampler.supports_tools

    async def complete(self, model: str, prompt: str, *, max_tokens: int) -> Completion:
        if not prompt.strip():
            raise ModelError("the prompt is empty", kind=ModelErrorKind.VALIDATION)
        params = CreateMessageRequestParams(
            messages=[SamplingMessage(role="user", content=TextContent(type="text", text=prompt))],
            max_tokens=max_tokens,
            model_preferences=_preferences(model),
        )
        result = await self._sampler().sample(params)
        return _completion(result, model, len(prompt))

    async def chat(
        self,
        model: str,
        *,
        system: str,
        messages: list[Message],
        tools: list[ToolSpec],
        max_tokens: int,
    ) -> Completion:
        sampler = self._sampler()
        if tools and not sampler.supports_tools:
            raise ModelError(
                "the client supports sampling but not with tools (the sampling.tools capability), so its model "
                "cannot be a root that calls the python tool: set RLM_ROOT_PROTOCOL to auto or text (the root "
                "then writes code in ```repl blocks), or use a bedrock: or openai: root",
                kind=ModelErrorKind.TOOLS_UNSUPPORTED,
            )
        params = CreateMessageRequestParams(
            messages=[to_sampling(m) for m in messages],
            system_prompt=system,
            max_tokens=max_tokens,
            model_preferences=_preferences(model),
            tools=[Tool(name=t.name, description=t.description, input_schema=t.input_schema) for t in tools] or None,
            tool_choice=ToolChoice(mode="auto") if tools else None,
        )
        result = await sampler.sample(params)
        sent = len(system) + sum(len(_message_text(m)) for m in messages)
        return _completion(result, model, sent)


def _preferences(model: str) -> ModelPreferences | None:
    hint = hint_of(model)
    return ModelPreferences(hints=[ModelHint(name=hint)]) if hint else None


def to_sampling(message: Message) -> SamplingMessage:
    blocks: list[Any] = []
    for block in message.content:
        if isinstance(block, TextBlock):
            blocks.append(TextContent(type="text", text=block.text))
        elif isinstance(block, ToolCall):
            tool_input = block.input if isinstance(block.input, dict) else {}
            blocks.append(ToolUseContent(type="tool_use", id=block.id, name=block.name, input=tool_input))
        elif isinstance(block, ToolResult):
            blocks.append(
                ToolResultContent(
                    type="tool_result",
                    tool_use_id=block.tool_call_id,
                    content=[TextContent(type="text", text=block.text or "(no output)")],
                    is_error=block.is_error or None,
                )
            )
    return SamplingMessage(role=message.role, content=blocks[0] if len(blocks) == 1 else blocks)


def _message_text(message: Message) -> str:
    parts = []
    for block in message.content:
        if isinstance(block, TextBlock | ToolResult):
            parts.append(block.text)
        elif isinstance(block, ToolCall):
            parts.append(str(block.input))
    return "".join(parts)


def _completion(result: CreateMessageResult | CreateMessageResultWithTools, model: str, sent_chars: int) -> Completion:
    content = result.content if isinstance(result.content, list) else [result.content]
    texts: list[str] = []
    calls: list[ToolCall] = []
    for block in content:
        if isinstance(block, TextContent):
            texts.append(block.text)
        elif isinstance(block, ToolUseContent):
            calls.append(ToolCall(id=block.id, name=block.name, input=block.input))
    text = "\n".join(texts)
    stop = _STOP.get(result.stop_reason or "", result.stop_reason or ("tool_use" if calls else "end_turn"))
    received_chars = len(text) + len(str([c.input for c in calls]))
    usage = Usage(sent_chars // CHARS_PER_TOKEN, max(1, received_chars // CHARS_PER_TOKEN))
    return Completion(text=text, model=model, usage=usage, stop_reason=stop, tool_calls=calls)
