"""``load_context``: a corpus resolved from text, a path or an earlier corpus id, read into a session's sandbox.

A load starts a session, or appends documents to one the caller owns. It tells
as it goes and when it is done: progress reports, and the files left out.
Resolving a folder runs in a worker thread; :func:`scan_watcher` gives it a
callback that reports the files looked at so far on the event loop (at most
every :data:`LOAD_PROGRESS_INTERVAL_S`). The sandbox then reads the documents
and :func:`read_reporter` reports each batch it has read. Files of a folder that
do not decode are left out by the sandbox; :func:`decode_skips` words them for
``skipped``.
"""

from __future__ import annotations

import codecs
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Literal

import anyio
import anyio.from_thread
import anyio.to_thread

from rlm_mcp.config import Settings
from rlm_mcp.core.ids import check_id
from rlm_mcp.core.sessions import SessionManager
from rlm_mcp.core.trajectories import TrajectoryStore
from rlm_mcp.errors import InvalidInput, NotFound
from rlm_mcp.models import CHARS_PER_TOKEN
from rlm_mcp.principals import LOCAL
from rlm_mcp.progress import Progress, ProgressReporter, size_text
from rlm_mcp.schemas import LoadContextResult
from rlm_mcp.sources import LoadOptions, LoadTally, ResolvedSource, Sources, document_header
from rlm_mcp.sources.resolved import too_large
from rlm_mcp.store import StoreError
from sandbox import LoadError, LoadInfo

log = logging.getLogger(__name__)
LOAD_PROGRESS_INTERVAL_S = 0.25
"""At most four load progress reports a second while looking at files: each is a message to the client."""


def decode_skips(source: ResolvedSource, info: LoadInfo) -> list[str]:
    """Files of a folder that did not decode, as the sandbox left them out, in ``skipped``'s words."""
    return [
        f"{source.documents[index].name}: {reason}; errors='replace' (or the right encoding) loads it"
        for index, reason in info.skipped
        if 0 <= index < len(source.documents)
    ]


def scan_watcher(progress: ProgressReporter | None) -> Callable[[LoadTally], None] | None:
    """Called in the resolving thread: reports the files looked at so far on the event loop."""
    if progress is None:
        return None

    def watch(tally: LoadTally) -> None:
        message = f"looking at files: {tally.files:,} so far, {size_text(tally.bytes)}"
        report = Progress(tally.files, None, message, phase="scan", done=tally.files, size=tally.bytes)
        try:
            anyio.from_thread.run(progress, report)
        except Exception:  # a client gone away must not stop the load
            log.debug("load progress dropped", exc_info=True)

    return watch


def read_reporter(
    progress: ProgressReporter | None, scanned: int, files: int
) -> Callable[[int, int], Awaitable[None]] | None:
    """Reports the sandbox reading the documents; the value goes on from where looking at files ended."""
    if progress is None:
        return None

    async def read(done: int, size: int) -> None:
        message = f"reading {done:,} of {files:,} files, {size_text(size)}"
        await progress(Progress(scanned + done, scanned + files, message, phase="read", done=done, of=files, size=size))

    return read


def nothing_decoded(path: str | None, encoding: str, source: ResolvedSource, info: LoadInfo) -> str:
    """A folder whose every text file failed to decode: say so, with the first one and what to do."""
    first = decode_skips(source, info)[:1]
    return f"no text files to load under {path!r}: none of its {len(info.skipped)} text files is valid {encoding}" + (
        f" ({first[0]})" if first else ""
    )


class Loader:
    """Serves ``load_context``; ``stored`` is told whenever the stored data changed (a new corpus or session)."""

    def __init__(
        self,
        settings: Settings,
        sessions: SessionManager,
        sources: Sources,
        trajectories: TrajectoryStore,
        stored: Callable[[], None],
    ):
        self.settings = settings
        self.sessions = sessions
        self.sources = sources
        self.trajectories = trajectories
        self.stored = stored

    async def load(
        self,
        *,
        content: str | None = None,
        path: str | None = None,
        name: str | None = None,
        session_id: str | None = None,
        encoding: str = "utf-8",
        errors: str = "strict",
        include: list[str] | None = None,
        exclude: list[str] | None = None,
        format: Literal["auto", "text"] = "auto",
        corpus_id: str | None = None,
        progress: ProgressReporter | None = None,
        owner: str = LOCAL,
    ) -> LoadContextResult:
        """Load a corpus; ``progress`` hears files and bytes as they are looked at, then as the sandbox reads them."""
        if sum(x is not None for x in (content, path, corpus_id)) != 1:
            raise InvalidInput(
                "give exactly one of `content` (the text itself), `path` (a file, directory, glob or s3:// URL) "
                "or `corpus_id` (the id an earlier load_context returned for inline content)"
            )
        if path is None and (include or exclude):
            raise InvalidInput(
                "include/exclude select files of a directory or S3 prefix; they do not apply to content or corpus_id"
            )
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise InvalidInput(f"unknown encoding {encoding!r}") from None
        options = LoadOptions(
            max_bytes=self.settings.max_corpus_mb * 1024 * 1024,
            encoding=encoding,
            errors=errors,
            format=format,
            include=tuple(include or ()),
            exclude=tuple(exclude or ()),
        )
        if session_id is not None:
            check_id(session_id, "session")
        if session_id is not None and not await self.sessions.owns(session_id, owner):
            raise self.sessions.missing(session_id)  # before any work: another's session is no session
        tally = LoadTally(watch=scan_watcher(progress), interval=LOAD_PROGRESS_INTERVAL_S)
        source = await self._resolve(content, path, name, options, corpus_id, owner, tally)
        if source.total_bytes == 0:
            raise InvalidInput("the corpus is empty: there is nothing to load")
        reading = read_reporter(progress, tally.files, len(source.documents))
        if session_id is None:
            session = await self.sessions.create(owner, source.documents)
            try:
                info = await session.sandbox.load(source.documents, shape=source.shape, progress=reading)
                if not info.documents:
                    raise NotFound(nothing_decoded(path, encoding, source, info))
            except LoadError as exc:
                with anyio.CancelScope(shield=True):
                    await self.sessions.close(session.id)
                raise InvalidInput(str(exc)) from None
            except BaseException:
                with anyio.CancelScope(shield=True):
                    await self.sessions.close(session.id)
                raise
            added = info.documents
        else:
            async with self.sessions.use(session_id, owner) as session:
                before = session.info.documents if session.info else 0
                existing = session.sandbox.documents
                first_header = document_header(existing[0].name) if existing and session.sandbox.shape == "str" else ""
                added_docs = [
                    d if d.header or d.parts else replace(d, header=document_header(d.name)) for d in source.documents
                ]
                try:
                    info = await session.sandbox.load(
                        added_docs, shape="list", append=True, first_header=first_header, progress=reading
                    )
                except LoadError as exc:
                    raise InvalidInput(str(exc)) from None
                added = info.documents - before
        session.info = info
        session.loaded_at = time.time()
        self.stored()  # the stored data changed: list_sessions measures it again
        single = len(source.documents) == 1
        try:
            await self.sessions.save(session)
        except StoreError as exc:
            if session_id is None:  # a session nobody could revive is not started
                with anyio.CancelScope(shield=True):
                    await self.sessions.close(session.id)
                raise StoreError(f"the session could not be saved, so it was not started: {exc}") from None
            raise StoreError(
                f"the documents were added to the session, but its record could not be saved (a restart would "
                f"bring the session back without them): {exc}"
            ) from None
        try:
            await self.trajectories.update(session.trajectory_id, corpus_chars=info.chars)
        except StoreError as exc:
            log.warning("session %s: %s", session.id, exc)
        return LoadContextResult(
            session_id=session.id,
            trajectory_id=session.trajectory_id,
            type=info.type,
            documents=info.documents,
            chars=info.chars,
            lines=info.lines,
            estimated_tokens=info.chars // CHARS_PER_TOKEN,
            preview=info.preview,
            added_documents=added,
            corpus_id=self.sources.inline.corpus_id_of(source.documents[0].path) if single else None,
            skipped=(source.skipped + decode_skips(source, info))[:50],
            notes=session.take_notes(),
        )

    async def _resolve(
        self,
        content: str | None,
        path: str | None,
        name: str | None,
        options: LoadOptions,
        corpus_id: str | None = None,
        owner: str = LOCAL,
        tally: LoadTally | None = None,
    ) -> ResolvedSource:
        if corpus_id is not None:
            return await anyio.to_thread.run_sync(self.sources.inline.attach, corpus_id, name or "inline", owner)
        if content is not None:
            if len(content) > options.max_bytes:  # characters: at least as many bytes
                raise too_large("content", len(content.encode("utf-8", "replace")), options.max_bytes)
            return await anyio.to_thread.run_sync(self.sources.inline.put, content, name or "inline", owner)
        assert path is not None
        source = await anyio.to_thread.run_sync(self.sources.resolve, path, options, tally)
        if source.total_bytes > options.max_bytes:
            raise too_large(repr(path), source.total_bytes, options.max_bytes)
        return source
