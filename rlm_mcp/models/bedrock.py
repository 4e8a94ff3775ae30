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
from dataclasses import dataclass
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
        self._site = CallSite()
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
            raise ModelError(
                f"{exc}, in the region where your Bedrock models are enabled", kind=ModelErrorKind.CONFIG
            ) from None
        except BotoCoreError as exc:
            raise ModelError(f"could not create the Bedrock client: {exc}", kind=ModelErrorKind.CONFIG) from exc
        credentials = session.get_credentials()
        if credentials is None:
            raise ModelError(
                "no AWS credentials were found: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY, or run on a role (boto3's standard credential chain)",
                kind=ModelErrorKind.CONFIG,
            )
        self._site = CallSite(region=client.meta.region_name, credentials=getattr(credentials, "method", None))
        if is_local(client.meta.endpoint_url):
            # Nothing listening on this machine will not be there in a second either: say so at once
            # instead of letting botocore retry a refused connection for many seconds.
            client.meta.events.register_first("needs-retry.bedrock-runtime", _no_retry_when_refused)
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
            raise _translate_client_error(exc, request["modelId"], self._site) from exc
        except NoCredentialsError as exc:
            raise ModelError(
                "no AWS credentials were found: set AWS_PROFILE or AWS_ACCESS_KEY_ID", ModelErrorKind.CONFIG
            ) from exc
        except (ReadTimeoutError, ConnectTimeoutError) as exc:
            raise ModelError(f"Bedrock did not answer in time ({exc})", kind=ModelErrorKind.TIMEOUT) from exc
        except EndpointConnectionError as exc:
            raise ModelError(_unreachable(exc), kind=ModelErrorKind.UNAVAILABLE) from exc
        except BotoCoreError as exc:
            raise ModelError(f"Bedrock call failed: {exc}", kind=ModelErrorKind.ERROR) from exc
        except ModelError:
            raise
        except Exception as exc:  # e.g. botocore's parser on a body that is not what Converse returns
            raise ModelError(
                f"Bedrock returned a response rlm-mcp cannot read ({type(exc).__name__}: {exc})",
                kind=ModelErrorKind.MALFORMED,
            ) from exc

    # -- ModelClient -------------------------------------------------------------------

    async def check(self) -> None:
        """Fail now, with a message that says what to set, if the client cannot be built."""
        await anyio.to_thread.run_sync(self._get_client, limiter=self._limiter)

    def tool_support(self, model: str) -> bool | None:
        return False if model in self._no_tools else None

    async def complete(self, model: str, prompt: str, *, max_tokens: int) -> Completion:
        if not prompt.strip():
            raise ModelError("the prompt is empty", kind=ModelErrorKind.VALIDATION)
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
            if exc.kind == ModelErrorKind.TOOLS_UNSUPPORTED:
                self._no_tools.add(model)
            raise
        return _parse_response(response, model, latency)


def _no_retry_when_refused(caught_exception: BaseException | None = None, **_: Any) -> None:
    """botocore's ``needs-retry`` hook: a refused connection to a local endpoint ends the call at once."""
    if isinstance(caught_exception, EndpointConnectionError):
        raise caught_exception


def _unreachable(exc: EndpointConnectionError) -> str:
    url = str(exc.kwargs.get("endpoint_url", "")) if hasattr(exc, "kwargs") else ""
    if is_local(url):
        return (
            f"nothing answers at {url} (connection refused): start the server there, or fix or unset "
            "AWS_ENDPOINT_URL_BEDROCK_RUNTIME"
        )
    where = url or "its endpoint"
    return f"cannot reach Bedrock at {where} ({exc}): check the network, a proxy (HTTPS_PROXY) and the region"


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
        raise ModelError(
            f"Bedrock returned a response rlm-mcp cannot read ({exc!r})", kind=ModelErrorKind.MALFORMED
        ) from exc


_BAD_CREDENTIALS = {
    "UnrecognizedClientException": "AWS does not know this access key id",
    "InvalidClientTokenId": "AWS does not know this access key id",
    "InvalidSignatureException": "the secret access key does not match the access key id",
    "SignatureDoesNotMatch": "the secret access key does not match the access key id",
    "ExpiredTokenException": "the temporary credentials have expired",
    "ExpiredToken": "the temporary credentials have expired",
    "IncompleteSignature": "the request signature is incomplete",
    "MissingAuthenticationTokenException": "the request carried no credentials",
}
_UNKNOWN_MODEL_HINTS = ("model identifier is invalid", "model id is invalid", "model not found", "does not exist")
_NEEDS_PROFILE_HINTS = ("on-demand throughput", "inference profile")
_SET_MODEL = (
    f"Set it with {describe_setting('root_model')}, {describe_setting('sub_model')} "
    "or the root_model/sub_model argument"
)
_PROFILE_PREFIXES = {"us": "us", "eu": "eu", "ap": "apac", "ca": "us", "sa": "us"}


@dataclass(frozen=True)
class CallSite:
    """Where a call went and with which credentials: what an error message needs to say what to fix."""

    region: str | None = None
    credentials: str | None = None
    """botocore's name for where the credentials came from: env, shared-credentials-file, sso, iam-role, ..."""


def _credentials_fix(reason: str, site: CallSite) -> str:
    source = f" (boto3 found them in: {site.credentials})" if site.credentials else ""
    if "expired" in reason:
        fix = "refresh them (`aws sso login`, or new keys from your identity provider) and try again"
    else:
        fix = (
            "check AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (`aws sts get-caller-identity` "
            "shows which identity the same settings give)"
        )
    return f"AWS rejected the credentials: {reason}{source}. Fix: {fix}"


def _profile_id(model: str, region: str | None) -> str:
    """The cross-region inference profile id newer models are called by (``us.`` + the model id)."""
    prefix = _PROFILE_PREFIXES.get((region or "us")[:2], "us")
    return f"{prefix}.{model}"


def _unknown_model(model: str, message: str, site: CallSite) -> ModelError:
    where = f" in {site.region}" if site.region else ""
    return ModelError(
        f"model {model} was not found{where} (Bedrock says: {message}). Check the id against "
        f"`aws bedrock list-foundation-models --region {site.region or '<region>'}` and that the model is enabled "
        "for this account (Bedrock console, Model access); newer models are called through an inference profile "
        f"such as {_profile_id(model, site.region)}. {_SET_MODEL}",
        kind=ModelErrorKind.CONFIG,
    )


def _translate_client_error(exc: ClientError, model: str, site: CallSite | None = None) -> ModelError:
    site = site or CallSite()
    error = exc.response.get("Error", {})
    code = str(error.get("Code", "Error"))
    message = str(error.get("Message", exc))
    lowered = message.lower()
    if code == "ThrottlingException":
        return ModelError(f"Bedrock kept throttling {model} after retries: {message}", kind=ModelErrorKind.THROTTLED)
    if code in _BAD_CREDENTIALS:
        fix = _credentials_fix(_BAD_CREDENTIALS[code], site)
        return ModelError(f"{fix}. AWS said: {code}: {message}", kind=ModelErrorKind.AUTH)
    if code == "ValidationException":
        if refuses_tools(message):
            return ModelError(
                f"{model} has no tool calling on Bedrock: {message}", kind=ModelErrorKind.TOOLS_UNSUPPORTED
            )
        if any(hint in lowered for hint in _CONTEXT_HINTS):
            return ModelError(f"the input is too long for {model}: {message}", kind=ModelErrorKind.CONTEXT_WINDOW)
        if any(hint in lowered for hint in _UNKNOWN_MODEL_HINTS):
            return _unknown_model(model, message, site)
        if any(hint in lowered for hint in _NEEDS_PROFILE_HINTS) and not model.startswith(("arn:", "us.", "eu.")):
            return ModelError(
                f"{model} cannot be called by its bare id here (Bedrock says: {message}). Use its inference profile, "
                f"{_profile_id(model, site.region)}. {_SET_MODEL}",
                kind=ModelErrorKind.CONFIG,
            )
        return ModelError(f"Bedrock rejected the request to {model}: {message}", kind=ModelErrorKind.VALIDATION)
    if code == "AccessDeniedException":
        return ModelError(
            f"access denied to {model}: {message}. Check that the model is enabled in this region and that "
            "the caller may call bedrock:InvokeModel on it",
            kind=ModelErrorKind.AUTH,
        )
    if code == "ResourceNotFoundException":
        return _unknown_model(model, message, site)
    if code in (
        "ServiceUnavailableException",
        "InternalServerException",
        "ModelNotReadyException",
        "ModelTimeoutException",
        "ModelErrorException",
    ):
        return ModelError(f"Bedrock could not serve {model} ({code}): {message}", kind=ModelErrorKind.UNAVAILABLE)
    return ModelError(f"Bedrock error {code} from {model}: {message}", kind=ModelErrorKind.ERROR)
