"""The sub-call broker: serves ``llm_query``/``llm_query_batched`` for the sandbox.

A batch runs concurrently up to ``RLM_SUBCALL_CONCURRENCY`` and comes back in
order. Each prompt succeeds or fails on its own (a failure never loses the other
answers), each is recorded for the trajectory, and every request is charged to
a :class:`Budget` first, so a runaway loop of sub-calls stops with an error the
code can catch instead of an invoice.

On top of the per-batch limit, every model has an :class:`AdaptiveLimit` shared
by all sessions: when the provider throttles, fewer calls go out at once, and
the limit climbs back as calls succeed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import anyio

from rlm_mcp import telemetry
from rlm_mcp.config import Settings
from rlm_mcp.errors import ModelError
from rlm_mcp.models import ModelClient, ModelRouter, Usage, pool_size
from rlm_mcp.schemas import SubCallRecord
from sandbox import SubcallHandler, SubcallRefused, SubcallReply

log = logging.getLogger(__name__)
PREVIEW_CHARS = 500
CHARS_PER_BUDGET_TOKEN = 8
"""A prompt longer than this many characters per token of RLM_SUB_CONTEXT_TOKENS is refused unsent."""
log = logging.getLogger(__name__)
ProgressFn = Callable[[int, int], Awaitable[None]]
OVERLOAD_KINDS = frozenset({"throttled", "unavailable"})
PROGRESS_INTERVAL_S = 0.1


class Budget:
    """A count of sub-calls that may still be made; shared by everything charged to it."""

    def __init__(self, limit: int):
        self.limit = limit
        self.used = 0

    @property
    def remaining(self) -> int:
        return max(self.limit - self.used, 0)

    def take(self, count: int) -> None:
        if count > self.remaining:
            raise SubcallRefused(
                f"the sub-call budget is used up: {self.used} of {self.limit} made, {count} more requested. "
                "Aggregate what you have, or use fewer, larger chunks",
                error_type="SubcallBudgetExceeded",
            )
        self.used += count


class AdaptiveLimit:
    """How many calls to one model may be in flight at once, across sessions (AIMD, as TCP does).

    It starts at ``ceiling``. A sign of overload (the backend had to retry a call for
    throttling or a 5xx, or gave up on one) halves it, from the number of calls in flight
    at that moment; overload reported by calls that started before that cut is ignored,
    since it describes the load before it. Each success adds ``1/limit``, so the limit
    grows back by about one per round of calls until it reaches the ceiling again.
    """

    def __init__(self, ceiling: int, name: str = ""):
        self.ceiling = ceiling
        self.name = name
        self.limiter = anyio.CapacityLimiter(ceiling)
        self.epoch = 0
        self.cuts = 0
        self._credit = 0.0

    @property
    def limit(self) -> int:
        return int(self.limiter.total_tokens)

    def overloaded(self, started_epoch: int) -> None:
        if started_epoch != self.epoch:
            return
        self.epoch += 1
        self._credit = 0.0
        reduced = max(1, min(self.limit, self.limiter.borrowed_tokens) // 2)
        if reduced < self.limit:
            self.cuts += 1
            self.limiter.total_tokens = reduced
            log.info("%s is overloaded: at most %d sub-calls at once for now", self.name, reduced)

    def succeeded(self) -> None:
        if self.limit >= self.ceiling:
            return
        self._credit += 1 / self.limit
        if self._credit >= 1:
            self._credit -= 1
            self.limiter.total_tokens = self.limit + 1


@dataclass
class SubcallLog:
    """What the sub-calls of one execution did, for the result and the trajectory."""

    records: list[SubCallRecord] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)

    @property
    def failed(self) -> int:
        return sum(1 for r in self.records if r.error is not None)


def _preview(text: str | None) -> str | None:
    if text is None or len(text) <= PREVIEW_CHARS:
        return text
    return text[:PREVIEW_CHARS] + f"... [{len(text) - PREVIEW_CHARS:,} more characters]"


class SubcallBroker:
    def __init__(self, settings: Settings, router: ModelRouter):
        self.settings = settings
        self.router = router
        self._limits: dict[str, AdaptiveLimit] = {}

    def limit_for(self, model_id: str) -> AdaptiveLimit:
        """The shared limit of one model; its ceiling is the client's connection pool."""
        if model_id not in self._limits:
            self._limits[model_id] = AdaptiveLimit(pool_size(self.settings), model_id)
        return self._limits[model_id]

    def handler(
        self,
        *,
        budget: Budget,
        log: SubcallLog,
        default_model: str | None,
        progress: ProgressFn | None = None,
    ) -> SubcallHandler:
        """A handler for one execution: charges ``budget`` and writes to ``log``."""

        async def handle(
            prompts: list[str], model: str | None, spans: dict[int, list[tuple[int, int]]] | None = None
        ) -> list[SubcallReply]:
            if model is not None and model != default_model:
                self._check_allowed(model, default_model)
            chosen = model or default_model
            if not chosen:
                raise SubcallRefused(
                    "no sub-model is configured: set RLM_SUB_MODEL to a Bedrock model id "
                    "(e.g. us.anthropic.claude-haiku-4-5-20251001-v1:0), openai:<model> or sampling, "
                    "or pass model= to llm_query"
                )
            try:
                client, model_id = self.router.client_for(chosen)
                await client.check()
            except ModelError as exc:
                raise SubcallRefused(str(exc)) from None
            budget.take(len(prompts))
            return await self._run_batch(client, model_id, prompts, log, progress, spans)

        return handle

    def _check_allowed(self, model: str, default_model: str | None) -> None:
        """Code may pick another model only from ``RLM_ALLOWED_MODELS`` (by default, the configured ones).

        The code is written by a model reading untrusted text: without this, a sentence in the
        corpus could send every sub-call to the most expensive model the credentials reach.
        """
        allowed = set(self.settings.allowed_models) or {
            m for m in (self.settings.sub_model, self.settings.root_model, default_model) if m
        }
        if "*" not in allowed and model not in allowed:
            raise SubcallRefused(
                f"model {model!r} is not allowed for sub-calls here; allowed: {', '.join(sorted(allowed)) or 'none'}. "
                "Leave model= out, or add it to RLM_ALLOWED_MODELS"
            )

    async def _run_batch(
        self,
        client: ModelClient,
        model_id: str,
        prompts: list[str],
        sub_log: SubcallLog,
        progress: ProgressFn | None,
        spans: dict[int, list[tuple[int, int]]] | None = None,
    ) -> list[SubcallReply]:
        replies: list[SubcallReply] = [SubcallReply(error="not run")] * len(prompts)
        limiter = anyio.CapacityLimiter(self.settings.subcall_concurrency)
        shared = self.limit_for(model_id)
        done = 0
        reported = 0.0
        # Start and end of every call on one clock: the monotonic one, placed once on the wall clock. A call
        # that starts as another ends then never seems to overlap it (the viewer counts calls in flight).
        wall = time.time() - time.perf_counter()

        async def run(index: int, prompt: str) -> None:
            nonlocal done, reported
            async with limiter, shared.limiter:
                epoch = shared.epoch
                clock = time.perf_counter()
                started = wall + clock
                text = error = None
                usage = Usage()
                try:
                    self._check_size(prompt)
                    with (
                        telemetry.model_span(
                            model_id, role="sub", max_tokens=self.settings.sub_max_tokens, prompt_chars=len(prompt)
                        ) as span,
                        anyio.fail_after(self.settings.subcall_timeout_s),
                    ):
                        completion = await client.complete(model_id, prompt, max_tokens=self.settings.sub_max_tokens)
                        span.completed(completion)
                    text, usage = completion.text, completion.usage
                    if completion.retries:
                        shared.overloaded(epoch)
                    else:
                        shared.succeeded()
                except ModelError as exc:
                    error = str(exc)
                    if exc.kind in OVERLOAD_KINDS:
                        shared.overloaded(epoch)
                except TimeoutError:
                    error = f"no answer from {model_id} within {self.settings.subcall_timeout_s:g} s"
                except Exception as exc:  # a fault costs this one answer, never the batch
                    log.exception("sub-call to %s failed", model_id)
                    error = f"the sub-call failed in the server ({type(exc).__name__}: {exc})"
                replies[index] = SubcallReply(text=text, error=error)
                sub_log.usage = sub_log.usage + usage
                sub_log.records.append(
                    SubCallRecord(
                        model=model_id,
                        started_at=started,
                        latency_ms=(time.perf_counter() - clock) * 1000,
                        prompt_chars=len(prompt),
                        prompt_preview=_preview(prompt) or "",
                        response_preview=_preview(text),
                        input_tokens=usage.input_tokens,
                        output_tokens=usage.output_tokens,
                        error=error,
                        corpus_spans=[list(span) for span in spans.get(index, [])] if spans is not None else None,
                    )
                )
            done += 1
            now = time.monotonic()
            # The first, the last, and at most ten a second between: each is a message to the client.
            if progress is not None and (done in (1, len(prompts)) or now - reported >= PROGRESS_INTERVAL_S):
                reported = now
                await progress(done, len(prompts))

        async with anyio.create_task_group() as tg:
            for index, prompt in enumerate(prompts):
                tg.start_soon(run, index, prompt)
        return replies

    def _check_size(self, prompt: str) -> None:
        """Refuse, unsent, a prompt far beyond what the sub-model is said to take."""
        limit = CHARS_PER_BUDGET_TOKEN * self.settings.sub_context_tokens
        if len(prompt) > limit:
            raise ModelError(
                f"the prompt is {len(prompt):,} characters, far over the sub-model's input budget of "
                f"{self.settings.sub_context_tokens:,} tokens (RLM_SUB_CONTEXT_TOKENS); split it into smaller chunks",
                kind="validation",
            )
