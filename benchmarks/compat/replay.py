"""Replaying the corpus on both sides and comparing them cell by cell.

Plain CPython (``benchmarks.compat.child``, one process for the whole corpus)
is the reference. The sandbox side drives :class:`sandbox.Sandbox` directly,
one sandbox per trajectory, with a sub-call handler that answers with the
same stand-in. A harmless cell "runs as in CPython" when stdout, the final
answer and the error type (none, or the same one) all match; otherwise its
outcome names the refused construct, or the earlier refusal it follows from.
Harmful cells never run outside the sandbox; there they must be refused.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from benchmarks.compat import contexts
from benchmarks.compat.classify import Error, refusal_causes
from benchmarks.compat.corpus import ROOT, Cell, Trajectory
from benchmarks.compat.standins import nested_answer, sub_answer
from sandbox import Document, Sandbox, SandboxLimits, SubcallRefused, SubcallReply

CELL_TIMEOUT_S = 30.0
SANDBOXES_AT_ONCE = 2
LIMITS = SandboxLimits(exec_timeout_s=CELL_TIMEOUT_S, kill_grace_s=2, max_output_chars=2_000_000)
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{6,}")

SAME = "same"
REFUSED = "refused"
DIFFERENT = "different"
AFTER_REFUSAL = "after-refusal"
HARMFUL_REFUSED = "harmful-refused"
HARMFUL_RAN = "harmful-ran"


@dataclass(frozen=True)
class Run:
    """What one side did with one cell."""

    stdout: str
    final: str | None
    error: Error | None

    @classmethod
    def from_child(cls, raw: dict[str, Any]) -> Run:
        error = raw.get("error")
        return cls(raw.get("stdout", ""), raw.get("final"), Error(error["type"], error["message"]) if error else None)


@dataclass(frozen=True)
class Outcome:
    cell: Cell
    trajectory: Trajectory
    status: str
    causes: tuple[str, ...] = ()
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status in (SAME, HARMFUL_REFUSED)

    @property
    def reason(self) -> str:
        """One line for a failure listing or the known-refusals file."""
        causes = ", ".join(self.causes) or self.status
        return f"{causes}: {self.detail}" if self.detail else causes


# -- the two sides ---------------------------------------------------------------------------


def replay_cpython(trajectories: Sequence[Trajectory]) -> dict[str, list[Run | None]]:
    """Every harmless cell in plain CPython; ``None`` for harmful cells, which are never run there."""
    request = {
        "timeout": CELL_TIMEOUT_S,
        "trajectories": [
            {
                "id": t.id,
                "context": t.context,
                "setup": t.setup,
                "cells": [{"code": c.code, "run": c.label == "harmless"} for c in t.cells],
            }
            for t in trajectories
        ],
    }
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(ROOT), "LANG": "C.UTF-8"}
    with tempfile.TemporaryDirectory(prefix="rlm-compat-") as scratch:
        done = subprocess.run(
            [sys.executable, "-m", "benchmarks.compat.child"],
            input=json.dumps(request),
            capture_output=True,
            text=True,
            cwd=scratch,
            env=env,
            check=False,
        )
    if done.returncode != 0:
        raise RuntimeError(f"the CPython replay failed: {done.stderr[-2000:]}")
    runs: dict[str, list[Run | None]] = {}
    for item in json.loads(done.stdout)["trajectories"]:
        if item["setup"] and item["setup"]["error"]:
            raise RuntimeError(f"{item['id']}: the setup failed in CPython: {item['setup']['error']}")
        runs[item["id"]] = [None if cell.get("skipped") else Run.from_child(cell) for cell in item["cells"]]
    return runs


async def _answer_subcalls(prompts: list[str], model: str | None, spans: object = None) -> list[SubcallReply]:
    return [SubcallReply(text=sub_answer(prompt, model)) for prompt in prompts]


async def _answer_calls(name: str, args: dict[str, Any]) -> Any:
    if name != "rlm_query":
        raise SubcallRefused(f"{name} is not served by the compatibility replay")
    return nested_answer(str(args.get("prompt", "")), args.get("context"))


async def replay_sandbox(trajectory: Trajectory, workdir: Path) -> list[Run]:
    """The trajectory's cells in one fresh sandbox, in order."""
    value = contexts.build(trajectory.context, trajectory.id)
    texts = [value] if isinstance(value, str) else value
    folder = workdir / re.sub(r"[^\w.-]", "_", trajectory.id)
    folder.mkdir(parents=True)
    documents = []
    for index, text in enumerate(texts):
        path = folder / f"doc{index:04d}.txt"
        path.write_text(text, encoding="utf-8")
        documents.append(Document(name=path.name, path=path))
    async with Sandbox(LIMITS, workdir_parent=workdir) as box:
        info = await box.load(documents, shape="str" if isinstance(value, str) else "list")
        if info.chars != sum(map(len, texts)):
            raise RuntimeError(f"{trajectory.id}: the sandbox's context differs from the generated one")
        if trajectory.setup:
            result = await box.execute(trajectory.setup, on_subcall=_answer_subcalls, on_call=_answer_calls)
            if result.error:
                raise RuntimeError(f"{trajectory.id}: the setup failed in the sandbox: {result.error}")
        runs = []
        for cell in trajectory.cells:
            result = await box.execute(cell.code, on_subcall=_answer_subcalls, on_call=_answer_calls)
            error = Error(result.error.type, result.error.message) if result.error else None
            runs.append(Run(result.stdout, result.final, error))
        return runs


# -- comparing --------------------------------------------------------------------------------


def _normal(text: str) -> str:
    return _ADDRESS.sub("0x?", text)


def _equal(a: str | None, b: str | None) -> bool:
    """Equal text, or the same characters in another order.

    The worker runs with ``-I``, so its string hash seed differs from the
    replay's: a printed ``set`` of strings lists the same items in another
    order. Accepting a permutation keeps the comparison deterministic; a refusal
    never hides behind it, because refusals are errors, compared by type.
    """
    if a is None or b is None:
        return a is b
    a, b = _normal(a), _normal(b)
    return a == b or sorted(a) == sorted(b)


def _same(cell: Cell, reference: Run, boxed: Run) -> bool:
    ref_error = reference.error.family if reference.error else None
    box_error = boxed.error.family if boxed.error else None
    if ref_error != box_error:
        return False
    if cell.compare == "errors":
        return True
    return _equal(reference.stdout, boxed.stdout) and _equal(reference.final, boxed.final)


def _difference(reference: Run, boxed: Run) -> str:
    if reference.error != boxed.error and (reference.error or boxed.error):
        ref = f"{reference.error.type}" if reference.error else "no error"
        box = f"{boxed.error.type}: {boxed.error.message[:160]}" if boxed.error else "no error"
        return f"CPython: {ref}; sandbox: {box}"
    if reference.final != boxed.final:
        return f"final {reference.final!r:.60} vs {boxed.final!r:.60}"
    ref, box = _normal(reference.stdout), _normal(boxed.stdout)
    at = next((i for i, (a, b) in enumerate(zip(ref, box, strict=False)) if a != b), min(len(ref), len(box)))
    return f"stdout differs at {at}: {ref[at : at + 60]!r} vs {box[at : at + 60]!r}"


def compare(trajectory: Trajectory, reference: list[Run | None], boxed: list[Run]) -> list[Outcome]:
    outcomes: list[Outcome] = []
    first_refusal: str | None = None
    for cell, ref, box in zip(trajectory.cells, reference, boxed, strict=True):
        causes = tuple(refusal_causes(box.error)) if box.error else ()
        if cell.label == "harmful":
            status = HARMFUL_REFUSED if causes else HARMFUL_RAN
            detail = "" if causes else "a harmful cell was not refused"
            outcomes.append(Outcome(cell, trajectory, status, causes, detail))
            continue
        assert ref is not None
        if _same(cell, ref, box):
            outcomes.append(Outcome(cell, trajectory, SAME))
            continue
        detail = _difference(ref, box)
        if causes:
            outcomes.append(Outcome(cell, trajectory, REFUSED, causes, detail))
            first_refusal = first_refusal or cell.id
        elif first_refusal:
            outcomes.append(Outcome(cell, trajectory, AFTER_REFUSAL, (f"after {first_refusal}",), detail))
        else:
            outcomes.append(Outcome(cell, trajectory, DIFFERENT, ("different behaviour",), detail))
    return outcomes


async def run_corpus(trajectories: Sequence[Trajectory]) -> list[Outcome]:
    """Both replays of every trajectory, compared: one outcome per cell, in corpus order."""
    reference: dict[str, list[Run | None]] = {}

    async def cpython() -> None:
        reference.update(await anyio.to_thread.run_sync(replay_cpython, trajectories))

    boxed: dict[str, list[Run]] = {}
    limiter = anyio.CapacityLimiter(SANDBOXES_AT_ONCE)

    async def sandboxed(trajectory: Trajectory, scratch: Path) -> None:
        async with limiter:
            boxed[trajectory.id] = await replay_sandbox(trajectory, scratch)

    with tempfile.TemporaryDirectory(prefix="rlm-compat-") as scratch:
        async with anyio.create_task_group() as group:
            group.start_soon(cpython)
            for trajectory in trajectories:
                group.start_soon(sandboxed, trajectory, Path(scratch))
    outcomes = []
    for trajectory in trajectories:
        outcomes += compare(trajectory, reference[trajectory.id], boxed[trajectory.id])
    return outcomes
