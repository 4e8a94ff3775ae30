"""How much one sandbox may use: time, memory, output, message and code sizes.

The worker's address-space and CPU limits are final for its life (hard = soft,
see :mod:`sandbox.worker.confine`), so they are sized here, by the parent, for what the
worker will be asked to do: memory for the corpus it holds with room to grow,
CPU for its whole life rather than one call.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

_MIB = 1024**2
_GIB = 1024**3
_SLOWEST_LOAD_BYTES_PER_S = 5 * _MIB
_SLOWEST_LOAD_FILES_PER_S = 100
"""Small files cost per file, not per byte: 48,000 of them must not run into a deadline set by their size."""


@dataclass(frozen=True)
class SandboxLimits:
    exec_timeout_s: float = 60.0
    """Compute time one ``execute`` may take before the soft interrupt."""
    kill_grace_s: float = 5.0
    """How long after the soft interrupt the process group is killed."""
    memory_bytes: int = 2 * _GIB
    """Address space for the worker on top of what its corpus needs."""
    corpus_memory_factor: int = 5
    """Address space reserved per byte of corpus: UTF-8 text may widen to 4 bytes per character."""
    max_corpus_bytes: int = 4 * _GIB
    min_corpus_room_bytes: int = 64 * _MIB
    """The smallest corpus a worker's memory is sized for (so small appends seldom need a new worker)."""
    cpu_seconds: float = 3600.0
    """CPU time one worker process may use in its life (see :meth:`cpu_allowance`); a request that
    might need more than is left gets a fresh worker first."""
    max_output_chars: int = 20_000
    max_final_chars: int = 1_000_000
    max_message_bytes: int = 256 * 1024 * 1024
    """Largest message the parent will read from the worker; a bigger one kills it."""
    max_code_chars: int = 200_000
    start_timeout_s: float = 30.0

    def corpus_room(self, corpus_bytes: int) -> int:
        """The corpus size a worker is sized for: the next power of two (``min_corpus_room_bytes`` at least),
        within the maximum. Room to grow means appending a few documents seldom needs a new worker."""
        room = max(corpus_bytes, self.min_corpus_room_bytes, 1)
        room = 1 << (room - 1).bit_length()
        return max(min(room, self.max_corpus_bytes), corpus_bytes)

    def memory_for(self, corpus_bytes: int) -> int:
        """The address-space limit (hard = soft) of a worker started for ``corpus_bytes`` of corpus."""
        return self.memory_bytes + self.corpus_memory_factor * self.corpus_room(corpus_bytes)

    def exec_cpu_s(self, timeout: float | None = None) -> float:
        """The most CPU one ``execute`` can use before the parent kills the worker."""
        return (timeout or self.exec_timeout_s) + self.kill_grace_s + 1

    def load_seconds(self, corpus_bytes: int, files: int = 0) -> float:
        """How long a load of ``corpus_bytes`` in ``files`` files may take (wall clock, and so CPU too).

        The CPU checks leave ``files`` out: opening and handing over a file is mostly the parent's and the
        kernel's time, and counting it would make a fresh worker look too small for a folder of many files.
        """
        return self.start_timeout_s + corpus_bytes / _SLOWEST_LOAD_BYTES_PER_S + files / _SLOWEST_LOAD_FILES_PER_S

    def cpu_allowance(self) -> int:
        """The CPU-time limit (hard = soft) of a worker: ``cpu_seconds``, and never less than one
        execution at the timeout plus a load of the largest corpus, so a fresh worker can serve any request."""
        least = self.exec_cpu_s() + self.load_seconds(self.max_corpus_bytes)
        return math.ceil(max(self.cpu_seconds, least))
