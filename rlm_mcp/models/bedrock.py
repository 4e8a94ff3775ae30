"""Amazon Bedrock through the Converse API (boto3 ``bedrock-runtime``).

The client is built from boto3's default session, so ``AWS_PROFILE``,
``AWS_DEFAULT_REGION``, ``AWS_ENDPOINT_URL_BEDROCK_RUNTIME`` and the whole
credential chain work as they do for every AWS tool. Throttling and transient
faults are retried by botocore's standard retry mode; the connection pool is
sized to the concurrency so parallel sub-calls never queue for a socket.
boto3 is blocking, so each call runs in a worker thread.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import anyio
import anyio.to_thread
import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)

from rlm_mcp import aws
from rlm_mcp.errors import ModelError
from rlm_mcp.models.base import (
    TOOLS_UNSUPPORTED,
    Completion,
    Message,
    TextBlock,
    ToolCall,
    ToolResult,
    ToolSpec,
    Usage,
    refuses_tools,
)

_CONTEXT_HINTS = ("too long", "context length", "context window", "maximum context", "too many tokens", "max tokens")


class BedrockClient:
    """A :class:`~rlm_mcp.models.base.ModelClient` over the Bedrock Converse API."""

    def __init__(
        self,
        *,
        pool_size: int,
        max_attempts: int,
        read_timeout_s: float,
        fallback_region: str | None = None,
    ):
        self._pool_size = pool_size
        self._max_attempts = max_attempts
        self._read_timeout_s = read_timeout_s
        self._fallback_region = fallback_region
        self._client: Any = None
        self._client_lock = threading.Lock()
        self._limiter = anyio.CapacityLimiter(pool_size)
        self._no_tools: set[str] = set()
        """Models that refused ``toolConfig`` (e.g. DeepSeek-R1): their root writes code in text."""

    # -- client ----------------------------------------------------------------------

    def _build_client(self) -> Any:
        config = Config(
            # total_max_attempts counts the first try; botocore's max_attempts would count retries only
            retries={"mode": "standard", "total_max_attempts": self._max_attempts},
            max_pool_connections=self._pool_size,
            read_timeout=self._read_timeout_s,
            connect_timeout=min(10.0, self._read_timeout_s),
            user_agent_extra="rlm-mcp",
        )
        session = boto3.session.Session()
        try:
            client = aws.client(
                "bedrock-runtime", fallback_region=self._fallback_region, config=config, session=session
            )
        except ModelError as exc:
            raise ModelError(f"{exc}, in the region where your Bedrock models are enabled", kind="config") from None
        except BotoCoreError as exc:
            raise ModelError(f"could not create the Bedrock client: {exc}", kind="config") from exc
        if session.get_credentials() is None:
            raise ModelError(
                "no AWS credentials were found: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY, or run on a role (boto3's standard credential chain)",
                kind="config",
            )
        return client

    def _get_client(self) -> Any:
        with self._client_lock:
            if self._client is None:
                self._client = self._build_client()
            return self._client

    async def _converse(self, request: dict[str, Any]) -> tuple[dict[str, Any], float]:
        def call() -> tuple[dict[str, Any], float]:
            client = self._get_client()
            started = time.perf_counter()
            response = client.converse(**request)
            return response, (time.perf_counter() - started) * 1000

        try:
            return await anyio.to_thread.run_sync(call, limiter=self._limiter, abandon_on_cancel=True)
        except ClientError as exc:
            raise _translate_client_error(exc, request["modelId"]) from exc
        except NoCredentialsError as exc:
            raise ModelError("no AWS credentials were found: set AWS_PROFILE or AWS_ACCESS_KEY_ID", "config") from exc
        except (ReadTimeoutError, ConnectTimeoutError) as exc:
            raise ModelError(f"Bedrock did not answer in time ({exc})", kind="timeout") from exc
        except EndpointConnectionError as exc:
            raise ModelError(f"cannot reach Bedrock: {exc}", kind="unavailable") from exc
        except BotoCoreError as exc:
            raise ModelError(f"Bedrock call failed: {exc}", kind="error") from exc
        except ModelError:
            raise
        except Exception as exc:  # e.g. botocore's parser on a body that is not what Converse returns
            raise ModelError(
                f"Bedrock returned a response rlm-mcp cannot read ({type(exc).__name__}: {exc})", kind="malformed"
            ) from exc

    # -- ModelClient -------------------------------------------------------------------

    async def check(self) -> None:
        """Fail now, with a message that says what to set, if the client cannot be built."""
        await anyio.to_thread.run_sync(self._get_client, limiter=self._limiter)

    def tool_support(self, model: str) -> bool | None:
        return False if model in self._no_tools else None

    async def complete(self, model: str, prompt: str, *, max_tokens: int) -> Completion:
        if not prompt.strip():
            raise ModelError("the prompt is empty", kind="validation")
        request = {
            "modelId": model,
            "messages": [{"role": "user", "content": [{"text": prompt}]}],
            "inferenceConfig": {"maxTokens": max_tokens},
        }
        response, latency = await self._converse(request)
        return _parse_response(response, model, latency)

    async def chat(
        self,
        model: str,
        *,
        system: str,
        messages: list[Message],
        tools: list[ToolSpec],
        max_tokens: int,
    ) -> Completion:
        request: dict[str, Any] = {
            "modelId": model,
            "system": [{"text": system}],
            "messages": [_to_converse(m) for m in messages],
            "inferenceConfig": {"maxTokens": max_tokens},
        }
        if tools:
            request["toolConfig"] = {
                "tools": [
                    {
                        "toolSpec": {
                            "name": t.name,
                            "description": t.description,
                            "inputSchema": {"json": t.input_schema},
                        }
                    }
                    for t in tools
                ]
            }
        try:
            response, latency = await self._converse(request)
        except ModelError as exc:
            if exc.kind == TOOLS_UNSUPPORTED:
                self._no_tools.add(model)
            raise
        return _parse_response(response, model, latency)


def _to_converse(message: Message) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    for block in message.content:
        if isinstance(block, TextBlock):
            content.append({"text": block.text})
        elif isinstance(block, ToolCall):
            content.append({"toolUse": {"toolUseId": block.id, "name": block.name, "input": block.input}})
        elif isinstance(block, ToolResult):
            content.append(
                {
                    "toolResult": {
                        "toolUseId": block.tool_call_id,
                        "content": [{"text": block.text or "(no output)"}],
                        "status": "error" if block.is_error else "success",
                    }
                }
            )
    return {"role": message.role, "content": content}


def _parse_response(response: dict[str, Any], model: str, latency_ms: float) -> Completion:
    try:
        content = response["output"]["message"]["content"]
        texts: list[str] = []
        reasoning: list[str] = []
        calls: list[ToolCall] = []
        for block in content:
            if "text" in block:
                texts.append(str(block["text"]))
            elif "reasoningContent" in block:  # DeepSeek-R1, gpt-oss, Claude with thinking: never sent back
                reasoning.append(str((block["reasoningContent"].get("reasoningText") or {}).get("text", "")))
            elif "toolUse" in block:
                use = block["toolUse"]
                calls.append(ToolCall(id=str(use["toolUseId"]), name=str(use["name"]), input=use.get("input")))
        usage = response.get("usage") or {}
        metrics = response.get("metrics") or {}
        return Completion(
            text="\n".join(texts),
            model=model,
            usage=Usage(int(usage.get("inputTokens", 0)), int(usage.get("outputTokens", 0))),
            latency_ms=float(metrics.get("latencyMs", latency_ms)),
            stop_reason=str(response.get("stopReason", "end_turn")),
            tool_calls=calls,
            retries=int((response.get("ResponseMetadata") or {}).get("RetryAttempts", 0)),
            reasoning="\n".join(r for r in reasoning if r),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"Bedrock returned a response rlm-mcp cannot read ({exc!r})", kind="malformed") from exc


def _translate_client_error(exc: ClientError, model: str) -> ModelError:
    error = exc.response.get("Error", {})
    code = str(error.get("Code", "Error"))
    message = str(error.get("Message", exc))
    if code == "ThrottlingException":
        return ModelError(f"Bedrock kept throttling {model} after retries: {message}", kind="throttled")
    if code == "ValidationException":
        if refuses_tools(message):
            return ModelError(f"{model} has no tool calling on Bedrock: {message}", kind=TOOLS_UNSUPPORTED)
        if any(hint in message.lower() for hint in _CONTEXT_HINTS):
            return ModelError(f"the input is too long for {model}: {message}", kind="context_window")
        return ModelError(f"Bedrock rejected the request to {model}: {message}", kind="validation")
    if code == "AccessDeniedException":
        return ModelError(
            f"access denied to {model}: {message}. Check that the model is enabled in this region and that "
            "the caller may call bedrock:InvokeModel on it",
            kind="auth",
        )
    if code == "ResourceNotFoundException":
        return ModelError(f"model {model} was not found: {message}. Check RLM_ROOT_MODEL / RLM_SUB_MODEL", "config")
    if code in (
        "ServiceUnavailableException",
        "InternalServerException",
        "ModelNotReadyException",
        "ModelTimeoutException",
        "ModelErrorException",
    ):
        return ModelError(f"Bedrock could not serve {model} ({code}): {message}", kind="unavailable")
    return ModelError(f"Bedrock error {code} from {model}: {message}", kind="error")
