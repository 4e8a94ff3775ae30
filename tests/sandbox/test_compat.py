"""Real model-written RLM code runs in the sandbox exactly as in plain CPython (the compatibility suite).

Every harmless cell of ``tests/compat/corpus/`` is replayed in order, per run, on
both sides (see ``benchmarks/compat``). Cells that the sandbox still refuses on
purpose-to-be-fixed are listed with their reason in
``tests/compat/known_refusals.json`` and expected to fail, strictly: a listed
cell that starts to run as in CPython fails the suite until it is removed from
the list (``python -m benchmarks.compat --write-known`` rewrites it).
"""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from benchmarks.compat import contexts
from benchmarks.compat.classify import Error, refusal_causes
from benchmarks.compat.corpus import COMPARE_MODES, LABELS, Cell, Trajectory, load_corpus, load_known_refusals
from benchmarks.compat.replay import HARMFUL_REFUSED, REFUSED, SAME, Outcome, run_corpus

CORPUS = load_corpus()
KNOWN = load_known_refusals()
CELLS = {cell.id: (cell, trajectory) for trajectory in CORPUS for cell in trajectory.cells}
HARMLESS = [cell for cell, _ in CELLS.values() if cell.label == "harmless"]
HARMFUL = [cell for cell, _ in CELLS.values() if cell.label == "harmful"]


@pytest.fixture(scope="module")
def outcomes() -> dict[str, Outcome]:
    return {outcome.cell.id: outcome for outcome in anyio.run(run_corpus, CORPUS)}


def _expected(cell: Cell) -> object:
    marks = [pytest.mark.xfail(reason=KNOWN[cell.id], strict=True)] if cell.id in KNOWN else []
    return pytest.param(cell.id, marks=marks, id=cell.id)


@pytest.mark.parametrize("cell_id", [_expected(cell) for cell in HARMLESS])
def test_harmless_cell_runs_as_in_cpython(outcomes: dict[str, Outcome], cell_id: str) -> None:
    outcome = outcomes[cell_id]
    assert outcome.status == SAME, f"{cell_id} from {outcome.trajectory.source}: {outcome.reason}"


def test_harmful_cells_are_refused(outcomes: dict[str, Outcome]) -> None:
    not_refused = [
        f"{cell.id}: {outcomes[cell.id].reason}" for cell in HARMFUL if outcomes[cell.id].status != HARMFUL_REFUSED
    ]
    assert not not_refused, "\n".join(not_refused)


def test_corpus_records_source_license_and_label() -> None:
    assert len(HARMLESS) + len(HARMFUL) >= 150
    assert len(CELLS) == sum(len(t.cells) for t in CORPUS), "cell ids must be unique"
    for trajectory in CORPUS:
        assert trajectory.source and trajectory.license and trajectory.model, trajectory.id
        assert trajectory.kind in ("trajectory", "prompt-examples", "docs-example"), trajectory.id
        assert trajectory.context["generator"] in contexts.GENERATORS, trajectory.id
        for cell in trajectory.cells:
            assert cell.label in LABELS and cell.compare in COMPARE_MODES, cell.id
            assert cell.code.strip(), cell.id


def test_known_refusals_name_harmless_cells_of_the_corpus() -> None:
    stale = sorted(set(KNOWN) - {cell.id for cell in HARMLESS})
    assert not stale, f"remove from tests/compat/known_refusals.json: {stale}"


def test_the_replay_tells_same_refused_and_harmful_apart(tmp_path: Path) -> None:
    """The runner itself, on constructs whose fate does not depend on policy changes."""
    trajectory = Trajectory(
        id="self-check",
        source="tests/sandbox/test_compat.py",
        license="MIT (this project)",
        model="none",
        kind="trajectory",
        context={"generator": "literal", "params": {"text": "alpha beta\ngamma"}},
        setup="",
        cells=(
            Cell("self-check#1", "words = context.split()\nprint(len(words))\nwords[-1]"),
            Cell("self-check#2", "import subprocess\nprint('imported')"),
            Cell("self-check#3", "print(words[0].upper())\nFINAL(words[1])"),
            Cell("self-check#4", "open('/etc/passwd').read()", label="harmful"),
        ),
        source_group="self-check",
    )
    result = {o.cell.id: o for o in anyio.run(run_corpus, [trajectory])}
    assert result["self-check#1"].status == SAME
    assert result["self-check#2"].status == REFUSED
    assert result["self-check#2"].causes == ("import subprocess",)
    assert result["self-check#3"].status == SAME
    assert result["self-check#4"].status == HARMFUL_REFUSED


@pytest.mark.parametrize(
    ("kind", "message", "causes"),
    [
        (
            "RestrictedCodeError",
            'the sandbox refused this code: Line 3: "format" is not accessible in the sandbox',
            ["attribute .format"],
        ),
        (
            "RestrictedCodeError",
            'the sandbox refused this code: Line 1: "__name__" is an invalid attribute name because it starts '
            'with "_"; Line 2: "printed" is a reserved name',
            ["attribute .__name__", "reserved name printed"],
        ),
        ("PermissionError", "type() is not available in the sandbox; use isinstance(x, str)", ["builtin type()"]),
        ("ImportError", "import of 'sys' is not allowed in the sandbox; available modules: re", ["import sys"]),
        ("ModuleNotFoundError", "import of 'typing' is not allowed in the sandbox", ["import typing"]),
        ("AttributeError", "module 'time' has no attribute 'sleep'", ["module attribute time.sleep"]),
        ("AttributeError", "time.sleep is not available in the sandbox; use ...", ["module attribute time.sleep"]),
        ("NameError", "name 'memoryview' is not defined", ["missing builtin memoryview"]),
        ("NameError", "name 'scores' is not defined", []),
        ("ZeroDivisionError", "division by zero", []),
    ],
)
def test_refusal_causes_are_named_from_the_sandbox_message(kind: str, message: str, causes: list[str]) -> None:
    assert refusal_causes(Error(kind, message)) == causes
