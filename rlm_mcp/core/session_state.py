"""One session: a sandbox and its corpus under an id the client holds, its budget, and the record it writes.

:mod:`rlm_mcp.core.sessions` starts, revives, evicts and closes them; this module
is what a tool holding a session works with.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rlm_mcp.config import Settings
from rlm_mcp.core.subcalls.broker import Budget
from rlm_mcp.core.subcalls.cache import Occurrences
from rlm_mcp.principals import LOCAL
from sandbox import LoadInfo, Sandbox, SandboxLimits

if TYPE_CHECKING:
    from rlm_mcp.sources import InlineStore

MB = 1024 * 1024


def session_budget(settings: Settings) -> Budget:
    """What repl_exec sub-calls of one session may spend."""
    return Budget(settings.max_sub_calls, max_tokens=settings.max_tokens, max_cost_usd=settings.max_cost_usd)


def sandbox_limits(settings: Settings) -> SandboxLimits:
    return SandboxLimits(
        exec_timeout_s=settings.exec_timeout_s,
        kill_grace_s=settings.kill_grace_s,
        memory_bytes=settings.worker_memory_mb * MB,
        max_corpus_bytes=settings.max_corpus_mb * MB,
        max_output_chars=settings.max_output_chars,
        max_code_chars=settings.max_code_chars,
    )


@dataclass
class Session:
    id: str
    trajectory_id: str
    created_at: float
    sandbox: Sandbox
    budget: Budget
    info: LoadInfo | None = None
    last_used: float = field(default_factory=time.time)
    busy: int = 0
    runs: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """Said once, in the next result: e.g. that the session was restored after a restart."""
    saved_at: float = 0.0
    owner: str = LOCAL
    """The principal that created it; no other can see or use it (:mod:`rlm_mcp.principals`)."""
    loaded_at: float = 0.0
    """When the corpus was last (re)loaded: a corpus file touched after that is someone else's too."""
    seen: Occurrences = field(default_factory=Occurrences)
    """Repeats of each sub-call request made by repl_exec, for the cache (:mod:`rlm_mcp.core.subcalls.cache`)."""

    def record(self, corpora: InlineStore | None = None) -> dict[str, Any]:
        documents = []
        for d in self.sandbox.documents:
            entry: dict[str, Any] = {
                "name": d.name,
                "path": str(d.path),
                "header": d.header,
                "encoding": d.encoding,
                "errors": d.errors,
                "parts": d.parts,
            }
            corpus_id = corpora.corpus_id_of(d.path) if corpora is not None else None
            if corpus_id is not None:
                entry["corpus_id"] = corpus_id
            documents.append(entry)
        return {
            "id": self.id,
            "trajectory_id": self.trajectory_id,
            "created_at": self.created_at,
            "shape": self.sandbox.shape,
            "documents": documents,
            "owner": self.owner,
        }

    def take_notes(self) -> list[str]:
        notes, self.notes = self.notes, []
        return notes
