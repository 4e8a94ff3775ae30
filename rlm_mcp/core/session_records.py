"""A session's stored record: what a server needs to bring the session back (its corpus and trajectory).

Read through a pydantic model, so a damaged record (garbled bytes, ``{}``, a field
of the wrong type) is reported as damaged, with where it is and what is wrong,
never as a session that does not exist and never as a bare error.
"""

from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel, ValidationError

from rlm_mcp.errors import Damaged, describe_damage
from rlm_mcp.principals import LOCAL


class RecordedDocument(BaseModel):
    name: str
    path: str
    header: str = ""
    encoding: str = "utf-8"
    errors: str = "strict"
    parts: bool = False
    corpus_id: str | None = None
    """For inline content: its id in the corpus store, so any replica can fetch it."""


class SessionRecord(BaseModel):
    id: str
    trajectory_id: str
    created_at: float
    shape: Literal["str", "list"] = "str"
    documents: list[RecordedDocument] = []
    owner: str = LOCAL
    """The principal that created it (records written before owners existed belong to the local one)."""


def parse_record(data: bytes, session_id: str, where: str) -> SessionRecord:
    """The record, or :class:`Damaged` saying where it is, what is wrong and what the client can do."""
    try:
        record = SessionRecord.model_validate_json(data)
    except ValidationError as exc:
        try:
            json.loads(data)
        except ValueError as not_json:
            problem = describe_damage(not_json)
        else:
            problem = describe_damage(exc)
        raise Damaged(
            f"the record of session {session_id!r} ({where}) is damaged: {problem}. The session cannot be "
            "restored; start a new one with load_context (its trajectories, if any, are still readable)"
        ) from None
    if record.id != session_id:
        raise Damaged(
            f"the record of session {session_id!r} ({where}) is damaged: it names another session, {record.id!r}. "
            "The session cannot be restored; start a new one with load_context"
        )
    return record
