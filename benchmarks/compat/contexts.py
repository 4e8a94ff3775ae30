"""Small, deterministic stand-ins for the corpora the collected runs worked on.

A replayed cell only has to meet a ``context`` of the shape its run expected
(the same line format, the ids and phrases its code searches for), not the
original data, which is neither redistributable nor needed: the point is to
compare the sandbox with CPython on the same input. Each generator takes the
trajectory's ``params`` and a seed and returns a ``str`` or a ``list[str]``;
the same arguments always give the same text.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

Context = str | list[str]

WORDS = (  # noqa: SIM905 - a word list reads better as prose
    "the of and to in is was for on that with as by at from they this which were are an be have had not but or "
    "one all when there what so up out if about who into time more some could other than then only over also after "
    "two how work first well way new because any most give day river market harbor stone winter garden letter "
    "engine signal bridge paper window summer orange copper silent narrow gentle rapid hollow bright distant"
).split()

TREC_LABELS = (
    "numeric value",
    "entity",
    "location",
    "description and abstract concept",
    "abbreviation",
    "human being",
)
QUESTIONS = (
    "How many years old is Benny Carter ?",
    "What war saw battles at Parrot 's Beak and Black Virgin ?",
    "When was Calypso music invented ?",
    "What does the word LASER mean ?",
    "Who killed Caesar ?",
    "Where were the 1960 Summer Olympics held ?",
    "What is the difference between fatalism and determinism ?",
    "How much did Alaska cost when bought from Russia ?",
    "What is Toulmin logic ?",
    "Boxing Day is celebrated on what date ?",
    "What U.S. state has the lowest highest elevation ?",
    "Who invented the telephone ?",
)
SMS = (
    "Congrats! 2 mobile 3G Videophones R yours. call 09063458130 now!",
    "Free msg. Sorry, a service you ordered could not be delivered. Please top up.",
    "URGENT! Your Mobile No was awarded a 2,000 Bonus Caller Prize. Call now",
    "Ok lar... Joking wif u oni...",
    "I'll be home soon, do you want me to pick up some milk?",
    "Sorry, I'll call later in the meeting.",
)
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _sentence(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 14))).capitalize() + "."


def _paragraphs(rng: random.Random, count: int) -> list[str]:
    return [" ".join(_sentence(rng) for _ in range(rng.randint(2, 5))) for _ in range(count)]


def _date(rng: random.Random) -> str:
    return f"{rng.choice(MONTHS)} {rng.randint(1, 28):02d}, {rng.randint(2022, 2025)}"


def prose(rng: random.Random, params: dict[str, Any]) -> Context:
    """Paragraphs of filler with ``inserts`` (phrases repeated as asked) spread through them."""
    paragraphs = _paragraphs(rng, int(params.get("paragraphs", 40)))
    for phrase, times in params.get("inserts", {}).items():
        for _ in range(int(times)):
            i = rng.randrange(len(paragraphs))
            paragraphs[i] = f"{paragraphs[i]} {phrase}"
    head = params.get("head", "")
    return head + "\n\n".join(paragraphs) + params.get("tail", "")


def literal(rng: random.Random, params: dict[str, Any]) -> Context:
    """The text itself (runs whose context was the user's prompt)."""
    return params["text"] if "text" in params else list(params["texts"])


def oolong(rng: random.Random, params: dict[str, Any]) -> Context:
    """OOLONG-style lines: ``Date: ... || User: <id> || Instance: <text>`` between a header and a recall footer."""
    spam = params.get("kind") == "spam"
    pool = SMS if spam else QUESTIONS
    users = [str(rng.randint(10000, 99999)) for _ in range(int(params.get("users", 12)))]
    rows = [(rng.choice(users), rng.choice(pool)) for _ in range(int(params.get("lines", 120)))]
    for user, times in params.get("include_users", {}).items():
        rows += [(user, rng.choice(pool)) for _ in range(int(times))]
    rng.shuffle(rows)
    if spam:
        what = f"{len(rows)} text messages, one per line. Each text message can be classified as spam or ham."
    else:
        what = (
            f"{len(rows)} general-knowledge questions, one per line. Each question has an answer that can be "
            "described as one of 6 categories: " + ", ".join(f"'{label}'" for label in TREC_LABELS) + "."
        )
    intro = (
        f"The following lines contain {what}\n\nYou will be asked to answer questions about the aggregate label "
        "statistics across all examples in this dataset. Do not try to guess, estimate, or approximate the result.\n\n"
    )
    body = "\n".join(f"Date: {_date(rng)} || User: {user} || Instance: {text}" for user, text in rows)
    return f"{intro}{body}\nRecall: the preceding lines contain {what}\n\n{params.get('question', '')}\n"


def graph(rng: random.Random, params: dict[str, Any]) -> Context:
    """GraphWalks-style: instructions, ``a -> b`` edge lines, and an ``Operation:`` line."""
    nodes = [f"{rng.getrandbits(40):010x}" for _ in range(int(params.get("nodes", 60)))]
    target = params["target"]
    edges = [(rng.choice(nodes), rng.choice(nodes)) for _ in range(int(params.get("edges", 150)))]
    edges += [(parent, target) for parent in params.get("parents", [])]
    edges += [(target, rng.choice(nodes))]
    rng.shuffle(edges)
    lines = "\n".join(f"{a} -> {b}" for a, b in edges)
    return (
        "\n\nYou will be given a graph as a list of directed edges. All nodes are at least degree 1.\n"
        "Here is an example:\n<begin example>\nuvwx -> alke\nabcd -> uvwx\n<end example>\n\n"
        f"Here is the graph to operate on:\nThe graph has the following edges:\n{lines}\n\n\n"
        f"Operation:\nFind the parents of node {target}.\n\nReturn your final answer as a list of nodes.\n"
        "Final Answer: [node1, node2, node3]\n"
    )


def conversations(rng: random.Random, params: dict[str, Any]) -> Context:
    """MRCR-style: example conversations of ``User:``/``Assistant:`` turns, one of them the sought request."""
    topics = ["ducks", "illusions", "flamingoes", "bridges", "tea", "winter"]
    forms = ["tweet", "poem", "blog post", "riddle"]
    turns = [
        f"User: Write a {rng.choice(forms)} about {rng.choice(topics)} in {rng.choice(['archaic', 'technical'])} style."
        f"\n\nAssistant: {' '.join(_paragraphs(rng, 2))}"
        for _ in range(int(params.get("turns", 30)))
    ]
    for request in params.get("requests", []):
        turns.insert(rng.randrange(len(turns)), f"{request}\n\nAssistant: {' '.join(_paragraphs(rng, 2))}")
    return (
        "Here are some examples of conversations succeeded by a follow-up question answered correctly:\n"
        "======== EXAMPLE 1 ========\n\n" + "\n\n".join(turns) + f"\n\n{params.get('question', '')}\n"
    )


def candidates(rng: random.Random, params: dict[str, Any]) -> Context:
    """AdaLEval-style: a question, then ``Candidate answers:`` labelled ``A1:``, ``A2:``, ..."""
    count = int(params.get("count", 40))
    answers = "\n\n".join(f"A{i}: {' '.join(_paragraphs(rng, 1))}" for i in range(1, count + 1))
    return f"Question:\n\n{params.get('question', '')}\n\nCandidate answers:\n{answers}\n"


def documents(rng: random.Random, params: dict[str, Any]) -> Context:
    """A list of documents, each ``---\\ndoc_id: <id>\\n---\\n<text>`` (or with a custom ``header`` format)."""
    header = params.get("header", "---\ndoc_id: {id}\n---\n")
    count = int(params.get("count", 24))
    return [header.format(id=rng.randint(1000, 999999)) + "\n".join(_paragraphs(rng, 2)) for _ in range(count)]


def sections(rng: random.Random, params: dict[str, Any]) -> Context:
    """Markdown-like text in ``### Header`` sections, or as a list of such sections."""
    parts = [f"### {rng.choice(WORDS).capitalize()} {i}\n" + "\n".join(_paragraphs(rng, 2)) for i in range(8)]
    return parts if params.get("as_list") else "\n\n".join(parts)


GENERATORS: dict[str, Callable[[random.Random, dict[str, Any]], Context]] = {
    "prose": prose,
    "literal": literal,
    "oolong": oolong,
    "graph": graph,
    "conversations": conversations,
    "candidates": candidates,
    "documents": documents,
    "sections": sections,
}


def build(spec: dict[str, Any], seed: str) -> Context:
    """The context a trajectory's ``context`` spec describes; ``seed`` (the trajectory id) fixes its text."""
    generator = GENERATORS[spec["generator"]]
    value = generator(random.Random(seed), dict(spec.get("params", {})))
    if spec.get("shape", "str") == "list" and isinstance(value, str):
        return [value]
    return value
