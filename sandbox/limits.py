"""How much one sandbox may use: time, memory, output, message and code sizes."""

from __future__ import annotations

from dataclasses import dataclass

_GIB = 1024**3


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
    max_output_chars: int = 20_000
    max_final_chars: int = 1_000_000
    max_message_bytes: int = 256 * 1024 * 1024
    """Largest message the parent will read from the worker; a bigger one kills it."""
    max_code_chars: int = 200_000
    start_timeout_s: float = 30.0

    def memory_for(self, corpus_bytes: int) -> tuple[int, int]:
        """Soft and hard address-space limits for a worker holding ``corpus_bytes`` of corpus."""
        soft = self.memory_bytes + self.corpus_memory_factor * corpus_bytes
        hard = self.memory_bytes + self.corpus_memory_factor * self.max_corpus_bytes
        return soft, max(soft, hard)
