"""Deterministic answers for sub-calls, shared by the CPython replay and the sandbox's sub-call handler.

Both sides of a comparison must see the same sub-model, so the answer is a
pure function of the prompt. It is shaped a little like what the collected
runs received (a label when the prompt lists labels, a number when it asks for
a score, YES/NO when asked), because later cells parse it; which label or
number comes back is chosen by a hash of the prompt.
"""

from __future__ import annotations

import hashlib

TREC_LABELS = (
    "numeric value",
    "entity",
    "location",
    "description and abstract concept",
    "abbreviation",
    "human being",
)
CHOICES = (
    (("spam", "ham"), ("spam", "ham")),
    (("'relevant'", "'irrelevant'"), ("relevant", "irrelevant")),
    (("'yes'", "'no'"), ("Yes", "No")),
    (("yes or no",), ("YES", "NO")),
    (("up, down, or stable",), ("up", "down", "stable")),
    (("use_lemma",), ("USE_LEMMA", "USE_CONTRADICTION", "Because 2 = p^2/q^2 has no solution.")),
)
SCORE_HINTS = ("0 to 10", "0-10", "0–10", "relevance score", "single number", "only the number")


def _digest(prompt: str) -> int:
    return int(hashlib.sha256(prompt.encode("utf-8", "surrogatepass")).hexdigest()[:12], 16)


def sub_answer(prompt: str, model: str | None = None) -> str:
    """What the stand-in sub-model answers to ``prompt``: the same text on every call and on both sides."""
    h = _digest(prompt)
    lower = prompt.lower()
    for cues, answers in CHOICES:
        if all(cue in lower for cue in cues):
            return answers[h % len(answers)]
    if sum(label in lower for label in TREC_LABELS) >= 3:
        return TREC_LABELS[h % len(TREC_LABELS)]
    if any(hint in lower for hint in SCORE_HINTS):
        return str(h % 11)
    return f"stub answer {h % 10_000}"


def nested_answer(prompt: str, context: object = None) -> str:
    """What a nested run (``rlm_query``) answers."""
    return "nested " + sub_answer(prompt)
