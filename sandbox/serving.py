"""Answering what running code asks of its parent: sub-calls (``llm_query``) and named calls.

Requests come from untrusted code, so they are checked field by field; whatever
the handler does (refuse, fail, raise by mistake), the worker always gets a
reply, never silence that would leave it waiting.
"""

from __future__ import annotations

import logging
from typing import Any

from sandbox.results import CallHandler, SubcallHandler, SubcallRefused, SubcallReply, clean_text

log = logging.getLogger(__name__)
MAX_SPAN_NUMBERS = 32
"""A prompt's corpus spans as sent by the worker: at most 16 (start, end) pairs."""


def parse_spans(raw: Any, count: int) -> dict[int, list[tuple[int, int]]] | None:
    """The worker's corpus spans by prompt index, checked (they come from the sandbox), or None if unusable.

    On the wire they are sparse: ``[index, start, end, start, end, ...]`` for each prompt that has any;
    a prompt missing from the result has no corpus text.
    """
    if not isinstance(raw, list) or len(raw) > count:
        return None
    out: dict[int, list[tuple[int, int]]] = {}
    for entry in raw:
        if not isinstance(entry, list) or len(entry) % 2 == 0 or len(entry) > MAX_SPAN_NUMBERS + 1:
            return None
        if not all(type(x) is int and x >= 0 for x in entry):
            return None
        index = entry[0]
        pairs = [(entry[i], entry[i + 1]) for i in range(1, len(entry), 2)]
        if index >= count or index in out or any(end < start for start, end in pairs):
            return None
        out[index] = pairs
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
    request_id = message.get("id")
    prompts, model = message.get("prompts"), message.get("model")
    if not isinstance(prompts, list) or not all(isinstance(p, str) for p in prompts):
        return {"op": "llm_result", "id": request_id, "error": "malformed sub-call request"}
    if model is not None and not isinstance(model, str):
        return {"op": "llm_result", "id": request_id, "error": "model must be a string"}
    if on_subcall is None:
        return {"op": "llm_result", "id": request_id, "error": "sub-calls are not available in this sandbox"}
    try:
        spans = parse_spans(message.get("corpus"), len(prompts))
        replies = await on_subcall([clean_text(p) for p in prompts], model, spans)
    except SubcallRefused as exc:
        return {"op": "llm_result", "id": request_id, "error": str(exc), "error_type": exc.error_type}
    except Exception as exc:  # a fault in the handler must not leave the worker waiting for ever
        log.exception("sub-call handler failed")
        return {"op": "llm_result", "id": request_id, "error": f"the sub-call failed in the server ({exc!r})"}
    if len(replies) != len(prompts):
        replies = [SubcallReply(error="internal error: reply count mismatch")] * len(prompts)
    return {"op": "llm_result", "id": request_id, "results": [r.to_message() for r in replies]}


async def serve_call(message: dict[str, Any], on_call: CallHandler | None) -> dict[str, Any]:
    request_id, name, args = message.get("id"), message.get("name"), message.get("args")
    if not isinstance(name, str) or not isinstance(args, dict):
        return {"op": "call_result", "id": request_id, "error": "malformed request"}
    if on_call is None:
        return {"op": "call_result", "id": request_id, "error": f"{clean_text(name, 100)} is not available here"}
    try:
        result = await on_call(clean_text(name, 100), clean_json(args))
    except SubcallRefused as exc:
        return {"op": "call_result", "id": request_id, "error": str(exc), "error_type": exc.error_type}
    except Exception as exc:  # the handler's bug must not leave the worker waiting for a reply
        log.exception("parent-call handler failed")
        return {"op": "call_result", "id": request_id, "error": f"{name} failed: {exc!r}"}
    return {"op": "call_result", "id": request_id, "result": result}
