"""Any OpenAI-compatible chat-completions API: OpenAI itself, Ollama, vLLM, LM Studio, llama.cpp's server.

One endpoint (``POST {base}/chat/completions``) carries both sub-calls and the
root's tool-using conversation, so a small client over ``httpx2`` (the HTTP
library the mcp SDK already brings) covers every server that speaks it, with
no vendor SDK. Rate limits (429) and server faults (5xx, dropped connections)
are retried with exponential backoff, honouring ``Retry-After``; everything
else becomes a :class:`~rlm_mcp.errors.ModelError` that says what to fix.
"""

from __future__ import annotations

import json
import logging
import random
import re
import time
from dataclasses import replace
from typing import Any
from urllib.parse import urlparse

import anyio
import httpx2

from rlm_mcp.config import describe_setting
from rlm_mcp.errors import ModelError, ModelErrorKind
from rlm_mcp.models.base import (
    Completion,
    Message,
    TextBlock,
    ToolCall,
    ToolResult,
    ToolSpec,
    Usage,
    refuses_tools,
)
from rlm_mcp.models.endpoints import is_local

log = logging.getLogger(__name__)

_STOP = {"stop": "end_turn", "tool_calls": "tool_use", "length": "max_tokens", "content_filter": "content_filtered"}
_CONTEXT_HINTS = ("context length", "context_length", "maximum context", "too many tokens", "context window")
_RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
_MAX_BACKOFF_S = 20.0
_VERSIONED_PATH = re.compile(r"/v\d+[a-z0-9]*(/|$)")
"""``/v1``, ``/v1beta/openai``: where OpenAI-compatible servers put their API (Ollama, vLLM, LM Studio: /v1)."""


class OpenAIClient:
    """A :class:`~rlm_mcp.models.base.ModelClient` over an OpenAI-compatible chat-completions API."""

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str | None,
        max_attempts: int,
        read_timeout_s: float,
        pool_size: int,
    ):
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._max_attempts = max_attempts
        self._read_timeout_s = read_timeout_s
        self._pool_size = pool_size
        self._client: httpx2.AsyncClient | None = None
        self._completion_tokens: set[str] = set()
        """Models that refused ``max_tokens`` and want ``max_completion_tokens`` (OpenAI's reasoning models)."""
        self._no_tools: set[str] = set()
        """Models the server refused ``tools`` for (Ollama models without tool support, vLLM without a tool
        parser, llama.cpp without --jinja): their root writes code in text."""

    def _http(self) -> httpx2.AsyncClient:
        if self._client is None:
            headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
            self._client = httpx2.AsyncClient(
                headers={**headers, "User-Agent": "rlm-mcp"},
                timeout=httpx2.Timeout(self._read_timeout_s, connect=min(10.0, self._read_timeout_s)),
                limits=httpx2.Limits(max_connections=self._pool_size, max_keepalive_connections=self._pool_size),
            )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # -- ModelClient -------------------------------------------------------------------

    async def check(self) -> None:
        if not self._api_key and "api.openai.com" in self.base_url:
            raise ModelError(
                "no API key for the OpenAI API: set RLM_OPENAI_API_KEY (or OPENAI_API_KEY), or point "
                "RLM_OPENAI_BASE_URL at a local server such as Ollama (http://localhost:11434/v1)",
                kind=ModelErrorKind.CONFIG,
            )

    def tool_support(self, model: str) -> bool | None:
        return False if model in self._no_tools else None

    async def complete(self, model: str, prompt: str, *, max_tokens: int) -> Completion:
        if not prompt.strip():
            raise ModelError("the prompt is empty", kind=ModelErrorKind.VALIDATION)
        body = {"model": model, "messages": [{"role": "user", "content": prompt}]}
        return await self._chat(model, body, max_tokens)

    async def chat(
        self,
        model: str,
        *,
        system: str,
        messages: list[Message],
        tools: list[ToolSpec],
        max_tokens: int,
    ) -> Completion:
        wire: list[dict[str, Any]] = [{"role": "system", "content": system}]
        for message in messages:
            wire.extend(to_openai(message))
        body: dict[str, Any] = {"model": model, "messages": wire}
        if tools:
            body["tools"] = [
                {
                    "type": "function",
                    "function": {"name": t.name, "description": t.description, "parameters": t.input_schema},
                }
                for t in tools
            ]
            body["tool_choice"] = "auto"
        try:
            return await self._chat(model, body, max_tokens)
        except ModelError as exc:
            if exc.kind == ModelErrorKind.TOOLS_UNSUPPORTED:
                self._no_tools.add(model)
            raise

    # -- transport -----------------------------------------------------------------------

    async def _chat(self, model: str, body: dict[str, Any], max_tokens: int) -> Completion:
        for _ in range(2):  # a second try only to switch the token-limit parameter
            key = "max_completion_tokens" if model in self._completion_tokens else "max_tokens"
            started = time.perf_counter()
            try:
                response, retries = await self._post({**body, key: max_tokens}, model)
            except _WantsCompletionTokens:
                self._completion_tokens.add(model)
                continue
            completion = parse_completion(response, model, (time.perf_counter() - started) * 1000)
            return replace(completion, retries=retries)  # retries tell the sub-call limit to back off
        raise ModelError(f"{model} refused both max_tokens and max_completion_tokens", kind=ModelErrorKind.VALIDATION)

    async def _post(self, body: dict[str, Any], model: str) -> tuple[dict[str, Any], int]:
        """The JSON reply and how many retries it took."""
        url = f"{self.base_url}/chat/completions"
        for attempt in range(1, self._max_attempts + 1):
            last = attempt == self._max_attempts
            try:
                response = await self._http().post(url, json=body)
            except httpx2.TimeoutException as exc:
                if last:
                    raise ModelError(
                        f"{self.base_url} did not answer in time ({exc!r})", kind=ModelErrorKind.TIMEOUT
                    ) from exc
                await anyio.sleep(_backoff(attempt, None))
                continue
            except httpx2.TransportError as exc:
                refused = isinstance(exc, httpx2.ConnectError) and is_local(self.base_url)
                if last or refused:
                    raise ModelError(
                        _unreachable(self.base_url, exc, refused), kind=ModelErrorKind.UNAVAILABLE
                    ) from exc
                if attempt == 1:  # say at once what is going on; the retries can take a while
                    log.warning("cannot reach %s (%r); retrying (%d attempts)", self.base_url, exc, self._max_attempts)
                await anyio.sleep(_backoff(attempt, None))
                continue
            if response.status_code == 200:
                try:
                    return response.json(), attempt - 1
                except ValueError as exc:
                    raise ModelError(
                        f"{self.base_url} returned a body that is not JSON", kind=ModelErrorKind.MALFORMED
                    ) from exc
            if response.status_code in _RETRY_STATUS and not last:
                await anyio.sleep(_backoff(attempt, response.headers.get("retry-after")))
                continue
            raise _translate_error(response, model, self.base_url)
        raise AssertionError("unreachable")


class _WantsCompletionTokens(ModelError):
    def __init__(self) -> None:
        super().__init__("the model wants max_completion_tokens", kind=ModelErrorKind.VALIDATION)


def _backoff(attempt: int, retry_after: str | None) -> float:
    if retry_after is not None:
        try:
            return min(max(float(retry_after), 0.0), _MAX_BACKOFF_S)
        except ValueError:
            pass
    return min(0.25 * 2**attempt, _MAX_BACKOFF_S) * random.uniform(0.5, 1.0)


def _unreachable(base_url: str, exc: Exception, refused: bool) -> str:
    if refused:
        return (
            f"nothing is listening at {base_url} (connection refused): start the server (Ollama: `ollama serve`; "
            f"vLLM: `vllm serve MODEL`), or point {describe_setting('openai_base_url')} at the right port"
        )
    return (
        f"cannot reach {base_url} ({exc!r}): is the server running, and is {describe_setting('openai_base_url')} right?"
    )


def _missing_version(base_url: str) -> bool:
    """The base URL has no /v1 (or /v1beta...) path: the usual reason for a 404 on /chat/completions."""
    return _VERSIONED_PATH.search(urlparse(base_url).path or "/") is None


def _translate_error(response: httpx2.Response, model: str, base_url: str) -> ModelError:
    status = response.status_code
    try:
        error = response.json().get("error") or {}
    except (ValueError, AttributeError):
        error = {}
    if not isinstance(error, dict):  # some servers send {"error": "text"}
        error = {"message": str(error)}
    message = str(error.get("message") or response.text[:500] or f"HTTP {status}")
    code = str(error.get("code") or "")
    lowered = message.lower()
    if status == 400 and "max_completion_tokens" in lowered:
        return _WantsCompletionTokens()
    if status == 400 and refuses_tools(message):
        return ModelError(
            f"{model} at {base_url} has no tool calling: {message}", kind=ModelErrorKind.TOOLS_UNSUPPORTED
        )
    if status == 400 and (code == "context_length_exceeded" or any(h in lowered for h in _CONTEXT_HINTS)):
        return ModelError(f"the input is too long for {model}: {message}", kind=ModelErrorKind.CONTEXT_WINDOW)
    if status in (401, 403):
        return ModelError(
            f"{base_url} refused the credentials for {model} ({status}): {message}. Check RLM_OPENAI_API_KEY",
            kind=ModelErrorKind.AUTH,
        )
    if status == 404 and _missing_version(base_url):
        return ModelError(
            f"{base_url}/chat/completions does not exist (404: {message[:200]}). OpenAI-compatible servers serve "
            f"their API under /v1: set {describe_setting('openai_base_url')} to {base_url}/v1",
            kind=ModelErrorKind.CONFIG,
        )
    if status == 404:
        return ModelError(
            f"model {model} was not found at {base_url}: {message}. Check the model name after 'openai:' "
            "(for Ollama, `ollama list`) and RLM_OPENAI_BASE_URL",
            kind=ModelErrorKind.CONFIG,
        )
    if status == 429:
        return ModelError(
            f"{base_url} kept rate-limiting {model} after retries: {message}", kind=ModelErrorKind.THROTTLED
        )
    if status >= 500 or status in _RETRY_STATUS:
        return ModelError(f"{base_url} could not serve {model} ({status}): {message}", kind=ModelErrorKind.UNAVAILABLE)
    return ModelError(
        f"{base_url} rejected the request to {model} ({status}): {message}", kind=ModelErrorKind.VALIDATION
    )


def to_openai(message: Message) -> list[dict[str, Any]]:
    """One neutral message as chat-completions messages (tool results become ``tool`` messages)."""
    if message.role == "assistant":
        text = "\n".join(b.text for b in message.content if isinstance(b, TextBlock))
        calls = [b for b in message.content if isinstance(b, ToolCall)]
        wire: dict[str, Any] = {"role": "assistant", "content": text or None}
        if calls:
            wire["tool_calls"] = [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": json.dumps(c.input)}}
                for c in calls
            ]
        return [wire]
    out: list[dict[str, Any]] = [
        {"role": "tool", "tool_call_id": b.tool_call_id, "content": (("ERROR: " if b.is_error else "") + b.text)}
        for b in message.content
        if isinstance(b, ToolResult)
    ]
    text = "\n".join(b.text for b in message.content if isinstance(b, TextBlock))
    if text:
        out.append({"role": "user", "content": text})
    return out


def parse_completion(response: dict[str, Any], model: str, latency_ms: float) -> Completion:
    try:
        choice = response["choices"][0]
        message = choice.get("message") or {}
        calls = []
        for call in message.get("tool_calls") or []:
            function = call.get("function") or {}
            calls.append(
                ToolCall(
                    id=str(call.get("id") or f"call_{len(calls)}"),
                    name=str(function.get("name", "")),
                    input=_arguments(function.get("arguments")),
                )
            )
        usage = response.get("usage") or {}
        finish = str(choice.get("finish_reason") or ("tool_calls" if calls else "stop"))
        # DeepSeek, vLLM, LM Studio and llama.cpp send reasoning_content; Ollama and OpenRouter send reasoning
        reasoning = message.get("reasoning_content") or message.get("reasoning")
        return Completion(
            text=_content_text(message.get("content")),
            model=model,
            usage=Usage(int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)),
            latency_ms=latency_ms,
            stop_reason=_STOP.get(finish, finish),
            tool_calls=calls,
            reasoning=reasoning if isinstance(reasoning, str) else "",
        )
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
        raise ModelError(
            f"the chat-completions response cannot be read ({exc!r})", kind=ModelErrorKind.MALFORMED
        ) from exc


def _content_text(content: Any) -> str:
    if isinstance(content, list):
        return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text")
    return content if isinstance(content, str) else ""


def _arguments(raw: Any) -> Any:
    """Arguments arrive as a JSON string; local models often put raw newlines in it, which strict JSON refuses.

    Arguments that are not JSON (code written as it is, or JSON cut off at the output limit) stay the raw
    string, for the loop to read or to report (:func:`rlm_mcp.core.runs.replies.code_of`).
    """
    if isinstance(raw, dict):
        return raw
    if not isinstance(raw, str):
        return None
    try:
        return json.loads(raw, strict=False)
    except ValueError:
        return raw
