"""The REPL inside the worker: the persistent namespace and the names injected into it.

``context`` and the helpers (``llm_query``, ``llm_query_batched``, ``rlm_query``,
``FINAL``, ``FINAL_VAR``, ``SHOW_VARS``) are restored after every execution.
Helpers expose nothing but their call; sub-calls go to the parent over the
channel while the compute clock is paused (:mod:`sandbox.worker.subcalls`, apart
because it is where code waits on the parent).
"""

from __future__ import annotations

import builtins
import linecache
import os
import time
import types
from collections import deque
from collections.abc import Callable
from typing import Any

from sandbox.protocol import FD_BATCH, Channel, Op
from sandbox.worker import guards, loader, mapreduce, modules, safe_builtins, standins
from sandbox.worker.capture import OutputCapture
from sandbox.worker.compiler import RestrictedCodeError, compile_cell
from sandbox.worker.describe import clip, describe_exception, describe_syntax_error
from sandbox.worker.guards import exact_str
from sandbox.worker.interrupts import ExecInterrupted, Interrupts
from sandbox.worker.ownership import read_private, write_guard, write_private
from sandbox.worker.policy import (
    ECHO_HOOK,
    FINAL_VAR_BY_NAME,
    PRIVATE_READ_GUARD,
    PRIVATE_WRITE_GUARD,
    READ_GUARD,
    USER_MODULE,
    WRITE_GUARD,
    is_user_name,
)
from sandbox.worker.subcalls import LLMBatchError, LLMError, ParentRequests, SubcallBudgetExceeded

HELPER_NAMES = ("llm_query", "llm_query_batched", "rlm_query", "FINAL", "FINAL_VAR", "SHOW_VARS")
RESERVED = ("context", *HELPER_NAMES)
MAX_VARIABLES = 200
_SIZED_TYPES = (str, bytes, bytearray, list, tuple, dict, set, frozenset, deque)


class Helper:
    """A REPL function that exposes nothing but its call: no attributes, no copies."""

    __slots__ = ("_call", "_name")

    def __init__(self, name: str, call: Callable[..., Any]):
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_call", call)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._call(*args, **kwargs)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{self._name} is read-only")

    def __reduce_ex__(self, protocol: Any) -> Any:
        raise TypeError(f"{self._name} cannot be copied or pickled")

    def __repr__(self) -> str:
        return f"<function {self._name}>"


def variable_size(value: object) -> int | None:
    """len() of builtin containers, read without calling any method user code defined."""
    kind = type(value)
    for base in _SIZED_TYPES:
        if issubclass(kind, base):
            return base.__len__(value)  # type: ignore[attr-defined]
    return None


class Repl:
    """The persistent namespace and the REPL names injected into it."""

    def __init__(self, channel: Channel, interrupts: Interrupts, max_output_chars: int, max_final_chars: int):
        self.channel = channel
        self.interrupts = interrupts
        self.max_output_chars = max_output_chars
        self.max_final_chars = max_final_chars
        self.cells = 0
        self.final: str | None = None
        self.notes: list[str] = []
        """What the current execution wants the caller to know (e.g. how FINAL_VAR read its argument)."""
        self.capture = OutputCapture(max_output_chars)
        self.parent_request: Any = None
        """The id of the parent's request being served, echoed in every frame that answers it."""
        self.context: str | list[str] = ""
        self.parent = ParentRequests(channel, interrupts, lambda: self.context)
        proxies = modules.build_all(
            {"pprint": {"pprint": Helper("pprint", self._pprint)}, **standins.extras(self._write)}
        )
        self.helpers: dict[str, Helper] = {
            "llm_query": Helper("llm_query", self.parent.llm_query),
            "llm_query_batched": Helper("llm_query_batched", self.parent.llm_query_batched),
            "FINAL": Helper("FINAL", self._final),
            "FINAL_VAR": Helper("FINAL_VAR", self._final_var),
            "SHOW_VARS": Helper("SHOW_VARS", self._show_vars),
            "rlm_query": Helper("rlm_query", self.parent.rlm_query),
        }
        extra_builtins = {
            "print": Helper("print", self._print),
            "__import__": modules.make_import(proxies),
            "LLMError": LLMError,
            "LLMBatchError": LLMBatchError,
            "SubcallBudgetExceeded": SubcallBudgetExceeded,
        }
        mapper = mapreduce.Mapper(self.parent.llm_query_batched, self._write, LLMBatchError, SubcallBudgetExceeded)
        extra_builtins.update({name: Helper(name, f) for name, f in mapreduce.helpers(mapper).items()})
        self.ns: dict[str, Any] = {}
        self.ns.update(
            {
                "__builtins__": safe_builtins.make_builtins(extra_builtins, self.ns),
                "__name__": USER_MODULE,
                WRITE_GUARD: write_guard,
                READ_GUARD: guards.guarded_read,
                PRIVATE_READ_GUARD: read_private,
                PRIVATE_WRITE_GUARD: write_private,
                ECHO_HOOK: self._echo,
                FINAL_VAR_BY_NAME: Helper("FINAL_VAR", self._final_var_by_name),
            }
        )
        self._restore_reserved()

    # -- REPL names -------------------------------------------------------------------

    def _print(
        self, *args: Any, sep: str | None = " ", end: str | None = "\n", file: Any = None, flush: bool = False
    ) -> None:
        builtins.print(*args, sep=sep, end=end, file=self.capture if file is None else file)

    def _write(self, text: str) -> int:
        return self.capture.write(text)

    def _pprint(self, obj: Any, *args: Any, **kwargs: Any) -> None:
        import pprint

        self.capture.write(pprint.pformat(obj, *args, **kwargs) + "\n")

    def _echo(self, value: Any) -> None:
        if value is None:
            return
        if type(value) is str and len(value) > self.max_output_chars:
            half = self.max_output_chars // 2
            text = f"{value[:half]!r} ... {value[-half:]!r}  ({len(value):,} characters)"
        else:
            text = exact_str(repr(value), "repr()")
        self.capture.write(text + "\n")

    def _final(self, answer: Any) -> None:
        text = str(answer)  # the user's own __str__, if any, runs here, inside the cell's time
        self.final = clip(exact_str(text, "FINAL's answer"), self.max_final_chars)

    def _final_var(self, value: Any) -> None:
        """``FINAL_VAR(answer)`` with an expression: models pass the variable as often as its name.

        An exact str that names one of the code's own variables answers with that
        variable; anything else (a str subclass included) is the answer itself,
        converted as FINAL converts it. ``FINAL_VAR("answer")`` with the name in quotes
        is compiled to :meth:`_final_var_by_name`, where the variable must exist.
        """
        if type(value) is str:
            if value not in RESERVED and is_user_name(value) and value in self.ns:
                self._final(self.ns[value])
                return
            if value.isidentifier():
                self.notes.append(
                    f"FINAL_VAR got the text {clip(value, 60)!r}, which names no variable: the text itself is "
                    "the answer (FINAL_VAR('name'), with the name in quotes, requires the variable)"
                )
        self._final(value)

    def _final_var_by_name(self, name: Any) -> None:
        """``FINAL_VAR("answer")``: the variable of that name, which must exist."""
        key = exact_str(name, "FINAL_VAR's name")
        if not is_user_name(key) or key not in self.ns:
            known = ", ".join(v["name"] for v in self.variables()) or "none"
            raise NameError(f"FINAL_VAR: no variable named {key!r}; defined variables: {known}")
        self._final(self.ns[key])

    def _show_vars(self) -> None:
        rows = self.variables()
        if not rows:
            self.capture.write("(no variables)\n")
        for row in rows:
            size = "" if row["size"] is None else f"  len={row['size']:,}"
            self.capture.write(f"{row['name']}: {row['type']}{size}\n")

    # -- namespace -----------------------------------------------------------------------

    def _restore_reserved(self) -> list[str]:
        reserved = {"context": self.context, **self.helpers}
        changed = [name for name, value in reserved.items() if self.ns.get(name) is not value]
        self.ns.update(reserved)
        return changed

    def variables(self) -> list[dict[str, Any]]:
        rows = []
        for name, value in list(self.ns.items()):
            if type(name) is not str or name.startswith("_") or name in HELPER_NAMES:
                continue
            if issubclass(type(value), types.ModuleType):
                continue
            rows.append({"name": name, "type": type(value).__name__, "size": variable_size(value)})
            if len(rows) >= MAX_VARIABLES:
                break
        return rows

    # -- requests ------------------------------------------------------------------------

    def load(self, message: dict[str, Any]) -> dict[str, Any]:
        specs = [loader.DocumentSpec.from_message(d) for d in message["documents"]]
        texts: list[str] = []
        if message.get("mode") == "append":
            texts = [self.context] if isinstance(self.context, str) else list(self.context)
            if isinstance(self.context, str) and message.get("first_header"):
                texts[0] = str(message["first_header"]) + texts[0]
        else:
            self.context = ""
            self._restore_reserved()
        batch = max(1, min(int(message.get("batch") or FD_BATCH), FD_BATCH))
        skipped: list[list[Any]] = []
        for start in range(0, len(specs), batch):
            if start:
                self.channel.send({"op": Op.LOAD_MORE, "id": self.parent_request, "done": start})
            self._read_batch(specs[start : start + batch], texts, start, skipped)
        self.context = texts[0] if message.get("shape") == "str" and len(texts) == 1 else texts
        self.parent.forget_corpus()
        self._restore_reserved()
        return loader.describe(self.context, skipped)

    def _read_batch(
        self, specs: list[loader.DocumentSpec], texts: list[str], start: int, skipped: list[list[Any]]
    ) -> None:
        fds = self.channel.recv_fds(len(specs))
        try:
            for index, spec in enumerate(specs):
                fd, fds[index] = fds[index], -1
                try:
                    if spec.parts:
                        texts.extend(loader.read_parts(fd, spec))
                    else:
                        texts.append(loader.read_document(fd, spec))
                except loader.DocumentDecodeError as exc:
                    if not spec.skip_undecodable:
                        raise
                    skipped.append([start + index, exc.reason])
        finally:
            for fd in fds:
                if fd >= 0:
                    os.close(fd)

    def execute(self, code: str, timeout: float) -> dict[str, Any]:
        self.interrupts.fired = None
        self.cells += 1
        filename = f"<cell-{self.cells}>"
        self.capture = OutputCapture(self.max_output_chars)
        self.final = None
        self.notes = []
        error: dict[str, Any] | None = None
        started = time.perf_counter()
        try:
            cell = compile_cell(code, filename)
        except SyntaxError as exc:
            error = describe_syntax_error(exc)
        except RestrictedCodeError as exc:
            error = {
                "type": "RestrictedCodeError",
                "message": clip("the sandbox refused this code: " + str(exc)),
                "traceback": None,
                "line": None,
            }
        else:
            linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
            error = self._run(cell.code, timeout)
        notes = self.notes
        restored = self._restore_reserved()
        if restored:
            notes.append(f"reserved name(s) restored: {', '.join(restored)}; store results under other names")
        return {
            "op": Op.RESULT,
            "stdout": self.capture.getvalue(),
            "output_chars": self.capture.total,
            "error": error,
            "final": self.final,
            "variables": self.variables(),
            "elapsed_ms": (time.perf_counter() - started) * 1000,
            "timed_out": self.interrupts.fired == "timeout",
            "cancelled": self.interrupts.fired == "cancelled",
            "notes": notes,
        }

    def _run(self, code: types.CodeType, timeout: float) -> dict[str, Any] | None:
        error = None
        try:
            self.interrupts.enter(timeout)
            try:
                exec(code, self.ns)
            except ExecInterrupted:
                raise
            except BaseException as exc:  # user code may raise anything, SystemExit included
                error = describe_exception(exc)
            finally:
                self.interrupts.leave()
        except ExecInterrupted as exc:
            if exc.reason == "timeout":
                message = (
                    f"execution exceeded {timeout:g} s of compute and was interrupted; "
                    "variables from earlier calls are kept"
                )
                error = {"type": "TimeoutError", "message": message, "traceback": None, "line": None}
            else:
                error = {
                    "type": "Cancelled",
                    "message": "execution was cancelled by the caller",
                    "traceback": None,
                    "line": None,
                }
        return error
