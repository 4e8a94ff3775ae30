"""What a load tells as it goes and when it is done: progress reports, and the files left out.

Resolving a folder runs in a worker thread; :func:`scan_watcher` gives it a
callback that reports the files looked at so far on the event loop (at most
every :data:`LOAD_PROGRESS_INTERVAL_S`). The sandbox then reads the documents
and :func:`read_reporter` reports each batch it has read. Files of a folder that
do not decode are left out by the sandbox; :func:`decode_skips` words them for
``skipped``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import anyio.from_thread

from rlm_mcp.progress import Progress, ProgressReporter, size_text
from rlm_mcp.sources import LoadTally, ResolvedSource
from sandbox import LoadInfo

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
