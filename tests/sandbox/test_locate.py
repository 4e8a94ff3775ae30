"""Finding corpus text in sub-call prompts (sandbox.worker.locate), the basis of 'share of corpus sent'."""

from __future__ import annotations

import random

from sandbox.worker.locate import WINDOW, CorpusLocator

INSTRUCTION = "Read the following part of a log and list every error you find, one per line, with its time.\n\n"


def corpus_text(size: int, seed: int = 7) -> str:
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet"]
    rng = random.Random(seed)
    out, length = [], 0
    while length < size:
        word = rng.choice(words) + str(rng.randrange(1000))
        out.append(word)
        length += len(word) + 1
    return " ".join(out)[:size]


def covered(flat: list[int]) -> int:
    return sum(flat[i + 1] - flat[i] for i in range(0, len(flat), 2))


def dense(locator: CorpusLocator, prompts: list[str]) -> list[list[int]]:
    """Each prompt's spans as a flat list (the wire format is sparse: only prompts with spans, index first)."""
    out: list[list[int]] = [[] for _ in prompts]
    for entry in locator.spans_of(prompts):
        out[entry[0]] = entry[1:]
    return out


def test_instructions_around_a_chunk_are_not_corpus_text() -> None:
    corpus = corpus_text(20_000)
    locator = CorpusLocator(corpus)
    chunks = [corpus[i : i + 5000] for i in range(0, 20_000, 5000)]
    spans = dense(locator, [INSTRUCTION + c + "\n\nAnswer:" for c in chunks])
    assert spans == [[i, i + 5000] for i in range(0, 20_000, 5000)]


def test_a_list_corpus_has_offsets_in_the_joined_documents() -> None:
    docs = [corpus_text(3000, seed) for seed in range(5)]
    locator = CorpusLocator(docs)
    spans = dense(locator, [INSTRUCTION + docs[3][100:900], docs[1] + "\n---\n" + docs[2]])
    starts = [sum(map(len, docs[:i])) for i in range(6)]
    start = starts[3]
    assert spans[0] == [start + 100, start + 900]
    assert spans[1] == [starts[1], starts[2], starts[2], starts[3]]  # two documents in one prompt: two spans
    assert locator.document_of(start + 100) == 3


def test_text_that_is_not_in_the_corpus_counts_nothing() -> None:
    corpus = corpus_text(10_000)
    locator = CorpusLocator(corpus)
    answers = "Summaries so far: " + " | ".join(f"part {i}: {i * 3} errors" for i in range(40))
    assert dense(locator, [answers, corpus[:3000].upper(), "short"]) == [[], [], []]


def test_pieces_too_short_to_look_for_are_left_out_and_the_rest_is_exact() -> None:
    corpus = corpus_text(10_000)
    locator = CorpusLocator(corpus)
    prompt = INSTRUCTION + corpus[500:520] + "\n" + corpus[4000:4700] + "\n" + corpus[9000:9300]
    flat = dense(locator, [prompt])[0]
    assert flat == [4000, 4700, 9000, 9300]  # the 20-character piece is under the window of 48
    assert WINDOW > 20


def test_a_str_subclass_from_the_code_cannot_change_what_is_counted() -> None:
    corpus = corpus_text(5000)
    locator = CorpusLocator(corpus)

    class Liar(str):
        def __len__(self) -> int:
            return 10**9

        def __getitem__(self, key: object) -> str:
            return "nothing like the corpus"

        def find(self, *args: object) -> int:
            return 0

    assert covered(dense(locator, [Liar(INSTRUCTION + corpus[1000:3000])])[0]) == 2000


def test_scanning_is_bounded_and_misses_are_remembered() -> None:
    corpus = corpus_text(200_000)
    locator = CorpusLocator(corpus)
    prompts = [INSTRUCTION * 3 + corpus[i : i + 1000] for i in range(0, 200_000, 2000)]
    spans = dense(locator, prompts)
    assert [covered(s) for s in spans] == [1000] * 100
    assert any(INSTRUCTION[:10] in miss or miss in INSTRUCTION * 3 for miss in locator._misses)


def test_documents_the_code_put_into_context_are_read_without_calling_them() -> None:
    """``context`` is the list user code sees: it may hold a str subclass or anything else by the first sub-call."""
    docs = [corpus_text(3000, seed) for seed in range(3)]
    called: list[str] = []

    class Lying(str):
        def __len__(self) -> int:
            called.append("__len__")
            return 0

        def __getitem__(self, key: object) -> str:
            called.append("__getitem__")
            return ""

        def find(self, *args: object, **kwargs: object) -> int:
            called.append("find")
            return -1

        def __eq__(self, other: object) -> bool:
            called.append("__eq__")
            return False

        __hash__ = str.__hash__

    context: list[object] = [docs[0], Lying(docs[1]), 12345, docs[2]]
    locator = CorpusLocator(context)  # type: ignore[arg-type]
    spans = dense(locator, [INSTRUCTION + docs[1][200:1200], INSTRUCTION + docs[2][:500]])
    start, after = len(docs[0]), len(docs[0]) + len(docs[1])
    assert spans[0] == [start + 200, start + 1200]  # the subclass read by its characters
    assert spans[1] == [after, after + 500]  # the int counts as an empty document
    assert called == []
