"""The tasks, modelled on the RLM paper's: a corpus, a question, a scripted root, an oracle sub-model, a score.

The root is scripted (the same Python a capable root writes: probe, chunk,
fan out with ``llm_query_batched``, aggregate in code, ``FINAL``), so runs are
deterministic and the measurements are of rlm-mcp, not of a model. The
sub-model is an oracle that answers each prompt exactly from the text it was
sent, through the real Bedrock code path; it also records every chunk, which
gives the coverage figure: the share of the corpus the sub-model saw, and how
much of it more than once.
"""

from __future__ import annotations

import ast
import json
import re
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import corpora
from rlm_mcp.testing.bedrock import ConverseRequest, Reply, code, scripted

MARK = "\n\nTEXT:\n"
CHUNK_CHARS = 100_000

HELPERS = f"""
MARK = {MARK!r}

def chunk_text(text, size):
    out, start = [], 0
    while start < len(text):
        end = min(start + size, len(text))
        if end < len(text):
            cut = text.rfind("\\n", start, end)
            if cut > start:
                end = cut + 1
        out.append(text[start:end])
        start = end
    return out

def chunk_docs(docs, size):
    out, group, used = [], [], 0
    for doc in docs:
        if group and used + len(doc) > size:
            out.append("".join(group))
            group, used = [], 0
        group.append(doc)
        used += len(doc)
    if group:
        out.append("".join(group))
    return out
"""

PROBE = "print(len(context))\nfirst = context if isinstance(context, str) else context[0]\nprint(first[:300])"


class Oracle:
    """The sub-model: answers from the text in the prompt, records what it saw, takes ``latency`` seconds."""

    def __init__(self, answer: Callable[[str, str], str], latency: float):
        self.answer = answer
        self.latency = latency
        self.chunks: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, request: ConverseRequest) -> Reply:
        prompt = request.last_user_text
        instruction, _, text = prompt.partition(MARK)
        with self.lock:
            self.chunks.append(text)
        out = self.answer(instruction, text)
        return Reply(text=out, delay_s=self.latency, input_tokens=len(prompt) // 4, output_tokens=max(1, len(out) // 4))

    def coverage(self, corpus_lines: Counter[str]) -> dict[str, float]:
        seen: Counter[str] = Counter()
        for chunk in self.chunks:
            seen.update(chunk.splitlines())
        total = sum(corpus_lines.values()) or 1
        covered = sum(min(seen[line], n) for line, n in corpus_lines.items())
        repeated = sum(max(0, seen[line] - n) for line, n in corpus_lines.items())
        return {"coverage": covered / total, "repeated": repeated / total}


@dataclass
class Question:
    query: str
    steps: list[str]
    answer: Callable[[str, str], str]
    score: Callable[[str | None], float]


@dataclass
class Task:
    name: str
    title: str
    build: Callable[[Path, int], corpora.Corpus]
    questions: Callable[[corpora.Corpus], list[Question]]
    load: dict[str, Any] = field(default_factory=dict)


def f1(predicted: set[Any], truth: set[Any]) -> float:
    if not predicted and not truth:
        return 1.0
    hits = len(predicted & truth)
    if not hits:
        return 0.0
    precision, recall = hits / len(predicted), hits / len(truth)
    return 2 * precision * recall / (precision + recall)


# -- S-NIAH --------------------------------------------------------------------------------------


def niah_questions(corpus: corpora.Corpus) -> list[Question]:
    key, number = corpus.truth["key"], corpus.truth["answer"]
    ask = f"Find the special magic number for {key} in the text. Answer with the number only, or NONE."
    fan_out = HELPERS + (
        f"chunks = chunk_text(context, {CHUNK_CHARS})\n"
        f"answers = llm_query_batched([{ask!r} + MARK + c for c in chunks])\n"
        "found = [a.strip() for a in answers if a.strip() != 'NONE']\n"
        "print(len(chunks), 'chunks; found:', found)"
    )
    pattern = re.compile(rf"The special magic number for {re.escape(key)} is (\d+)\.")

    def answer(instruction: str, text: str) -> str:
        match = pattern.search(text)
        return match.group(1) if match else "NONE"

    return [
        Question(
            query=f"What is the special magic number for {key} mentioned in the text?",
            steps=[PROBE, fan_out, "FINAL(found[0] if found else 'not found')"],
            answer=answer,
            score=lambda got: float((got or "").strip() == number),
        )
    ]


# -- OOLONG over TREC ----------------------------------------------------------------------------

LABEL_ASK = (
    "Label each question below with its coarse TREC class: ABBR (abbreviation), DESC (description), "
    "ENTY (entity), HUM (human being), LOC (location) or NUM (numeric value). "
    "Answer with one line per question: <Id> <LABEL>."
)
LABEL_FAN_OUT = HELPERS + (
    f"chunks = chunk_text(context, {CHUNK_CHARS})\n"
    f"answers = llm_query_batched([{LABEL_ASK!r} + MARK + c for c in chunks])\n"
    "labels = {}\n"
    "for a in answers:\n"
    "    for line in a.splitlines():\n"
    "        parts = line.split()\n"
    "        if len(parts) == 2:\n"
    "            labels[parts[0]] = parts[1]\n"
    "from collections import Counter\n"
    "print(len(chunks), 'chunks;', len(labels), 'labelled;', Counter(labels.values()).most_common())"
)


def label_oracle(labels: dict[str, str]) -> Callable[[str, str], str]:
    def answer(instruction: str, text: str) -> str:
        return "\n".join(f"{m.group(1)} {labels[m.group(1)]}" for m in corpora.ID_LINE.finditer(text))

    return answer


def oolong_questions(corpus: corpora.Corpus) -> list[Question]:
    labels = corpus.truth["labels"]
    truth_count = corpus.truth["hum"]

    def score_count(got: str | None) -> float:
        try:
            return 0.75 ** abs(int((got or "").strip()) - truth_count)  # OOLONG's score for numeric answers
        except ValueError:
            return 0.0

    return [
        Question(
            query="How many of these questions are about a human being (an individual, a group or a title)?",
            steps=[PROBE, LABEL_FAN_OUT, "FINAL(sum(1 for v in labels.values() if v == 'HUM'))"],
            answer=label_oracle(labels),
            score=score_count,
        )
    ]


PAIRS_AGGREGATE = """
import re, json, itertools
users = dict(re.findall(r"(?m)^Id: (\\d+) \\|\\| Date: [^|]* \\|\\| User: (\\d+)", context))
per_user = {}
for ident, label in labels.items():
    counts = per_user.setdefault(users[ident], {})
    counts[label] = counts.get(label, 0) + 1
chosen = sorted(u for u, c in per_user.items() if c.get('LOC', 0) > c.get('NUM', 0))
pairs = [list(p) for p in itertools.combinations(chosen, 2)]
print(len(users), 'users;', len(chosen), 'chosen;', len(pairs), 'pairs')
FINAL(json.dumps(pairs))
"""


def pairs_questions(corpus: corpora.Corpus) -> list[Question]:
    truth = {tuple(p) for p in corpus.truth["pairs"]}

    def score(got: str | None) -> float:
        try:
            predicted = {tuple(p) for p in json.loads(got or "[]")}
        except ValueError:
            return 0.0
        return f1(predicted, truth)

    return [
        Question(
            query="List every pair of users (by user id, smaller first) who both asked more questions about "
            "locations (LOC) than about numeric values (NUM).",
            steps=[PROBE, LABEL_FAN_OUT, PAIRS_AGGREGATE],
            answer=label_oracle(corpus.truth["labels"]),
            score=score,
        )
    ]


# -- multi-hop -----------------------------------------------------------------------------------


def multihop_questions(corpus: corpora.Corpus) -> list[Question]:
    project, city = corpus.truth["project"], corpus.truth["answer"]
    hop1 = f"Who is the chief engineer of {project}? Answer with the full name only, or NONE."
    first = HELPERS + (
        f"chunks = chunk_docs(context, {CHUNK_CHARS})\n"
        f"answers = llm_query_batched([{hop1!r} + MARK + c for c in chunks])\n"
        "names = [a.strip() for a in answers if a.strip() != 'NONE']\n"
        "print(len(chunks), 'chunks;', names)"
    )
    second = (
        "name = names[0]\n"
        "docs = [d for d in context if name in d]  # code narrows the second hop to what mentions the person\n"
        "ask = 'Where does ' + name + ' live? Answer with the city only, or NONE.'\n"
        "cities = [a.strip() for a in llm_query_batched([ask + MARK + d for d in docs]) if a.strip() != 'NONE']\n"
        "print(len(docs), 'documents;', cities)"
    )

    def answer(instruction: str, text: str) -> str:
        if instruction.startswith("Who is the chief engineer of "):
            wanted = instruction.removeprefix("Who is the chief engineer of ").split("?")[0]
            match = re.search(rf"Dr\. (.+?) serves as chief engineer of {re.escape(wanted)}\.", text)
        else:
            person = instruction.removeprefix("Where does ").split(" live?")[0]
            match = re.search(rf"{re.escape(person)} has lived in (\S+) for many years", text)
        return match.group(1) if match else "NONE"

    return [
        Question(
            query=f"In which city does the chief engineer of {project} live?",
            steps=[PROBE, first, second, "FINAL(cities[0] if cities else 'unknown')"],
            answer=answer,
            score=lambda got: float((got or "").strip() == city),
        )
    ]


# -- code QA ----------------------------------------------------------------------------------------

HEADER = re.compile(r"^==> (.+?) <==$", re.M)


def callers_in(text: str, target: str) -> list[str]:
    found = []
    pieces = HEADER.split(text)
    for name, source in zip(pieces[1::2], pieces[2::2], strict=False):
        module = Path(name).stem
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and any(
                isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == target for n in ast.walk(node)
            ):
                found.append(f"{module}.{node.name}")
    return found


def code_questions(corpus: corpora.Corpus) -> list[Question]:
    truth = corpus.truth
    target = truth["target"]
    ask = (
        f"List every function in the code below that calls {target}() directly, as module.function "
        "(the module is the file name without .py), one per line, or NONE."
    )
    callers = HELPERS + (
        f"chunks = chunk_docs(context, {CHUNK_CHARS})\n"
        f"answers = llm_query_batched([{ask!r} + MARK + c for c in chunks])\n"
        "callers = sorted({l.strip() for a in answers for l in a.splitlines() if l.strip() and l.strip() != 'NONE'})\n"
        "print(len(chunks), 'chunks;', len(callers), 'callers')"
    )
    closers = (
        "import re\n"
        "count = 0\n"
        "for doc in context:\n"
        "    for block in re.split(r'(?m)^class ', doc)[1:]:\n"
        "        if re.search(r'(?m)^    def close\\(', block.split('\\nclass ')[0]):\n"
        "            count += 1\n"
        "print(count)"
    )
    where = (
        "import re\n"
        "hits = [d.split(' <==')[0][4:] for d in context if re.search(r'(?m)^class FrameDecoder\\b', d)]\n"
        "print(hits)"
    )

    def answer(instruction: str, text: str) -> str:
        return "\n".join(callers_in(text, target)) or "NONE"

    return [
        Question(
            query=f"Which functions call {target}() directly?",
            steps=[PROBE, callers, "FINAL('\\n'.join(callers))"],
            answer=answer,
            score=lambda got: f1(set(corpora.parse_answer_lines(got or "")), set(truth["callers"])),
        ),
        Question(
            query="How many classes define a method named close?",
            steps=[PROBE, closers, "FINAL(count)"],
            answer=answer,
            score=lambda got: float((got or "").strip() == str(truth["closers"])),
        ),
        Question(
            query="In which file is the class FrameDecoder defined?",
            steps=[PROBE, where, "FINAL(hits[0] if hits else 'not found')"],
            answer=answer,
            score=lambda got: float((got or "").strip().endswith(truth["decoder_module"])),
        ),
    ]


def all_tasks(trec: list[tuple[str, str]] | None) -> list[Task]:
    tasks = [Task("s-niah", "S-NIAH (needle in a haystack)", corpora.niah, niah_questions)]
    if trec is not None:

        def build(directory: Path, tokens: int) -> corpora.Corpus:
            return corpora.oolong(directory, tokens, trec)

        tasks.append(Task("oolong", "OOLONG-style counting (TREC, labels hidden)", build, oolong_questions))
        tasks.append(Task("oolong-pairs", "OOLONG-Pairs-style pair finding (F1)", build, pairs_questions))
    tasks.append(Task("multi-hop", "Multi-hop over documents", corpora.multihop, multihop_questions))
    tasks.append(Task("code-qa", "Code corpus questions (3)", corpora.code, code_questions))
    return tasks


def root_script(question: Question, sub_respond: Oracle) -> Callable[[ConverseRequest], Reply]:
    from benchmarks.harness import ROOT_MODEL

    return scripted(ROOT_MODEL, [code(step) for step in question.steps], sub=sub_respond)


def corpus_lines(corpus: corpora.Corpus) -> Counter[str]:
    paths = [corpus.path] if corpus.path.is_file() else sorted(p for p in corpus.path.rglob("*") if p.is_file())
    lines: Counter[str] = Counter()
    for path in paths:
        lines.update(path.read_text().splitlines())
    return lines
