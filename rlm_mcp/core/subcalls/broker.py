"""The sub-call broker: serves ``llm_query``/``llm_query_batched`` for the sandbox.

A batch runs concurrently up to ``RLM_SUBCALL_CONCURRENCY`` and comes back in
order. Each prompt succeeds or fails on its own (a failure never loses the other
answers), each is recorded for the trajectory, and every request is charged to
a :class:`Budget` first, so a runaway loop of sub-calls stops with an error the
code can catch instead of an invoice.

On top of the per-batch limit, every model has an :class:`AdaptiveLimit` shared
by all sessions: when the provider throttles, fewer calls go out at once, and
the limit climbs back as calls succeed.

Before anything is sent, each prompt is looked up in the sub-call cache
(:mod:`rlm_mcp.core.subcalls.cache`); only the misses are sent, and only they are
charged to the budget (:mod:`rlm_mcp.core.subcalls.budget`), whose calls, tokens and dollars
must cover the whole batch's worst case or the batch is refused whole.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

import anyio

from rlm_mcp.config import Settings
from rlm_mcp.core.backends import backend_of
from rlm_mcp.core.subcalls.budget import Budget, estimate
from rlm_mcp.core.subcalls.cache import Answer, Occurrences, Request, SubcallCache
from rlm_mcp.errors import ModelError, ModelErrorKind
from rlm_mcp.models import ModelClient, Usage, parse_model, pool_size
from rlm_mcp.models.pricing import PriceTable
from rlm_mcp.principals import LOCAL
from rlm_mcp.schemas import SubCallRecord
from rlm_mcp.telemetry import spans as telemetry
from sandbox import SubcallHandler, SubcallRefused, SubcallReply
from sandbox.results import Spans

__all__ = ["AdaptiveLimit", "Budget", "SubcallBroker", "SubcallLog"]

log = logging.getLogger(__name__)
SUBCALL_PREVIEW_CHARS = 500
"""How much of a sub-call's prompt and answer its record in the trajectory keeps."""
CHARS_PER_BUDGET_TOKEN = 8
"""A prompt longer than this many characters per token of RLM_SUB_CONTEXT_TOKENS is refused unsent."""
ProgressFn = Callable[[int, int], Awaitable[None]]
OVERLOAD_KINDS = frozenset({ModelErrorKind.THROTTLED, ModelErrorKind.UNAVAILABLE})
PROGRESS_INTERVAL_S = 0.1


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

    @property
    def cached(self) -> int:
        return sum(1 for r in self.records if r.cached)


@dataclass
class _Batch:
    """One admitted request of the code: where it goes, what the cache already had, and what to charge."""

    client: ModelClient
    model_id: str
    prompts: list[str]
    hits: list[Answer | None]
    keys: list[str] | None
    budget: Budget
    log: SubcallLog
    progress: ProgressFn | None
    spans: Spans | None
    """The corpus ranges the worker found in each prompt (None: it could not tell)."""


def _preview(text: str | None) -> str | None:
    if text is None or len(text) <= SUBCALL_PREVIEW_CHARS:
        return text
    return text[:SUBCALL_PREVIEW_CHARS] + f"... [{len(text) - SUBCALL_PREVIEW_CHARS:,} more characters]"


class Routes(Protocol):
    """What the broker asks of a router: the client serving a model setting, and the model id it goes by there
    (:class:`~rlm_mcp.models.ModelRouter`; :class:`~rlm_mcp.testing.mock_model.MockRouter` in unit tests)."""

    def client_for(self, model: str) -> tuple[ModelClient, str]: ...


class SubcallBroker:
    def __init__(
        self,
        settings: Settings,
        router: Routes,
        prices: PriceTable | None = None,
        cache: SubcallCache | None = None,
    ):
        self.settings = settings
        self.router = router
        self.prices = prices or PriceTable(settings.prices_file)
        self.cache = cache
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
        owner: str = LOCAL,
        seen: Occurrences | None = None,
    ) -> SubcallHandler:
        """A handler for one execution: looks prompts up in ``owner``'s cache, charges ``budget`` for the rest,
        writes to ``log``. ``seen`` counts repeats of a request over the run or session (see the cache)."""
        occurrences = seen if seen is not None else Occurrences()

        async def handle(
            prompts: list[str], model: str | None, spans: Spans | None = None, *, cache: bool = True
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
            request = self._request(chosen, model_id) if cache else None
            keys = counts = None
            hits: list[Answer | None] = [None] * len(prompts)
            if request is not None and self.cache is not None:
                keys, counts = self.cache.keys(owner, request, prompts, occurrences)
                hits = await self.cache.get_many(keys)
            missing = [len(p) for p, hit in zip(prompts, hits, strict=True) if hit is None]
            if missing and (refusal := budget.needs_price(model_id, self.prices)):
                raise SubcallRefused(refusal)
            budget.admit(len(missing), estimate(self.prices, model_id, missing, self.settings.sub_max_tokens))
            if counts is not None:
                occurrences.commit(counts)  # only an admitted batch counts: a refused one is asked again as it was
            batch = _Batch(client, model_id, prompts, hits, keys, budget, log, progress, spans)
            return await self._run_batch(batch)

        return handle

    def _request(self, chosen: str, model_id: str) -> Request | None:
        """What decides this model's answers, for the cache; None when its answers are not to be reused."""
        if self.cache is None or not self.cache.enabled:
            return None
        backend = parse_model(chosen)[0]
        if backend == "sampling":  # the client picks the model behind it: the same name may not be the same model
            return None
        where = f"openai@{self.settings.openai_base_url}" if backend == "openai" else backend
        request = Request(backend=where, model=model_id, max_tokens=self.settings.sub_max_tokens)
        return request if request.deterministic else None

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

    async def _run_batch(self, batch: _Batch) -> list[SubcallReply]:
        prompts, sub_log, model_id = batch.prompts, batch.log, batch.model_id
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
            hit = batch.hits[index]
            if hit is not None:
                clock = time.perf_counter()
                started, latency_ms = wall + clock, 0.0
                text, error, usage = hit.text, None, Usage(hit.input_tokens, hit.output_tokens)
            else:
                async with limiter, shared.limiter:
                    clock = time.perf_counter()
                    started = wall + clock
                    text, error, usage = await self._call(batch.client, model_id, prompt, shared)
                    latency_ms = (time.perf_counter() - clock) * 1000  # ended while still holding its place
                sub_log.usage = sub_log.usage + usage
                tokens = usage.input_tokens + usage.output_tokens
                batch.budget.charge(tokens, self.prices.cost(model_id, usage.input_tokens, usage.output_tokens))
                if text is not None and batch.keys is not None and self.cache is not None:
                    answer = Answer(text, usage.input_tokens, usage.output_tokens)
                    await self.cache.put(batch.keys[index], answer, model_id)
            replies[index] = SubcallReply(text=text, error=error)
            # A cached answer still carries the spans of this prompt: the corpus text it stands for was
            # read by this run all the same (the viewer's share of the corpus), only not paid for again.
            spans = batch.spans
            sub_log.records.append(
                SubCallRecord(
                    model=model_id,
                    started_at=started,
                    latency_ms=latency_ms,
                    prompt_chars=len(prompt),
                    prompt_preview=_preview(prompt) or "",
                    response_preview=_preview(text),
                    input_tokens=usage.input_tokens,
                    output_tokens=usage.output_tokens,
                    error=error,
                    cached=hit is not None,
                    corpus_spans=[list(span) for span in spans.get(index, [])] if spans is not None else None,
                )
            )
            done += 1
            now = time.monotonic()
            # The first, the last, and at most ten a second between: each is a message to the client.
            if batch.progress is not None and (done in (1, len(prompts)) or now - reported >= PROGRESS_INTERVAL_S):
                reported = now
                await batch.progress(done, len(prompts))

        async with anyio.create_task_group() as tg:
            for index, prompt in enumerate(prompts):
                tg.start_soon(run, index, prompt)
        return replies

    async def _call(
        self, client: ModelClient, model_id: str, prompt: str, shared: AdaptiveLimit
    ) -> tuple[str | None, str | None, Usage]:
        """One prompt sent: its text or its error, and what it used."""
        epoch = shared.epoch
        try:
            self._check_size(prompt)
            max_tokens = self.settings.sub_max_tokens
            with (
                telemetry.model_span(
                    model_id, backend=backend_of(client), role="sub", max_tokens=max_tokens, prompt_chars=len(prompt)
                ) as span,
                anyio.fail_after(self.settings.subcall_timeout_s),
            ):
                completion = await client.complete(model_id, prompt, max_tokens=max_tokens)
                span.completed(completion)
        except ModelError as exc:
            if exc.kind in OVERLOAD_KINDS:
                shared.overloaded(epoch)
            return None, str(exc), Usage()
        except TimeoutError:
            return None, f"no answer from {model_id} within {self.settings.subcall_timeout_s:g} s", Usage()
        except Exception as exc:  # a fault costs this one answer, never the batch
            log.exception("sub-call to %s failed", model_id)
            return None, f"the sub-call failed in the server ({type(exc).__name__}: {exc})", Usage()
        if completion.retries:
            shared.overloaded(epoch)
        else:
            shared.succeeded()
        return completion.text, None, completion.usage

    def _check_size(self, prompt: str) -> None:
        """Refuse, unsent, a prompt far beyond what the sub-model is said to take."""
        limit = CHARS_PER_BUDGET_TOKEN * self.settings.sub_context_tokens
        if len(prompt) > limit:
            raise ModelError(
                f"the prompt is {len(prompt):,} characters, far over the sub-model's input budget of "
                f"{self.settings.sub_context_tokens:,} tokens (RLM_SUB_CONTEXT_TOKENS); split it into smaller chunks",
                kind=ModelErrorKind.VALIDATION,
            )
