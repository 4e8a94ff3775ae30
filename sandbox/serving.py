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
from sandbox.results import CallHandler, SubcallHandler, SubcallRefused, SubcallReply

log = logging.getLogger(__name__)


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
    cache = fields.flag("cache")
    if on_subcall is None:
        return {"op": "llm_result", "id": request_id, "error": "sub-calls are not available in this sandbox"}
    try:
        # Handlers that know nothing of the cache are called as before; cache=False only when the code asked.
        replies = await (on_subcall(prompts, model) if cache else on_subcall(prompts, model, cache=False))
    except SubcallRefused as exc:
        return {"op": "llm_result", "id": request_id, "error": str(exc), "error_type": exc.error_type}
    except Exception as exc:  # a fault in the handler must not leave the worker waiting for ever
        log.exception("sub-call handler failed")
        return {"op": "llm_result", "id": request_id, "error": f"the sub-call failed in the server ({exc!r})"}
    if len(replies) != len(prompts):
        replies = [SubcallReply(error="internal error: reply count mismatch")] * len(prompts)
    return {"op": "llm_result", "id": request_id, "results": [r.to_message() for r in replies]}


async def serve_call(message: dict[str, Any], on_call: CallHandler | None) -> dict[str, Any]:
    fields = Fields(message, "the parent-call request")
    request_id, name, args = fields.count("id"), fields.text("name", 100), fields.mapping("args")
    if on_call is None:
        return {"op": "call_result", "id": request_id, "error": f"{name} is not available here"}
    try:
        result = await on_call(name, clean_json(args))
    except SubcallRefused as exc:
        return {"op": "call_result", "id": request_id, "error": str(exc), "error_type": exc.error_type}
    except Exception as exc:  # the handler's bug must not leave the worker waiting for a reply
        log.exception("parent-call handler failed")
        return {"op": "call_result", "id": request_id, "error": f"{name} failed: {exc!r}"}
    return {"op": "call_result", "id": request_id, "result": result}
