"""The model-client interface: what the RLM loop and the sub-call broker need from a model.

Conversations are kept in a small backend-neutral form (text, tool calls, tool
results) so that a root model on one backend and a sub-model on another can be
mixed; each backend translates to its own wire format.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

CHARS_PER_TOKEN = 4
"""Characters per token, where rlm-mcp must estimate tokens from text: a corpus's size in tokens, a sub-call's
input before it is sent, the usage of a backend that reports none (sampling). About right for English prose and
code with the usual tokenizers; it is an estimate, and every figure built on it says so."""


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.input_tokens + other.input_tokens, self.output_tokens + other.output_tokens)


@dataclass(frozen=True)
class TextBlock:
    text: str


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    input: Any
    """Usually a dict; the raw argument string when a backend's arguments were not a JSON object."""


@dataclass(frozen=True)
class ToolResult:
    tool_call_id: str
    text: str
    is_error: bool = False


Block = TextBlock | ToolCall | ToolResult


@dataclass(frozen=True)
class Message:
    role: Literal["user", "assistant"]
    content: list[Block]


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    input_schema: dict[str, Any]


@dataclass(frozen=True)
class Completion:
    """One model turn: its text, any tool calls, why it stopped, and what it cost."""

    text: str
    model: str
    usage: Usage = field(default_factory=Usage)
    latency_ms: float = 0.0
    stop_reason: str = "end_turn"
    tool_calls: list[ToolCall] = field(default_factory=list)
    retries: int = 0
    """Attempts the backend retried (throttling, 5xx) before this answer: a sign of overload."""
    reasoning: str = ""
    """Reasoning the backend returned apart from the text (Converse ``reasoningContent``, OpenAI-compatible
    ``reasoning_content``/``reasoning``): kept for the trajectory, never run and never part of an answer."""

    def as_message(self) -> Message:
        blocks: list[Block] = [TextBlock(self.text)] if self.text else []
        blocks.extend(self.tool_calls)
        return Message(role="assistant", content=blocks or [TextBlock("(no output)")])


_NO_TOOLS = re.compile(
    r"(does ?n[o']t|do ?n[o']t|not) support (the )?(tool|function)s?( use| calling| call)?\b"
    r"|(tool|function)s?( use| calling| calls?)? (is |are )?not supported"
    r"|enable-auto-tool-choice|tools param requires --jinja"
    r"|'tools' is not supported|unsupported parameter: 'tools'",
    re.IGNORECASE,
)


def refuses_tools(message: str) -> bool:
    """Whether an API error says the model or server has no tool calling (rather than a bad request).

    Wordings seen in the wild: Ollama "<model> does not support tools", Bedrock "This model doesn't
    support tool use.", vLLM "\"auto\" tool choice requires --enable-auto-tool-choice ...", llama.cpp
    "tools param requires --jinja flag", OpenAI "Unsupported parameter: 'tools' ...".
    """
    return _NO_TOOLS.search(message) is not None


class ModelClient(Protocol):
    """A backend that can answer one prompt and hold a tool-using conversation."""

    async def check(self) -> None:
        """Raise ``ModelError`` (kind "config") if the backend is not usable as configured."""
        ...

    def tool_support(self, model: str) -> bool | None:
        """False when ``model`` is known to have no tool calling here (the root then writes code in text)."""
        ...

    async def complete(self, model: str, prompt: str, *, max_tokens: int) -> Completion:
        """Answer a single user prompt (a sub-call)."""
        ...

    async def chat(
        self,
        model: str,
        *,
        system: str,
        messages: list[Message],
        tools: list[ToolSpec],
        max_tokens: int,
    ) -> Completion:
        """One turn of a conversation that may use ``tools`` (the root).

        Raises ``ModelError`` of kind ``ModelErrorKind.TOOLS_UNSUPPORTED`` when tools were given and
        the backend refused them for want of tool calling.
        """
        ...
