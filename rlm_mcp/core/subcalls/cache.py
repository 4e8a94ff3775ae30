"""The sub-call cache: an answer a model gave to an exact request, reused instead of paid for again.

A sub-call's answer is keyed by everything that determines it: the backend (and,
for OpenAI-compatible servers, which server), the model id, the exact prompt, the
parameters sent (the output limit; a temperature or system prompt if one is ever
sent) and the *occurrence*: the n-th time one run (or one repl_exec session) asks
the very same thing is the n-th entry. So a re-run, a resumed run or another
session that repeats an analysis gets the same answers in the same order without
sending anything, and a run that repeats a prompt on purpose (asking five times
to vote) still gets five separate samples, cached as five entries.

What counts as deterministic here: rlm-mcp sends no temperature, so every model
answers at its provider's default sampling; a cached answer is one the model
really gave to this exact request. Requests with a temperature above 0 (none
today) would not be cached, and neither are sampling sub-calls (the MCP client
picks the model, so the same name may not mean the same model). Turn the cache
off (``RLM_SUBCALL_CACHE=off``, or ``cache=False`` in one call) for fresh samples.

Privacy: a hit is visible (no latency, no cost), so a shared cache would tell one
principal that another sent the same prompt, which can leak what a private
corpus holds (a prompt quoting it). Entries are therefore kept per principal
(``on``); ``shared`` pools them across principals, for one team that trusts
itself. Entries hold the answer and token counts, never the prompt.

Entries live in the store (``subcalls/<scope>/<key>.json``: the data directory, or
S3 shared by replicas) and are bounded by ``RLM_SUBCALL_CACHE_MAX_MB`` and
``RLM_SUBCALL_CACHE_MAX_AGE_DAYS``: :meth:`SubcallCache.prune` removes the oldest
entries past either limit. Retention (:mod:`rlm_mcp.core.retention`) calls it with the
rest of the clean-up: at the server's start-up, every ``RLM_GC_INTERVAL_S`` and in
``rlm-mcp gc``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import anyio
import anyio.to_thread

from rlm_mcp.principals import directory_name
from rlm_mcp.store import Entry, KeyNotFound, Store

if TYPE_CHECKING:
    from rlm_mcp.config import Settings

log = logging.getLogger(__name__)
VERSION = 1
DAY_S = 86400.0
MB = 1024 * 1024
LOOKUPS_AT_ONCE = 16
CacheMode = Literal["on", "off", "shared"]


@dataclass(frozen=True)
class Request:
    """What, besides the prompt, decides a sub-call's answer."""

    backend: str
    """``bedrock``, or ``openai@<base url>`` (two servers may serve different models under one name)."""
    model: str
    max_tokens: int
    temperature: float | None = None
    system: str | None = None

    @property
    def deterministic(self) -> bool:
        return self.temperature is None or self.temperature == 0


@dataclass(frozen=True)
class Answer:
    text: str
    input_tokens: int
    output_tokens: int


@dataclass
class Occurrences:
    """How many times each exact request was made in one run or session (the n-th repeat is its own entry)."""

    counts: dict[str, int] = field(default_factory=dict)

    def commit(self, batch: dict[str, int]) -> None:
        """Count a batch's requests as made (only once it is admitted: a refused batch is asked again as it was)."""
        for digest, count in batch.items():
            self.counts[digest] = self.counts.get(digest, 0) + count


@dataclass(frozen=True)
class Pruned:
    removed: list[Entry]
    """Entries removed (or, in a dry run, that would be)."""
    kept: int
    kept_bytes: int
    failed: list[str] = field(default_factory=list)
    """Entries that could not be removed, with why."""

    @property
    def removed_bytes(self) -> int:
        return sum(entry.size for entry in self.removed)


def _parse(raw: bytes) -> Answer | None:
    """A stored entry, or None when it is not one (damaged entries are misses, never errors)."""
    try:
        data = json.loads(raw)
        text, tokens_in, tokens_out = data["text"], data["input_tokens"], data["output_tokens"]
    except (ValueError, KeyError, TypeError):
        return None
    if type(text) is not str or type(tokens_in) is not int or type(tokens_out) is not int:
        return None
    return Answer(text, max(tokens_in, 0), max(tokens_out, 0))


class SubcallCache:
    def __init__(self, store: Store, *, mode: CacheMode, max_mb: int, max_age_days: float):
        self.store = store
        self.mode = mode
        self.max_bytes = max_mb * MB
        self.max_age_s = max_age_days * DAY_S

    @property
    def enabled(self) -> bool:
        return self.mode != "off" and self.max_bytes > 0

    def keys(
        self, owner: str, request: Request, prompts: list[str], seen: Occurrences
    ) -> tuple[list[str], dict[str, int]]:
        """The entry of each prompt after the occurrences in ``seen``, and this batch's counts (to commit)."""
        scope = "shared" if self.mode == "shared" else directory_name(owner)
        spec = [VERSION, request.backend, request.model, request.max_tokens, request.temperature, request.system]
        keys: list[str] = []
        batch: dict[str, int] = {}
        for prompt in prompts:
            digest = hashlib.sha256(json.dumps([*spec, prompt]).encode("utf-8", "surrogatepass")).hexdigest()
            occurrence = seen.counts.get(digest, 0) + batch.get(digest, 0)
            batch[digest] = batch.get(digest, 0) + 1
            keys.append(f"{scope}/{hashlib.sha256(f'{digest}:{occurrence}'.encode()).hexdigest()}.json")
        return keys, batch

    async def get_many(self, keys: list[str]) -> list[Answer | None]:
        """The cached answer of each key, or None; a store that fails makes misses, not errors."""
        found: list[Answer | None] = [None] * len(keys)
        limiter = anyio.CapacityLimiter(LOOKUPS_AT_ONCE)

        def read(key: str) -> Answer | None:
            try:
                return _parse(self.store.read(key))
            except KeyNotFound:
                return None
            except Exception:
                log.warning("the sub-call cache could not be read (%s)", key, exc_info=True)
                return None

        async def one(index: int, key: str) -> None:
            found[index] = await anyio.to_thread.run_sync(read, key, limiter=limiter)

        async with anyio.create_task_group() as tg:
            for index, key in enumerate(keys):
                tg.start_soon(one, index, key)
        return found

    async def put(self, key: str, answer: Answer, model: str) -> None:
        data = {
            "text": answer.text,
            "input_tokens": answer.input_tokens,
            "output_tokens": answer.output_tokens,
            "model": model,
            "created_at": time.time(),
        }
        try:
            encoded = json.dumps(data, ensure_ascii=False).encode("utf-8", "surrogatepass")
            await anyio.to_thread.run_sync(self.store.write, key, encoded)
        except Exception:  # a cache that cannot be written costs a future hit, never this answer
            log.warning("the sub-call cache could not be written (%s)", key, exc_info=True)

    def entries(self) -> list[Entry]:
        """Every stored entry (blocking)."""
        return [entry for entry in self.store.list() if entry.key.endswith(".json")]

    def prune(self, now: float | None = None, *, dry_run: bool = False, entries: list[Entry] | None = None) -> Pruned:
        """Remove entries older than the age limit, then the oldest until the rest fit the size limit.

        Blocking (run it in a worker thread). ``entries`` spares a listing the caller already made;
        ``dry_run`` only says what would go.
        """
        now = time.time() if now is None else now
        newest_first = sorted(self.entries() if entries is None else entries, key=lambda e: e.modified, reverse=True)
        kept_bytes = kept = 0
        removed: list[Entry] = []
        failed: list[str] = []
        for entry in newest_first:
            too_old = self.max_age_s > 0 and now - entry.modified > self.max_age_s
            if not too_old and kept_bytes + entry.size <= self.max_bytes:
                kept += 1
                kept_bytes += entry.size
                continue
            if not dry_run:
                try:
                    self.store.delete(entry.key)
                except Exception as exc:
                    log.warning("could not remove the cache entry %s", entry.key, exc_info=True)
                    failed.append(f"{entry.key}: {exc}")
                    continue
            removed.append(entry)
        return Pruned(removed, kept, kept_bytes, failed)


def open_cache(store: Store, settings: Settings) -> SubcallCache:
    """The cache under ``subcalls/`` of the store, with the settings' mode and limits."""
    return SubcallCache(
        store.sub("subcalls"),
        mode=settings.subcall_cache,
        max_mb=settings.subcall_cache_max_mb,
        max_age_days=settings.subcall_cache_max_age_days,
    )
