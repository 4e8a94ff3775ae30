"""The parent's side of a load: open the documents, hand them to the worker in batches, read its report.

The worker reads the corpus itself, from descriptors the parent opened (the
text is never pushed through the channel, and never held twice in the
server). Descriptors go over in batches, each sent once the worker has read the
one before, so that neither side ever holds more than a batch open whatever
the number of files. Every frame the worker sends back must answer this load
(:meth:`~sandbox.process.WorkerProcess.reply`), and the report is read field
by field.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Awaitable, Callable
from typing import Literal

from sandbox.errors import LoadError, WorkerLost
from sandbox.fields import Fields
from sandbox.process import WorkerProcess
from sandbox.protocol import FD_BATCH, Op, ProtocolError
from sandbox.results import Document, LoadInfo

_LOAD_FRAMES = frozenset({Op.LOAD_MORE, Op.LOADED, Op.LOAD_ERROR})
LoadProgress = Callable[[int, int], Awaitable[None]]
"""Told (documents read, bytes read) each time the worker has read a batch of documents, and at the end."""


def document_sizes(documents: list[Document]) -> list[int]:
    """Bytes on disk of each, without following a final symlink; a document that cannot be read is a LoadError."""
    sizes = []
    for doc in documents:
        try:
            sizes.append(os.stat(doc.path, follow_symlinks=False).st_size)
        except OSError as exc:
            raise LoadError(f"cannot open {doc.name}: {exc.strerror}") from None
    return sizes


def corpus_size(documents: list[Document]) -> int:
    """Bytes on disk, without following a final symlink; a document that cannot be read is a LoadError."""
    return sum(document_sizes(documents))


async def hand_over(
    worker: WorkerProcess,
    documents: list[Document],
    shape: Literal["str", "list"],
    *,
    append: bool,
    first_header: str,
    deadline: float,
    progress: LoadProgress | None = None,
) -> LoadInfo:
    """Load ``documents`` into the worker by ``deadline`` (anyio's clock).

    ``progress`` is told how far the worker has read whenever it asks for the next batch (a ``load_more``
    frame, which must answer this load and name the position the parent expects, like any other) and once
    the report is in.

    Raises :class:`LoadError` when the worker could not decode a document (it is
    still usable), :class:`~sandbox.errors.WorkerLost` when it broke the protocol,
    died or ran out of time (it must be replaced).
    """
    request_id = await worker.request(
        {
            "op": Op.LOAD,
            "mode": "append" if append else "replace",
            "shape": shape,
            "first_header": first_header,
            "batch": FD_BATCH,
            "documents": [
                {
                    "name": d.name,
                    "header": d.header,
                    "encoding": d.encoding,
                    "errors": d.errors,
                    "parts": d.parts,
                    "skip_undecodable": d.skip_undecodable,
                }
                for d in documents
            ],
        }
    )
    sizes = document_sizes(documents) if progress is not None else []
    read_bytes = 0
    reply = None
    try:
        for start in range(0, len(documents), FD_BATCH):
            if start:
                reply = await worker.reply(request_id, _LOAD_FRAMES, "loading", deadline)
                if reply["op"] != Op.LOAD_MORE:
                    break
                if Fields(reply, "the request for more documents").count("done") != start:
                    raise ProtocolError(f"the sandbox asked for documents from a position other than {start}")
                if progress is not None:
                    read_bytes += sum(sizes[start - FD_BATCH : start])
                    await progress(start, read_bytes)
            await _send_fds(worker, documents[start : start + FD_BATCH])
        if reply is None or reply["op"] == Op.LOAD_MORE:
            reply = await worker.reply(request_id, _LOAD_FRAMES - {Op.LOAD_MORE}, "loading", deadline)
        if reply["op"] == Op.LOADED:
            info = LoadInfo.parse(reply, len(documents))
            if progress is not None:
                await progress(len(documents), sum(sizes))
            return info
        message = Fields(reply, "the load error").text("message", 2000)
    except ProtocolError as exc:
        raise WorkerLost("protocol", f"the sandbox sent a malformed reply while loading: {exc}") from None
    raise LoadError(message)


async def _send_fds(worker: WorkerProcess, batch: list[Document]) -> None:
    fds: list[int] = []
    try:
        for doc in batch:
            fds.append(open_document(doc))
        await worker.send_fds(fds)
    finally:
        for fd in fds:
            os.close(fd)


def open_document(doc: Document) -> int:
    """Open without following a final symlink and insist on a regular file."""
    try:
        fd = os.open(doc.path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        raise LoadError(f"cannot open {doc.name}: {exc.strerror}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise LoadError(f"{doc.name} is not a regular file")
    return fd
