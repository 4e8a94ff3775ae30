"""Deterministic corpora for the benchmark tasks, each with its ground truth.

Sizes are in tokens at about 4 characters per token (the estimate rlm-mcp
reports too). Everything is generated from a seed, except the TREC questions,
which are read from the Li & Roth files (see BENCHMARKS.md for source and terms).
"""

from __future__ import annotations

import itertools
import random
import re
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHARS_PER_TOKEN = 4
TREC_LABELS = ("ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM")
WORDS = (  # noqa: SIM905 - a word list reads better as prose
    "the of and to in is was for on that with as by at from his her they this which were are an be have had not "
    "but or one all when there their what so up out if about who them into time more these some could other than "
    "then now only its over also after use two how our work first well way even new want because any most give "
    "day river market harbor stone winter garden letter engine signal bridge paper window summer orange copper "
    "silent narrow gentle rapid hollow bright distant ancient careful sudden quiet heavy"
).split()


@dataclass
class Corpus:
    """What a task loads (a file or a directory) and what it should find."""

    path: Path
    chars: int
    truth: dict[str, Any] = field(default_factory=dict)


def _sentences(rng: random.Random, count: int) -> list[str]:
    out = []
    for _ in range(count):
        words = [rng.choice(WORDS) for _ in range(rng.randint(6, 16))]
        out.append(" ".join(words).capitalize() + ".")
    return out


def _filler_lines(rng: random.Random, chars: int, pool: list[str] | None = None) -> list[str]:
    pool = pool or _sentences(rng, 3000)
    lines, total = [], 0
    while total < chars:
        line = " ".join(rng.choice(pool) for _ in range(rng.randint(1, 3)))
        lines.append(line)
        total += len(line) + 1
    return lines


def _name(rng: random.Random, syllables: int = 2) -> str:
    parts = ["ka", "lo", "mi", "ra", "ven", "tor", "sa", "del", "qui", "ban", "fe", "zo", "nar", "lis", "gor", "ut"]
    return "".join(rng.choice(parts) for _ in range(syllables)).capitalize()


# -- S-NIAH ------------------------------------------------------------------------------------


def niah(directory: Path, tokens: int, seed: int = 1) -> Corpus:
    rng = random.Random(seed)
    key = f"{_name(rng, 3)}-{rng.randint(100, 999)}"
    number = str(rng.randint(1_000_000, 9_999_999))
    lines = _filler_lines(rng, tokens * CHARS_PER_TOKEN)
    depth = rng.random()
    lines.insert(int(len(lines) * depth), f"The special magic number for {key} is {number}.")
    path = directory / f"niah-{tokens}.txt"
    text = "\n".join(lines) + "\n"
    path.write_text(text)
    return Corpus(path, len(text), {"key": key, "answer": number, "depth": round(depth, 3)})


# -- OOLONG over TREC ----------------------------------------------------------------------------


def read_trec(trec_dir: Path) -> list[tuple[str, str]]:
    """(coarse label, question) pairs from the Li & Roth files; one byte 0xF0 is read as Latin-1."""
    pairs = []
    for name in ("train_5500.label", "TREC_10.label"):
        for line in (trec_dir / name).read_text("latin-1").splitlines():
            label, _, question = line.partition(" ")
            pairs.append((label.split(":")[0], question.strip()))
    return pairs


def oolong(directory: Path, tokens: int, trec: list[tuple[str, str]], seed: int = 2, users: int = 60) -> Corpus:
    """One question per line with an id, a date and a user; the label is hidden (only the oracle knows it)."""
    rng = random.Random(seed)
    order = list(range(len(trec)))
    lines, labels, line_users = [], {}, {}
    total, target = 0, tokens * CHARS_PER_TOKEN
    for i in itertools.count():
        if total >= target:
            break
        if i % len(order) == 0:
            rng.shuffle(order)
        label, question = trec[order[i % len(order)]]
        ident = f"{i:07d}"
        user = rng.randrange(users)
        date = f"2023-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        line = f"Id: {ident} || Date: {date} || User: {user:03d} || Instance: {question}"
        lines.append(line)
        labels[ident] = label
        line_users[ident] = user
        total += len(line) + 1
    path = directory / f"oolong-{tokens}.txt"
    text = "\n".join(lines) + "\n"
    path.write_text(text)
    counts = {label: sum(1 for v in labels.values() if v == label) for label in TREC_LABELS}
    per_user: dict[int, dict[str, int]] = {}
    for ident, label in labels.items():
        per_user.setdefault(line_users[ident], {}).setdefault(label, 0)
        per_user[line_users[ident]][label] += 1
    chosen = sorted(u for u, c in per_user.items() if c.get("LOC", 0) > c.get("NUM", 0))
    pairs = sorted((f"{a:03d}", f"{b:03d}") for a, b in itertools.combinations(chosen, 2))
    truth = {"counts": counts, "hum": counts["HUM"], "pairs": pairs, "lines": len(lines), "labels": labels}
    return Corpus(path, len(text), truth)


# -- multi-hop over documents --------------------------------------------------------------------


def multihop(directory: Path, tokens: int, seed: int = 3) -> Corpus:
    """Reports where one fact leads to another: project -> chief engineer (one document) -> city (another)."""
    rng = random.Random(seed)
    root = directory / f"multihop-{tokens}"
    root.mkdir()
    target_chars = tokens * CHARS_PER_TOKEN
    n_docs = max(4, target_chars // 6000)
    projects = [f"Project {_name(rng, 2)}{i}" for i in range(max(4, n_docs // 2))]
    people = [f"{_name(rng)} {_name(rng, 3)}" for _ in projects]
    cities = [f"{_name(rng, 2)}ville" for _ in projects]
    pool = _sentences(rng, 3000)
    docs = [_filler_lines(rng, target_chars // n_docs, pool) for _ in range(n_docs)]
    for project, person, city in zip(projects, people, cities, strict=True):
        a, b = rng.sample(range(n_docs), 2)
        docs[a].insert(rng.randrange(len(docs[a]) + 1), f"Dr. {person} serves as chief engineer of {project}.")
        docs[b].insert(rng.randrange(len(docs[b]) + 1), f"{person} has lived in {city} for many years.")
    chars = 0
    for i, lines in enumerate(docs):
        text = "\n".join(lines) + "\n"
        (root / f"report-{i:05d}.txt").write_text(text)
        chars += len(text)
    pick = rng.randrange(len(projects))
    return Corpus(root, chars, {"project": projects[pick], "person": people[pick], "answer": cities[pick]})


# -- a code corpus -------------------------------------------------------------------------------


def code(directory: Path, tokens: int, seed: int = 4) -> Corpus:
    """A generated Python package: which functions call the target, which classes have close(), where a class is."""
    rng = random.Random(seed)
    root = directory / f"code-{tokens}" / "pkg"
    root.mkdir(parents=True)
    target_chars = tokens * CHARS_PER_TOKEN
    n_modules = max(3, target_chars // 2000)
    verbs = ["load", "parse", "send", "read", "write", "check", "build", "merge", "split", "scan"]
    nouns = ["frame", "record", "packet", "index", "block", "entry", "token", "batch", "page", "chunk"]
    target = "decode_frame"
    special = rng.randrange(n_modules)
    callers: list[str] = []
    closers = 0
    chars = 0
    for m in range(n_modules):
        module = f"mod_{m:05d}"
        out = [f'"""Module {m}: helpers for {rng.choice(nouns)} handling."""', "", "import os", ""]
        if m == 0:
            out += [f"def {target}(data):", "    return data[4:]", ""]
        for f in range(3):
            name = f"{rng.choice(verbs)}_{rng.choice(nouns)}_{m}_{f}"
            calls = [f"{rng.choice(verbs)}_{rng.choice(nouns)}_{rng.randrange(n_modules)}_{rng.randrange(3)}"]
            if rng.random() < min(0.5, 8 / n_modules / 3 + 0.0005):
                calls.append(target)
                callers.append(f"{module}.{name}")
            out += [f"def {name}(value, limit=10):", f'    """{" ".join(_sentences(rng, 1))}"""', "    total = 0"]
            out += [f"    total += len({call}(value))" for call in calls]
            out += ["    return total if total < limit else limit", ""]
        cls = "FrameDecoder" if m == special else f"{rng.choice(nouns).capitalize()}Handler{m}"
        methods = ["open", "close"] if rng.random() < 0.2 else ["open", "flush"]
        closers += "close" in methods
        out += [f"class {cls}:", f'    """{" ".join(_sentences(rng, 1))}"""', ""]
        for method in methods:
            out += [f"    def {method}(self):", "        return os.getpid()", ""]
        text = "\n".join(out) + "\n"
        (root / f"{module}.py").write_text(text)
        chars += len(text)
    truth = {
        "target": target,
        "callers": sorted(callers),
        "closers": closers,
        "decoder_module": f"mod_{special:05d}.py",
    }
    return Corpus(root.parent, chars, truth)


def non_latin_line(rng: random.Random) -> str:
    """A line of Cyrillic and CJK words, for the load benchmark's non-Latin corpus."""
    cyrillic = "".join(chr(c) for c in range(0x430, 0x450))
    cjk = "".join(chr(c) for c in range(0x4E00, 0x4E40))
    words = ["".join(rng.choice(cyrillic) for _ in range(rng.randint(3, 9))) for _ in range(8)]
    words += ["".join(rng.choice(cjk) for _ in range(rng.randint(2, 4))) for _ in range(4)]
    rng.shuffle(words)
    return " ".join(words)


def ascii_line(rng: random.Random) -> str:
    return " ".join("".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(2, 9))) for _ in range(12))


def write_sized(path: Path, size_bytes: int, make_line: Callable[[random.Random], str], seed: int = 5) -> None:
    """A file of about ``size_bytes``: a block of generated lines repeated (fast for a gigabyte)."""
    rng = random.Random(seed)
    block = ("\n".join(make_line(rng) for _ in range(2000)) + "\n").encode()
    with path.open("wb") as f:
        written = 0
        while written < size_bytes:
            f.write(block)
            written += len(block)


def parse_answer_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip() and line.strip() != "NONE"]


ID_LINE = re.compile(r"^Id: (\d+) \|\| .*?\|\| Instance: (.*)$", re.M)
