"""Printed output, kept to a bounded head and tail so a print flood cannot fill memory."""

from __future__ import annotations


def truncation_marker(omitted: int) -> str:
    return f"\n[... {omitted:,} characters omitted ...]\n"


class OutputCapture:
    """A write-only text sink that remembers the first and last ``limit // 2`` characters.

    The middle of a long output is dropped as it arrives; ``getvalue`` joins head
    and tail with a marker that says how much was cut, so the reader knows.
    """

    def __init__(self, limit: int):
        self.limit = max(limit, 2)
        self._head_limit = self.limit // 2
        self._tail_limit = self.limit - self._head_limit
        self._head: list[str] = []
        self._head_len = 0
        self._tail: list[str] = []
        self._tail_len = 0
        self.total = 0

    def write(self, text: str) -> int:
        if type(text) is not str:  # a str subclass's own __len__ and slicing could lie: keep its characters
            if not issubclass(type(text), str):
                raise TypeError(f"write() argument must be str, not {type(text).__name__}")
            text = str.__str__(text)
        n = len(text)
        self.total += n
        if self._head_len < self._head_limit:
            take = text[: self._head_limit - self._head_len]
            self._head.append(take)
            self._head_len += len(take)
            text = text[len(take) :]
            if not text:
                return n
        self._tail.append(text)
        self._tail_len += len(text)
        if self._tail_len > 2 * self._tail_limit:
            joined = "".join(self._tail)[-self._tail_limit :]
            self._tail = [joined]
            self._tail_len = len(joined)
        return n

    def flush(self) -> None:
        pass

    @property
    def truncated(self) -> bool:
        return self.total > self._head_limit + self._tail_limit

    def getvalue(self) -> str:
        head = "".join(self._head)
        tail = "".join(self._tail)
        if not self.truncated:
            return head + tail
        tail = tail[-self._tail_limit :]
        return head + truncation_marker(self.total - len(head) - len(tail)) + tail
