"""Answering what running code asks of its parent: sub-calls (``llm_query``) and named calls.

Requests come from untrusted code, so they are checked field by field: a
request the worker's own code would never send (a missing or mistyped field)
is a protocol violation (:class:`~sandbox.protocol.ProtocolError`), and the
worker is replaced. Whatever the handler does with a well-formed request
(refuse, fail, raise by mistake), the worker always gets a reply, never
silence that would leave it waiting.
"""

from __future__ import annotations

import logging
from typing import Any

from sandbox.fields import Fields, clean_text
from sandbox.protocol import Op, ProtocolError
from sandbox.results import CallHandler, Spans, SubcallHandler, SubcallRefused, SubcallReply

log = logging.getLogger(__name__)
MAX_SPAN_NUMBERS = 32
"""A prompt's corpus spans as sent by the worker: at most 16 (start, end) pairs."""
MAX_OFFSET = 2**53
"""No corpus offset reaches this (the corpus is capped in bytes far below it)."""


def parse_spans(raw: list[Any] | None, count: int) -> Spans | None:
    """The worker's corpus spans for ``count`` prompts, by prompt index; None when the worker could not tell.

    On the wire they are sparse: ``[index, start, end, start, end, ...]`` for each prompt that has any, in
    ascending prompt order; a prompt missing from the result has no corpus text. The worker's own code
    never sends anything else, so a malformed entry is a protocol violation, not a figure to guess at.
    """
    if raw is None:
        return None
    out: Spans = {}
    last = -1
    for entry in raw:
        if type(entry) is not list or not 3 <= len(entry) <= MAX_SPAN_NUMBERS + 1 or len(entry) % 2 == 0:
            raise ProtocolError("the sub-call request's corpus spans are not [index, start, end, ...] lists")
        if not all(type(x) is int and 0 <= x < MAX_OFFSET for x in entry):
            raise ProtocolError("the sub-call request's corpus spans hold something other than offsets")
        index = entry[0]
        pairs = [(entry[i], entry[i + 1]) for i in range(1, len(entry), 2)]
        if not last < index < count or any(end < start for start, end in pairs):
            raise ProtocolError("the sub-call request's corpus spans do not match its prompts")
        out[index] = pairs
        last = index
    return out


def clean_json(value: Any) -> Any:
    """Strings from the worker made safe to encode (user code can build lone surrogates)."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, list):
        return [clean_json(v) for v in value]
    if isinstance(value, dict):
        return {clean_text(k): clean_json(v) for k, v in value.items()}
    return value


async def serve_subcall(message: dict[str, Any], on_subcall: SubcallHandler | None) -> dict[str, Any]:
    fields = Fields(message, "the sub-call request")
    request_id, prompts, model = fields.count("id"), fields.texts("prompts", None), fields.optional_text("model", 500)
    spans = parse_spans(fields.optional_items("corpus"), len(prompts))
    cache = fields.flag("cache")
    if on_subcall is None:
        return {"op": Op.LLM_RESULT, "id": request_id, "error": "sub-calls are not available in this sandbox"}
    try:
        # Handlers that know nothing of the cache are called as before; cache=False only when the code asked.
        replies = await (on_subcall(prompts, model, spans) if cache else on_subcall(prompts, model, spans, cache=False))
    except SubcallRefused as exc:
        return {"op": Op.LLM_RESULT, "id": request_id, "error": str(exc), "error_type": exc.error_type}
    except Exception as exc:  # a fault in the handler must not leave the worker waiting for ever
        log.exception("sub-call handler failed")
        return {"op": Op.LLM_RESULT, "id": request_id, "error": f"the sub-call failed in the server ({exc!r})"}
    if len(replies) != len(prompts):
        replies = [SubcallReply(error="internal error: reply count mismatch")] * len(prompts)
    return {"op": Op.LLM_RESULT, "id": request_id, "results": [r.to_message() for r in replies]}


async def serve_call(message: dict[str, Any], on_call: CallHandler | None) -> dict[str, Any]:
    fields = Fields(message, "the parent-call request")
    request_id, name, args = fields.count("id"), fields.text("name", 100), fields.mapping("args")
    if on_call is None:
        return {"op": Op.CALL_RESULT, "id": request_id, "error": f"{name} is not available here"}
    try:
        result = await on_call(name, clean_json(args))
    except SubcallRefused as exc:
        return {"op": Op.CALL_RESULT, "id": request_id, "error": str(exc), "error_type": exc.error_type}
    except Exception as exc:  # the handler's bug must not leave the worker waiting for a reply
        log.exception("parent-call handler failed")
        return {"op": Op.CALL_RESULT, "id": request_id, "error": f"{name} failed: {exc!r}"}
    return {"op": Op.CALL_RESULT, "id": request_id, "result": result}
