"""Replays cells in plain CPython: ``python -m benchmarks.compat.child`` reads JSON on stdin, writes JSON on stdout.

This is the reference side of the comparison. The namespace mirrors the REPL
contract of the sandbox (the same helper names, signatures and argument checks,
``context`` and the helpers restored after every cell, the value of a trailing
expression echoed), so that the only difference left is the sandbox's policy.
Only cells labelled harmless are sent here; the process runs in an empty
temporary directory.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import io
import json
import signal
import sys
import types
from collections import deque
from collections.abc import Iterable
from typing import Any

from benchmarks.compat import contexts
from benchmarks.compat.standins import nested_answer, sub_answer

HELPER_NAMES = ("llm_query", "llm_query_batched", "rlm_query", "FINAL", "FINAL_VAR", "SHOW_VARS")
SIZED_TYPES = (str, bytes, bytearray, list, tuple, dict, set, frozenset, deque)
ECHO = "__rlm_echo__"


class LLMError(Exception):
    pass


class SubcallBudgetExceeded(LLMError):
    pass


class LLMBatchError(LLMError):
    pass


class CellTimeout(Exception):
    pass


def _size(value: object) -> int | None:
    for base in SIZED_TYPES:
        if isinstance(value, base):
            return base.__len__(value)  # type: ignore[attr-defined]
    return None


class Repl:
    """A persistent namespace with the sandbox's REPL names, backed by the deterministic stand-ins."""

    def __init__(self, context: contexts.Context):
        self.context = context
        self.final: str | None = None
        self.out = io.StringIO()
        table = dict(vars(builtins))
        table.update(LLMError=LLMError, LLMBatchError=LLMBatchError, SubcallBudgetExceeded=SubcallBudgetExceeded)
        table[ECHO] = self._echo
        self.helpers = {
            "llm_query": self.llm_query,
            "llm_query_batched": self.llm_query_batched,
            "rlm_query": self.rlm_query,
            "FINAL": self.final_answer,
            "FINAL_VAR": self.final_var,
            "SHOW_VARS": self.show_vars,
        }
        self.ns: dict[str, Any] = {"__builtins__": table, "__name__": "repl"}
        self._restore()

    def _restore(self) -> None:
        self.ns.update({"context": self.context, **self.helpers})

    def _echo(self, value: Any) -> None:
        if value is not None:
            print(repr(value))

    def llm_query(self, prompt: Any, model: Any = None) -> str:
        if not isinstance(prompt, str):
            raise TypeError("llm_query(prompt) takes a str")
        self._check_model(model)
        return sub_answer(prompt, model)

    def llm_query_batched(self, prompts: Any, model: Any = None) -> list[str]:
        if isinstance(prompts, str) or not isinstance(prompts, Iterable):
            raise TypeError("llm_query_batched(prompts) takes a list of str")
        prompts = list(prompts)
        for i, prompt in enumerate(prompts):
            if not isinstance(prompt, str):
                raise TypeError(f"prompts[{i}] is not a str")
        if prompts:
            self._check_model(model)
        return [sub_answer(prompt, model) for prompt in prompts]

    @staticmethod
    def _check_model(model: Any) -> None:
        if model is not None and not isinstance(model, str):
            raise TypeError("model must be a model id string or None")

    def rlm_query(self, prompt: Any, context: Any = None) -> str:
        if not isinstance(prompt, str):
            raise TypeError("rlm_query takes a str prompt")
        if not (
            context is None
            or isinstance(context, str)
            or (isinstance(context, list) and all(isinstance(c, str) for c in context))
        ):
            raise TypeError("rlm_query's context must be None, a str, or a list of str")
        return nested_answer(prompt, context)

    def final_answer(self, answer: Any) -> None:
        self.final = answer if isinstance(answer, str) else str(answer)

    def final_var(self, name: Any) -> None:
        if not isinstance(name, str):
            raise TypeError("FINAL_VAR takes the name of a variable as a string")
        if name not in self.ns or name.startswith("_"):
            raise NameError(f"FINAL_VAR: no variable named {name!r}")
        self.final_answer(self.ns[name])

    def variables(self) -> list[tuple[str, str, int | None]]:
        return [
            (name, type(value).__name__, _size(value))
            for name, value in self.ns.items()
            if not (name.startswith("_") or name in HELPER_NAMES or isinstance(value, types.ModuleType))
        ]

    def show_vars(self) -> None:
        rows = self.variables()
        if not rows:
            print("(no variables)")
        for name, kind, size in rows:
            print(f"{name}: {kind}" + ("" if size is None else f"  len={size:,}"))

    def run(self, code: str, number: int, timeout: float) -> dict[str, Any]:
        self.final = None
        out = io.StringIO()
        error = None
        try:
            tree = ast.parse(code, filename=f"<cell-{number}>", mode="exec")
            if tree.body and isinstance(tree.body[-1], ast.Expr):
                last = tree.body[-1]
                last.value = ast.copy_location(
                    ast.Call(func=ast.Name(ECHO, ast.Load()), args=[last.value], keywords=[]), last.value
                )
                ast.fix_missing_locations(tree)
            compiled = compile(tree, f"<cell-{number}>", "exec", dont_inherit=True)
        except (SyntaxError, ValueError) as exc:
            error = {"type": "SyntaxError", "message": str(exc)}
        else:
            signal.setitimer(signal.ITIMER_REAL, timeout)
            try:
                with contextlib.redirect_stdout(out):
                    exec(compiled, self.ns)
            except CellTimeout:
                error = {"type": "TimeoutError", "message": f"over {timeout:g} s"}
            except BaseException as exc:  # the cell may raise anything, SystemExit included
                error = {"type": type(exc).__name__, "message": str(exc)[:2000]}
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
        self._restore()
        return {"stdout": out.getvalue(), "final": self.final, "error": error}


def _on_alarm(signum: int, frame: object) -> None:
    raise CellTimeout


def replay(request: dict[str, Any]) -> list[dict[str, Any]]:
    timeout = float(request.get("timeout", 20))
    results = []
    for trajectory in request["trajectories"]:
        repl = Repl(contexts.build(trajectory["context"], trajectory["id"]))
        setup = repl.run(trajectory["setup"], 0, timeout) if trajectory.get("setup") else None
        cells = [
            repl.run(cell["code"], number, timeout) if cell["run"] else {"skipped": True}
            for number, cell in enumerate(trajectory["cells"], start=1)
        ]
        results.append({"id": trajectory["id"], "setup": setup, "cells": cells})
    return results


def main() -> None:
    signal.signal(signal.SIGALRM, _on_alarm)
    request = json.load(sys.stdin)
    results = replay(request)
    sys.stdout.write(json.dumps({"trajectories": results}))


if __name__ == "__main__":
    main()
