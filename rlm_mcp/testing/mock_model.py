"""An in-process model that plays a script: fast, deterministic unit tests of the loop, with no network.

The wire fakes (:mod:`rlm_mcp.testing.bedrock`, :mod:`rlm_mcp.testing.openai`) test
the real clients end to end; most behaviours of a run (what the root sees after
an error, when the run stops, what reaches the sub-model) do not depend on a wire
protocol, and a test of them should not pay for a server and an HTTP round trip.
:class:`MockModel` implements :class:`~rlm_mcp.models.base.ModelClient` directly:
``chat`` plays the scripted replies in order (the same :class:`~rlm_mcp.testing.base.Reply`
a wire fake plays, so a script reads the same either way), ``complete`` answers a
sub-call by a function of its prompt, and every request is kept in :attr:`MockModel.sent`
for the test to read. :class:`MockRouter` hands it to the sub-call broker in place
of :class:`~rlm_mcp.models.ModelRouter`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

from rlm_mcp.errors import ModelError, ModelErrorKind
from rlm_mcp.models import Completion, Message, ModelClient, TextBlock, ToolCall, ToolResult, ToolSpec, Usage
from rlm_mcp.testing.base import Reply

Scripted = Reply | str | ModelError
"""A turn of the script: a reply, plain text (a reply with only that text), or an error the call raises."""


@dataclass(frozen=True)
class Sent:
    """One request the model got, as the caller built it."""

    kind: Literal["chat", "complete"]
    model: str
    max_tokens: int
    prompt: str = ""
    """A sub-call's prompt (``complete``)."""
    system: str = ""
    messages: tuple[Message, ...] = ()
    tools: tuple[str, ...] = ()
    """The names of the tools offered (``chat``)."""

    @property
    def last_user_text(self) -> str:
        """What the caller said last: the prompt, or the text and tool results of the last user message."""
        if self.kind == "complete":
            return self.prompt
        for message in reversed(self.messages):
            if message.role == "user":
                return "\n".join(_block_text(b) for b in message.content)
        return ""


def _block_text(block: TextBlock | ToolCall | ToolResult) -> str:
    if isinstance(block, TextBlock):
        return block.text
    if isinstance(block, ToolResult):
        return block.text
    return str(block.input)


def upper(prompt: str) -> str:
    """The default sub-call answer: the prompt, upper-cased (as the wire fakes' ``echo``)."""
    return prompt.upper()


class MockModel:
    """A :class:`~rlm_mcp.models.base.ModelClient` that plays ``script`` to ``chat`` and answers ``complete`` with
    ``answer(prompt)``; past the end of the script a chat raises :class:`ModelError` (the run then fails, which a
    test sees), so a script that is too short is never silently padded."""

    backend = "mock"
    """What telemetry labels its calls with (:func:`rlm_mcp.core.backends.backend_of`)."""

    def __init__(
        self,
        script: Iterable[Scripted] = (),
        *,
        answer: Callable[[str], Scripted] = upper,
        tools: bool | None = True,
    ):
        self.script: list[Scripted] = list(script)
        self.answer = answer
        self.tools = tools
        """False: a model without tool calling (a chat offered tools is refused, as a real backend refuses it)."""
        self.sent: list[Sent] = []
        self.turn = 0
        """Scripted replies played so far."""

    @property
    def chats(self) -> list[Sent]:
        return [s for s in self.sent if s.kind == "chat"]

    @property
    def prompts(self) -> list[str]:
        """The prompts of the sub-calls it answered, in the order they came."""
        return [s.prompt for s in self.sent if s.kind == "complete"]

    async def check(self) -> None:
        return None

    def tool_support(self, model: str) -> bool | None:
        return self.tools

    async def complete(self, model: str, prompt: str, *, max_tokens: int) -> Completion:
        self.sent.append(Sent("complete", model, max_tokens, prompt=prompt))
        return self._completion(model, self.answer(prompt), len(prompt))

    async def chat(
        self,
        model: str,
        *,
        system: str,
        messages: list[Message],
        tools: list[ToolSpec],
        max_tokens: int,
    ) -> Completion:
        names = tuple(t.name for t in tools)
        self.sent.append(Sent("chat", model, max_tokens, system=system, messages=tuple(messages), tools=names))
        if tools and self.tools is False:
            raise ModelError(f"{model} does not support tools", kind=ModelErrorKind.TOOLS_UNSUPPORTED)
        if self.turn >= len(self.script):
            raise ModelError(f"the mock model's script has {len(self.script)} replies and was asked for another")
        scripted = self.script[self.turn]
        self.turn += 1
        chars = len(system) + sum(len(_block_text(b)) for m in messages for b in m.content)
        return self._completion(model, scripted, chars)

    def _completion(self, model: str, scripted: Scripted, chars_in: int) -> Completion:
        if isinstance(scripted, ModelError):
            raise scripted
        reply = Reply(text=scripted) if isinstance(scripted, str) else scripted
        calls = [ToolCall(f"call_{len(self.sent)}_{i}", name, args) for i, (name, args) in enumerate(reply.tool_calls)]
        chars_out = len(reply.text) + sum(len(str(c.input)) for c in calls)
        usage = Usage(
            reply.input_tokens if reply.input_tokens is not None else chars_in // 4,
            reply.output_tokens if reply.output_tokens is not None else max(1, chars_out // 4),
        )
        stop = reply.stop_reason or ("tool_use" if calls else "end_turn")
        return Completion(
            text=reply.text, model=model, usage=usage, stop_reason=stop, tool_calls=calls, reasoning=reply.reasoning
        )


class MockRouter:
    """Model names mapped to in-process models: what the sub-call broker asks of a router, without a backend."""

    def __init__(self, models: dict[str, ModelClient]):
        self.models = models

    def client_for(self, model: str) -> tuple[ModelClient, str]:
        if model not in self.models:
            raise ModelError(
                f"no mock model is named {model!r} (there are {sorted(self.models)})", kind=ModelErrorKind.CONFIG
            )
        return self.models[model], model
