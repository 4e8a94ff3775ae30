"""The compatibility corpus on disk: trajectories of real model-written cells, with their sources.

One JSON file per source under ``tests/compat/corpus/``; ``tests/compat/README.md``
describes the format and where every file came from. Cells keep the order of
their run, because a cell uses the variables the ones before it made.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

ROOT = Path(__file__).resolve().parents[2]
CORPUS_DIR = ROOT / "tests" / "compat" / "corpus"
KNOWN_REFUSALS = ROOT / "tests" / "compat" / "known_refusals.json"

Label = Literal["harmless", "harmful"]
LABELS = ("harmless", "harmful")
COMPARE_MODES = ("all", "errors")


@dataclass(frozen=True)
class Cell:
    id: str
    code: str
    label: Label = "harmless"
    compare: str = "all"
    """``all``: stdout, final and error type must match; ``errors``: only the error type (output is random or timed)."""
    note: str = ""


@dataclass(frozen=True)
class Trajectory:
    id: str
    source: str
    """Where the cells come from: a URL or ``owner/repo@commit:path``."""
    license: str
    model: str
    kind: str
    """``trajectory`` (a logged run), ``prompt-examples`` (code shown in a system prompt) or ``docs-example``."""
    context: dict[str, Any]
    setup: str = ""
    """Runner-side code run first on both sides: names of the source's REPL dialect (``answer``, ``SUBMIT``...)."""
    cells: tuple[Cell, ...] = field(default_factory=tuple)
    source_group: str = ""

    @property
    def shape(self) -> str:
        return str(self.context.get("shape", "str"))


def _trajectory(raw: dict[str, Any], group: str) -> Trajectory:
    cells = tuple(
        Cell(
            id=f"{raw['id']}#{index}",
            code=cell["code"],
            label=cell.get("label", "harmless"),
            compare=cell.get("compare", "all"),
            note=cell.get("note", ""),
        )
        for index, cell in enumerate(raw["cells"], start=1)
    )
    return Trajectory(
        id=raw["id"],
        source=raw["source"],
        license=raw["license"],
        model=raw.get("model", "unknown"),
        kind=raw["kind"],
        context=raw["context"],
        setup=raw.get("setup", ""),
        cells=cells,
        source_group=group,
    )


def load_corpus(directory: Path = CORPUS_DIR) -> list[Trajectory]:
    """Every trajectory of every corpus file, in file order."""
    trajectories = []
    for path in sorted(directory.glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        group = data.get("group", path.stem)
        trajectories += [_trajectory(raw, group) for raw in data["trajectories"]]
    return trajectories


def load_known_refusals(path: Path = KNOWN_REFUSALS) -> dict[str, str]:
    """Cell id -> why it does not yet run as in CPython (the strict-xfail list of ``tests/sandbox/test_compat.py``)."""
    if not path.exists():
        return {}
    return dict(json.loads(path.read_text(encoding="utf-8")))


def write_known_refusals(reasons: dict[str, str], path: Path = KNOWN_REFUSALS) -> None:
    path.write_text(json.dumps(dict(sorted(reasons.items())), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
