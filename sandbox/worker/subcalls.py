"""The worker's requests to its parent while code runs: ``llm_query``, ``llm_query_batched``, ``rlm_query``.

Apart from :mod:`sandbox.worker.repl` (the namespace and the names injected into it)
because this is the one place where code running in the REPL waits on the parent: each
request copies its arguments to exact builtin values, pauses the compute clock, goes
over the channel under the worker's own request id, and its answer is checked against
that id before anything in it is used. A refused request counts as compute (see
:meth:`ParentRequests.request_llm`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sandbox import protocol
from sandbox.protocol import Channel, Op
from sandbox.worker.guards import exact_str
from sandbox.worker.interrupts import ExecInterrupted, Interrupts


class LLMError(Exception):
    """A sub-call (llm_query / llm_query_batched) failed."""


class SubcallBudgetExceeded(LLMError):
    """The session's or run's sub-call budget is used up."""


class LLMBatchError(LLMError):
    """Some prompts of a batch failed; ``results`` holds the others (None where failed)."""

    def __init__(self, message: str, results: list[str | None], errors: dict[int, str]):
        super().__init__(message)
        self.results = results
        self.errors = errors
        self.failed = sorted(errors)


def str_list(value: object, what: str) -> list[str]:
    """A list of exact strs copied from ``value``, an iterable of str (iterated as the caller's code would)."""
    if issubclass(type(value), str):
        raise TypeError(f"{what} takes a list of str")
    try:
        items = list(value)
    except TypeError:
        raise TypeError(f"{what} takes a list of str, not {type(value).__name__}") from None
    for i, item in enumerate(items):
        if not issubclass(type(item), str):
            raise TypeError(f"{what}[{i}] is a {type(item).__name__}, not a str")
    return [str.__str__(item) for item in items]


class ParentRequests:
    """The sub-calls code makes of the parent, numbered by the worker; the REPL exposes them as helpers."""

    def __init__(self, channel: Channel, interrupts: Interrupts, corpus: Callable[[], str | list[str]]):
        self.channel = channel
        self.interrupts = interrupts
        self._corpus = corpus
        """The REPL's current ``context`` (read when the locator is built)."""
        self._request_id = 0
        self._locator: Any = None
        """Finds corpus text in prompts; built at the first sub-call after a load."""

    def forget_corpus(self) -> None:
        """The corpus changed: the next sub-call builds a new locator."""
        self._locator = None

    def llm_query(self, prompt: Any, model: Any = None, cache: Any = True) -> str:
        if not issubclass(type(prompt), str):
            raise TypeError(
                f"llm_query(prompt) takes a str, not {type(prompt).__name__}; use llm_query_batched(prompts) for a list"
            )
        outcome = self.request_llm([exact_str(prompt, "prompt")], model, cache)[0]
        if "error" in outcome:
            raise LLMError(outcome["error"])
        return str(outcome["text"])

    def llm_query_batched(self, prompts: Any, model: Any = None, cache: Any = True) -> list[str]:
        if issubclass(type(prompts), str):
            raise TypeError("llm_query_batched(prompts) takes a list of str; use llm_query(prompt) for one")
        prompts = str_list(prompts, "prompts")
        if not prompts:
            return []
        outcomes = self.request_llm(prompts, model, cache)
        errors = {i: str(o["error"]) for i, o in enumerate(outcomes) if "error" in o}
        if errors:
            results = [None if "error" in o else str(o["text"]) for o in outcomes]
            first = next(iter(errors.values()))
            shown = ", ".join(map(str, sorted(errors)[:10])) + (", ..." if len(errors) > 10 else "")
            raise LLMBatchError(
                f"{len(errors)} of {len(prompts)} prompts failed (indices {shown}): {first}. "
                "The other answers are in e.results; retry e.failed if needed.",
                results,
                errors,
            )
        return [str(o["text"]) for o in outcomes]

    def request_llm(self, prompts: list[str], model: Any, cache: Any = True) -> list[dict[str, Any]]:
        if model is not None:
            if not issubclass(type(model), str):
                raise TypeError("model must be a model id string or None")
            model = exact_str(model, "model")
        if type(cache) is not bool:
            raise TypeError("cache must be True (reuse an earlier identical answer) or False (always ask the model)")
        self._request_id += 1
        request_id = self._request_id
        corpus = self._corpus_spans(prompts)  # before the clock pauses: it is this code's compute
        self.interrupts.pause()
        waited = time.monotonic()
        reply: dict[str, Any] = {}
        try:
            self.channel.send(
                {"op": Op.LLM, "id": request_id, "prompts": prompts, "model": model, "corpus": corpus, "cache": cache}
            )
            reply = self.channel.recv()
        finally:
            # A refused request (budget spent, no model) is answered at once: its round trip counts
            # as compute, so a loop that keeps asking runs into the timeout instead of spinning forever.
            refused = "error" in reply
            self.interrupts.resume(time.monotonic() - waited if refused else 0.0)
        if reply.get("op") != Op.LLM_RESULT or reply.get("id") != request_id:
            raise protocol.ProtocolError("unexpected reply to a sub-call")
        if reply.get("interrupt"):
            raise ExecInterrupted("cancelled")
        if "error" in reply:
            kind = SubcallBudgetExceeded if reply.get("error_type") == "SubcallBudgetExceeded" else LLMError
            raise kind(str(reply["error"]))
        results = reply.get("results")
        if not isinstance(results, list) or len(results) != len(prompts):
            raise protocol.ProtocolError("sub-call reply does not match the request")
        return results

    def _corpus_spans(self, prompts: list[str]) -> list[list[int]] | None:
        """Where each prompt's corpus text comes from (see :mod:`sandbox.worker.locate`); None if it cannot be told."""
        try:
            if self._locator is None:
                from sandbox.worker.locate import (
                    CorpusLocator,  # on first use: a worker that never sub-calls never loads it
                )

                self._locator = CorpusLocator(self._corpus())
            return self._locator.spans_of(prompts)
        except Exception:  # the figure is a nicety: never let it cost the sub-call
            return None

    def rlm_query(self, prompt: Any, context: Any = None) -> str:
        if not issubclass(type(prompt), str):
            raise TypeError(f"rlm_query(prompt, context=None) takes a str prompt, not {type(prompt).__name__}")
        if context is not None:
            if issubclass(type(context), str):
                context = exact_str(context, "context")
            elif issubclass(type(context), list):
                context = str_list(context, "context")
            else:
                raise TypeError("rlm_query's context must be None (the whole corpus), a str, or a list of str")
        return str(self.call_parent("rlm_query", {"prompt": exact_str(prompt, "prompt"), "context": context}))

    def call_parent(self, name: str, args: dict[str, Any]) -> Any:
        """A named request the parent serves (e.g. a nested run); the worker knows only the name."""
        self._request_id += 1
        request_id = self._request_id
        self.interrupts.pause()
        try:
            self.channel.send({"op": Op.CALL, "id": request_id, "name": name, "args": args})
            reply = self.channel.recv()
        finally:
            self.interrupts.resume()
        if reply.get("op") != Op.CALL_RESULT or reply.get("id") != request_id:
            raise protocol.ProtocolError(f"unexpected reply to {name}")
        if reply.get("interrupt"):
            raise ExecInterrupted("cancelled")
        if "error" in reply:
            kind = SubcallBudgetExceeded if reply.get("error_type") == "SubcallBudgetExceeded" else LLMError
            raise kind(str(reply["error"]))
        return reply.get("result")
