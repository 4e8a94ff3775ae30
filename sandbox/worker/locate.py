"""Which parts of a sub-call prompt are corpus text, and where in the corpus they come from.

A prompt is usually instructions around a slice of ``context``. Knowing which
characters are corpus text (and which corpus characters they are) lets the
trajectory say how much of the corpus the sub-models actually read, without
counting instructions and without counting text sent twice.

The worker holds the corpus, so it looks here, before the prompts leave: a
window from the middle of the prompt is searched in the corpus (first just
after where the last match ended, since code usually walks the corpus in
order), then the match is grown both ways as far as prompt and corpus agree,
and what is left on either side is probed the same way. Text that was changed
on its way into the prompt (reformatted, lower-cased) is not found, so the
count is a lower bound. Windows known not to be in the corpus (instructions
repeated in every prompt) are remembered, and the scanning per request is
bounded, so a long corpus costs a few scans per distinct instruction, and
never more than :data:`SCAN_BUDGET_CHARS` plus a few times the prompts' size.
The time counts as the code's compute time.

Offsets are in the concatenation of the documents (``''.join(context)`` for a
list), so spans from any prompt can be merged into one coverage figure.
"""

from __future__ import annotations

import bisect
import itertools
from typing import Any

WINDOW = 48
"""Shortest run of corpus text that is looked for (shorter pieces are not counted)."""
MAX_PROBES = 8
"""Searches per prompt at most."""
MAX_SPANS = 16
"""Spans reported per prompt at most (the longest are kept)."""
NEAR_CHARS = 4 * 1024 * 1024
"""How far past the last match a window is looked for before the whole corpus is searched."""
SCAN_BUDGET_CHARS = 512 * 1024 * 1024
"""Corpus characters one request may scan, on top of four times its prompts' length."""
MAX_MISSES = 4096


class CorpusLocator:
    """Finds corpus text in prompts; one per loaded corpus (it keeps a position hint and known misses)."""

    def __init__(self, context: str | list[str]):
        self.docs: list[str] = [_exact(context)] if type(context) is str else [_exact(d) for d in list(context)]
        self.starts = list(itertools.accumulate((len(d) for d in self.docs), initial=0))
        self._hint = (0, 0)
        self._misses: set[str] = set()
        self._budget = 0

    def spans_of(self, prompts: list[Any]) -> list[list[int]]:
        """The corpus spans of the prompts that have any, as ``[index, start, end, start, end, ...]`` each.

        Sparse, so a flood of tiny prompts costs next to nothing here and on the wire. A prompt too short
        to hold a window of corpus text is not looked at; the others are copied exactly first (a str
        subclass from the code cannot lie about its characters).
        """
        long = [
            (i, str.__str__(p)) for i, p in enumerate(prompts) if issubclass(type(p), str) and str.__len__(p) >= WINDOW
        ]
        self._budget = SCAN_BUDGET_CHARS + 4 * sum(len(text) for _, text in long)
        out: list[list[int]] = []
        for index, text in long:
            spans = self._spans(text)
            if not spans:
                continue
            spans.sort(key=lambda s: s[1] - s[0], reverse=True)
            out.append([index, *(x for span in sorted(spans[:MAX_SPANS]) for x in span)])
        return out

    # -- one prompt ------------------------------------------------------------------------

    def _spans(self, text: str) -> list[tuple[int, int]]:
        spans: list[tuple[int, int]] = []
        matched: list[tuple[int, int]] = []  # in prompt coordinates
        pending = [(0, len(text))]
        probes = 0
        while pending and probes < MAX_PROBES:
            lo, hi = _trim(*pending.pop(), matched)
            if hi - lo < WINDOW:
                continue
            probes += 1
            middle = lo + (hi - lo - WINDOW) // 2
            found = self._find(text[middle : middle + WINDOW])
            if found is None:
                # Not corpus text here: look on both sides of the window (a chunk may sit off-centre).
                pending.extend([(lo, middle), (middle + WINDOW, hi)])
                continue
            doc, at = found
            # A match may grow past where earlier windows missed (a window across two documents), up to
            # the text already matched.
            left = max((end for _, end in matched if end <= middle), default=0)
            right = min((start for start, _ in matched if start >= middle + WINDOW), default=len(text))
            corpus = self.docs[doc]
            start = middle - _agree(text, middle, left, corpus, at, -1)
            end = middle + WINDOW + _agree(text, middle + WINDOW, right, corpus, at + WINDOW, 1)
            matched.append((start, end))
            offset = self.starts[doc] + at - (middle - start)
            spans.append((offset, offset + end - start))
            self._hint = (doc, at + (end - middle))
            pending.extend([(lo, start), (end, hi)])
        return spans

    def _find(self, window: str) -> tuple[int, int] | None:
        """(document, position) of ``window``, near the hint first, then anywhere; None if not in the corpus."""
        if window in self._misses or self._budget <= 0:
            return None
        doc, pos = self._hint
        if doc < len(self.docs):
            near = self.docs[doc].find(window, pos, pos + NEAR_CHARS)
            # Charged what was scanned: up to the match, or the whole stretch when it is not there.
            scanned = near - pos + WINDOW if near >= 0 else min(NEAR_CHARS, len(self.docs[doc]) - pos)
            self._budget -= max(scanned, 0)
            if near >= 0:
                return doc, near
        # Everywhere, in corpus order from the hint on and then from the start.
        order = itertools.chain(range(doc, len(self.docs)), range(0, min(doc, len(self.docs))))
        for index in order:
            text = self.docs[index]
            if self._budget <= 0:
                return None
            found = text.find(window)
            self._budget -= found + WINDOW if found >= 0 else len(text)
            if found >= 0:
                return index, found
        if len(self._misses) < MAX_MISSES:
            self._misses.add(window)
        return None

    def document_of(self, offset: int) -> int:
        """The document a global offset falls in (for tests and tools)."""
        return max(bisect.bisect_right(self.starts, offset) - 1, 0)


def _exact(value: object) -> str:
    """A document as an exact ``str``, read without calling any method of it.

    The worker sets ``context``, but the list is the one user code sees, and code may have put anything in
    it: a ``str`` subclass is copied by its characters (its ``find``, ``__len__`` or ``__getitem__`` are never
    called), anything else counts as an empty document.
    """
    if type(value) is str:
        return value
    if issubclass(type(value), str):
        return str.__str__(value)  # type: ignore[arg-type]
    return ""


def _trim(lo: int, hi: int, matched: list[tuple[int, int]]) -> tuple[int, int]:
    """``[lo, hi)`` without the matched text at either end (a match may have grown into it)."""
    for start, end in matched:
        if start <= lo < end:
            lo = end
        if start < hi <= end:
            hi = start
    return lo, hi


def _agree(text: str, i: int, limit: int, corpus: str, j: int, step: int) -> int:
    """How many characters ``text`` and ``corpus`` share going from ``i`` / ``j`` in direction ``step``.

    Grows by doubling, then halves back: slice comparisons run in C, so a
    100,000-character match costs a few dozen comparisons, not 100,000 steps.
    """
    room = min(limit - i, len(corpus) - j) if step > 0 else min(i - limit, j)
    if room <= 0:
        return 0

    def same(n: int) -> bool:
        if step > 0:
            return text[i : i + n] == corpus[j : j + n]
        return text[i - n : i] == corpus[j - n : j]

    good, size = 0, 64
    while good < room:
        size = min(size, room)
        if not same(size):
            break
        good, size = size, size * 2
    else:
        return good
    bad = size
    while bad - good > 1:
        mid = (good + bad) // 2
        if same(mid):
            good = mid
        else:
            bad = mid
    return good
