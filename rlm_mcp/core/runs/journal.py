"""What a run keeps so that it can be continued: the root's transcript, and its REPL's last snapshot.

The trajectory records what happened for people to read; it is not what the root
was sent (tool-call ids, notes folded into tool results, the nudges after an
empty reply). So next to it, under the same id, each run keeps:

- its *transcript*: the messages exactly as sent to the root model, in a log
  (``runs/<id>.jsonl``: ``append`` records as the run goes, and a ``reset`` record
  when a resumed run starts from a repaired copy), written as each turn's reply
  arrives and as each turn ends, so a crash loses at most the turn in flight;
- its *state*: the snapshot of the REPL's plain-data variables taken after the
  last step (``runs/<id>.state.json``, replaced each time; see
  :mod:`sandbox.worker.snapshot`), within ``RLM_SNAPSHOT_MAX_MB``.

Both belong to the trajectory's owner and go when it goes (:func:`drop`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.to_thread

from rlm_mcp.core.runs.replies import Protocol
from rlm_mcp.models import Block, Message, TextBlock, ToolCall, ToolResult
from rlm_mcp.store import KeyNotFound, Store
from sandbox import Sandbox, SandboxError
from sandbox.protocol import ProtocolError
from sandbox.snapshot_check import Snapshot

log = logging.getLogger(__name__)


def dump_message(message: Message) -> dict[str, Any]:
    blocks: list[dict[str, Any]] = []
    for block in message.content:
        if isinstance(block, TextBlock):
            blocks.append({"text": block.text})
        elif isinstance(block, ToolCall):
            blocks.append({"tool_call": {"id": block.id, "name": block.name, "input": block.input}})
        else:
            blocks.append({"tool_result": {"id": block.tool_call_id, "text": block.text, "is_error": block.is_error}})
    return {"role": message.role, "content": blocks}


def load_message(raw: Any) -> Message:
    """A message as :func:`dump_message` wrote it; ValueError for anything else."""
    if not isinstance(raw, dict) or raw.get("role") not in ("user", "assistant"):
        raise ValueError("not a message")
    blocks: list[Block] = []
    for item in raw.get("content") or []:
        if isinstance(item, dict) and isinstance(item.get("text"), str):
            blocks.append(TextBlock(item["text"]))
        elif isinstance(item, dict) and isinstance(call := item.get("tool_call"), dict):
            if not isinstance(call.get("id"), str) or not isinstance(call.get("name"), str):
                raise ValueError("a tool call without an id or name")
            blocks.append(ToolCall(call["id"], call["name"], call.get("input")))
        elif isinstance(item, dict) and isinstance(result := item.get("tool_result"), dict):
            if not isinstance(result.get("id"), str) or not isinstance(result.get("text"), str):
                raise ValueError("a tool result without an id or text")
            blocks.append(ToolResult(result["id"], result["text"], result.get("is_error") is True))
        else:
            raise ValueError("an unknown block")
    if not blocks:
        raise ValueError("a message without content")
    return Message(raw["role"], blocks)


@dataclass(frozen=True)
class Transcript:
    messages: list[Message]
    protocol: Protocol
    damaged: int = 0
    """Records that could not be read and were skipped (each logged)."""


@dataclass(frozen=True)
class SavedState:
    snapshot: Snapshot
    after_step: int


def _log(trajectory_id: str) -> str:
    return trajectory_id


STATE_SUFFIX = ".state.json"


def _state_key(trajectory_id: str) -> str:
    return f"{trajectory_id}{STATE_SUFFIX}"


class RunJournal:
    """Writes one run's transcript and state as it goes (errors are logged: the run itself goes on)."""

    def __init__(self, store: Store, trajectory_id: str, *, snapshot_bytes: int, written: int = 0):
        self.store = store
        self.trajectory_id = trajectory_id
        self.snapshot_bytes = snapshot_bytes
        self.written = written
        """Messages of the transcript already in the store."""
        self.unsaved: str | None = None
        """Why the transcript or the last snapshot could not be saved, if so (told once, in the next step's notes)."""

    async def _append(self, record: dict[str, Any]) -> None:
        data = json.dumps(record, ensure_ascii=False).encode("utf-8", "surrogatepass")
        await anyio.to_thread.run_sync(self.store.append, _log(self.trajectory_id), data)

    async def sync(self, messages: list[Message], protocol: Protocol) -> None:
        """Write the messages added since the last call."""
        if len(messages) <= self.written:
            return
        fresh = messages[self.written :]
        try:
            await self._append({"kind": "append", "protocol": protocol, "messages": [dump_message(m) for m in fresh]})
            self.written = len(messages)
        except Exception as exc:  # the run goes on; the next sync writes these messages too
            log.warning("could not save the transcript of %s", self.trajectory_id, exc_info=True)
            self.unsaved = f"the run's transcript could not be saved ({exc}); a resume would start from an earlier turn"

    async def reset(self, messages: list[Message], protocol: Protocol) -> None:
        """Start the transcript over from ``messages`` (a resumed run's repaired copy)."""
        await self._append({"kind": "reset", "protocol": protocol, "messages": [dump_message(m) for m in messages]})
        self.written = len(messages)

    async def save_state(self, sandbox: Sandbox, after_step: int) -> None:
        """Snapshot the REPL's variables after ``after_step``, replacing the last one."""
        if self.snapshot_bytes <= 0:
            return
        try:
            snapshot = await sandbox.snapshot(self.snapshot_bytes)
        except SandboxError as exc:
            self.unsaved = f"the REPL's variables could not be saved for a resume: {exc}"
            return
        record = {"after_step": after_step, **snapshot.to_message()}
        try:
            data = json.dumps(record, ensure_ascii=True, separators=(",", ":")).encode()
            await anyio.to_thread.run_sync(self.store.write, _state_key(self.trajectory_id), data)
        except Exception as exc:
            log.warning("could not save the REPL state of %s", self.trajectory_id, exc_info=True)
            self.unsaved = f"the REPL's variables could not be saved for a resume ({exc})"


async def read_transcript(store: Store, trajectory_id: str) -> Transcript | None:
    """The transcript as last written; None when the run kept none (recorded before runs could resume)."""
    try:
        records = await anyio.to_thread.run_sync(store.read_log, _log(trajectory_id))
    except KeyNotFound:
        return None
    messages: list[Message] = []
    protocol: Protocol = "tools"
    damaged = 0
    for raw in records:
        try:
            record = json.loads(raw.data)
            batch = [load_message(m) for m in record["messages"]]
        except (ValueError, KeyError, TypeError):
            log.warning("a damaged transcript record of %s was skipped (%s)", trajectory_id, raw.where)
            damaged += 1
            continue
        protocol = "text" if record.get("protocol") == "text" else "tools"
        messages = batch if record.get("kind") == "reset" else messages + batch
    return Transcript(messages, protocol, damaged) if messages else None


async def read_state(store: Store, trajectory_id: str, max_bytes: int) -> tuple[SavedState | None, str | None]:
    """The last snapshot, checked again as untrusted data, or None and, if it exists but is damaged, why."""
    try:
        raw = await anyio.to_thread.run_sync(store.read, _state_key(trajectory_id))
        record = json.loads(raw)
        after = record.get("after_step") if isinstance(record, dict) else None
        if type(after) is not int:
            raise ValueError("it names no step")
        return SavedState(Snapshot.parse(record, max(max_bytes, len(raw)), "the saved state"), after), None
    except KeyNotFound:
        return None, None
    except (ValueError, ProtocolError) as exc:
        log.warning("the saved REPL state of %s is damaged: %s", trajectory_id, exc)
        return None, f"the saved variables are damaged ({exc}) and were not restored"


def drop(store: Store, trajectory_id: str) -> None:
    """Remove a run's transcript and state (blocking): for retention, when its trajectory goes."""
    store.delete(_state_key(trajectory_id))
    store.delete_log(_log(trajectory_id))
