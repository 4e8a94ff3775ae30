"""Reaching the MCP client's model from inside a long tool call, on both protocol generations.

A tool call that uses the model ``sampling`` (``rlm_query`` and ``repl_exec``)
runs through :meth:`SamplingRounds.call`, which puts a sampler for that call in
:data:`~rlm_mcp.models.sampling.current_sampler`:

- **Handshake-era protocol (up to 2025-11-25)**, the one desktop clients speak:
  the server may send ``sampling/createMessage`` to the client at any moment
  while the call is open. :class:`DirectSampler` does exactly that, so a run
  can sample hundreds of times, concurrently, in one tool call.
- **2026-07-28 protocol** (the mcp SDK's default ``Client``): there is no
  server-to-client request. A tool may instead *return* an
  ``InputRequiredResult`` carrying sampling requests, and the client retries
  the same call with the answers (``input_responses``) and the opaque
  ``request_state``. The SDK's declarative form, ``Resolve``/``Sample``, asks
  its questions before the tool body runs and replays every answer in
  ``request_state`` on each later round, which suits one question known up
  front, not a loop whose sub-calls are decided by code as it runs. So the run
  is kept alive on the server between rounds (:class:`_Job`): each round
  waits until the run either finishes or needs the client's model, and then
  returns the result or the batch of sampling requests; ``request_state`` only
  names the job. That needs a single server process (the run lives in its
  memory), and each batch costs one round: the SDK client gives up after
  ``input_required_max_rounds`` (10 by default), so a long run needs a client
  that raises it.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.shared.exceptions import MCPError
from mcp.shared.message import ServerMessageMetadata
from mcp_types import (
    CreateMessageRequest,
    CreateMessageRequestParams,
    CreateMessageResult,
    CreateMessageResultWithTools,
    InputRequiredResult,
)
from mcp_types.version import is_version_at_least
from pydantic import ValidationError

from rlm_mcp.errors import ModelError, ModelErrorKind
from rlm_mcp.models.sampling import current_sampler
from rlm_mcp.progress import ProgressReporter, increasing

log = logging.getLogger(__name__)
ROUNDS_VERSION = "2026-07-28"
SETTLE_S = 0.05
"""How long a round waits for more requests once one is pending, so a batch of sub-calls travels together."""
JOB_TTL_S = 600.0
Spawn = Callable[[Callable[[], Awaitable[None]]], None]


def _result_type(params: CreateMessageRequestParams) -> type[CreateMessageResult | CreateMessageResultWithTools]:
    return CreateMessageResultWithTools if params.tools else CreateMessageResult


def _progress_of(ctx: Context) -> ProgressReporter:
    return increasing(ctx.report_progress)


def names_sampling(*values: str | None) -> bool:
    """Whether a model setting (or code passing model=...) may ask for the client's model."""
    return any(value is not None and "sampling" in value for value in values)


class DirectSampler:
    """Handshake-era protocol: a ``sampling/createMessage`` request to the client, mid-call."""

    def __init__(self, ctx: Context, supports_tools: bool):
        self._ctx = ctx
        self.supports_tools = supports_tools

    async def sample(self, params: CreateMessageRequestParams) -> CreateMessageResult | CreateMessageResultWithTools:
        request = CreateMessageRequest(params=params)
        try:
            return await self._ctx.session.send_request(
                request, _result_type(params), metadata=ServerMessageMetadata(related_request_id=self._ctx.request_id)
            )
        except MCPError as exc:
            raise ModelError(f"the client did not sample: {exc}", kind=ModelErrorKind.ERROR) from exc
        except ValidationError as exc:
            raise ModelError(
                f"the client's sampling result cannot be read: {exc}", kind=ModelErrorKind.MALFORMED
            ) from exc


@dataclass
class _Ask:
    params: CreateMessageRequestParams
    done: anyio.Event = field(default_factory=anyio.Event)
    result: CreateMessageResult | CreateMessageResultWithTools | None = None


class _Job:
    """A tool call kept running between the rounds of the 2026-07-28 input-required flow."""

    def __init__(self, supports_tools: bool, answer_timeout_s: float):
        self.id = "job_" + secrets.token_urlsafe(16)
        self.supports_tools = supports_tools
        self.answer_timeout_s = answer_timeout_s
        self.waiting: dict[str, _Ask] = {}
        """Asked by the run, not yet sent to the client."""
        self.sent: dict[str, _Ask] = {}
        """Sent in an InputRequiredResult, answer not yet back."""
        self.finished = anyio.Event()
        self.result: Any = None
        self.error: BaseException | None = None
        self.round: Context | None = None
        self.last_seen = time.monotonic()
        self._changed = anyio.Event()
        self._asks = 0
        self._scope = anyio.CancelScope()
        self.progress = increasing(self._notify)

    # -- the run's side ------------------------------------------------------------------

    async def sample(self, params: CreateMessageRequestParams) -> CreateMessageResult | CreateMessageResultWithTools:
        self._asks += 1
        key = f"sample-{self._asks}"
        ask = _Ask(params)
        self.waiting[key] = ask
        self._changed.set()
        with anyio.move_on_after(self.answer_timeout_s):
            await ask.done.wait()
        self.waiting.pop(key, None)
        self.sent.pop(key, None)
        if ask.result is None:
            raise ModelError(
                f"the client did not answer a sampling request within {self.answer_timeout_s:g} s "
                "(it must retry the tool call with the answers)",
                kind=ModelErrorKind.TIMEOUT,
            )
        return ask.result

    async def _notify(self, done: float, total: float | None, message: str) -> None:
        """Progress goes to whichever round is open; between rounds there is nobody to tell."""
        if self.round is not None:
            try:
                await self.round.report_progress(done, total, message)
            except Exception:  # a round that just closed
                log.debug("progress for job %s dropped", self.id)

    def cancel(self) -> None:
        """The client gave up on the call (it cancelled a round): stop the work it started."""
        self._scope.cancel()

    async def run(self, fn: Callable[[ProgressReporter], Awaitable[Any]]) -> None:
        token = current_sampler.set(self)
        try:
            with self._scope:
                self.result = await fn(self.progress)
            if self._scope.cancelled_caught:
                self.error = ToolError("the call was cancelled")
        except Exception as exc:
            self.error = exc
        finally:
            current_sampler.reset(token)
            self.finished.set()
            self._changed.set()

    # -- the rounds' side ------------------------------------------------------------------

    def deliver(self, responses: dict[str, Any] | None) -> None:
        for key, response in (responses or {}).items():
            ask = self.sent.pop(key, None)
            if ask is None:
                continue
            try:
                ask.result = _result_type(ask.params).model_validate(
                    response.model_dump(mode="json", by_alias=True, exclude_none=True)
                    if hasattr(response, "model_dump")
                    else response
                )
            except ValidationError:
                log.warning("job %s: the answer to %s is not a sampling result; asking again", self.id, key)
                self.waiting[key] = ask
                continue
            ask.done.set()
        # Whatever was sent and not answered is asked again.
        self.waiting.update(self.sent)
        self.sent.clear()

    async def next_round(self, ctx: Context) -> Any:
        self.round, self.last_seen = ctx, time.monotonic()
        try:
            while True:
                if self.finished.is_set():
                    if self.error is not None:
                        raise self.error
                    return self.result
                if self.waiting:
                    count = -1
                    while count != len(self.waiting) and not self.finished.is_set():
                        count = len(self.waiting)
                        await anyio.sleep(SETTLE_S)
                    if self.waiting:
                        requests = {key: CreateMessageRequest(params=ask.params) for key, ask in self.waiting.items()}
                        self.sent.update(self.waiting)
                        self.waiting.clear()
                        return InputRequiredResult(input_requests=requests, request_state=self.id)
                    continue
                self._changed = anyio.Event()
                if not (self.waiting or self.finished.is_set()):
                    await self._changed.wait()
        finally:
            self.round, self.last_seen = None, time.monotonic()


class SamplingRounds:
    """Runs tool calls that may sample the client's model; holds the jobs of the 2026-07-28 flow."""

    def __init__(self, spawn: Spawn, answer_timeout_s: float):
        self._spawn = spawn
        self._answer_timeout_s = answer_timeout_s
        self._jobs: dict[str, _Job] = {}

    async def call(
        self,
        ctx: Context,
        fn: Callable[[ProgressReporter], Awaitable[Any]],
        *,
        uses_sampling: bool,
        background: bool = False,
    ) -> Any:
        """``fn(progress)`` with the client's model reachable, or an ``InputRequiredResult`` for the next round.

        ``background`` calls (``wait=false``) return before their work is done, when the client can no
        longer be asked, so they cannot use sampling.
        """
        self._forget_stale()
        if uses_sampling and background:
            raise ToolError(
                "a run on the model 'sampling' needs wait=true: the client's model can only be asked while "
                "the tool call is open"
            )
        job = self._jobs.get(ctx.request_state or "")
        if ctx.request_state and job is None:
            raise ToolError(
                "this call's earlier rounds are gone (the server restarted, or the client took longer than "
                f"{JOB_TTL_S:g} s to come back); call the tool again"
            )
        if job is not None:
            job.deliver(ctx.input_responses)
            return await self._round(job, ctx)
        capabilities = ctx.client_capabilities
        sampling = capabilities.sampling if capabilities is not None else None
        if not uses_sampling or sampling is None:
            return await fn(_progress_of(ctx))  # SamplingClient explains what is missing, if it is asked
        supports_tools = sampling.tools is not None
        if ctx.protocol_version and is_version_at_least(ctx.protocol_version, ROUNDS_VERSION):
            job = _Job(supports_tools, self._answer_timeout_s)
            self._jobs[job.id] = job
            self._spawn(lambda: job.run(fn))
            return await self._round(job, ctx)
        if not ctx.session.can_send_request:
            return await fn(_progress_of(ctx))
        token = current_sampler.set(DirectSampler(ctx, supports_tools))
        try:
            return await fn(_progress_of(ctx))
        finally:
            current_sampler.reset(token)

    async def _round(self, job: _Job, ctx: Context) -> Any:
        try:
            outcome = await job.next_round(ctx)
        except anyio.get_cancelled_exc_class():
            job.cancel()
            self._jobs.pop(job.id, None)
            raise
        except BaseException:
            if job.finished.is_set():
                self._jobs.pop(job.id, None)
            raise
        if job.finished.is_set() and not isinstance(outcome, InputRequiredResult):
            self._jobs.pop(job.id, None)
        return outcome

    def _forget_stale(self) -> None:
        cutoff = time.monotonic() - JOB_TTL_S
        for job_id, job in list(self._jobs.items()):
            if job.round is None and job.last_seen < cutoff:
                self._jobs.pop(job_id, None)
