"""The worker process: one per session, running user code in a persistent namespace.

Started by :class:`sandbox.host.Sandbox` with the same interpreter in isolated
mode. It confines itself (see :mod:`sandbox.confine`), says ``ready`` and then
serves requests from its parent over a dedicated socket, one at a time. It
never holds a model client or a credential: ``llm_query`` sends the prompts to
the parent and waits for the texts.
"""

from __future__ import annotations

import builtins
import json
import linecache
import os
import signal
import socket
import sys
import time
import traceback
import types
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from sandbox import confine, loader, modules, protocol, safe_builtins
from sandbox.capture import OutputCapture
from sandbox.policy import ECHO_HOOK, READ_GUARD, WRITE_GUARD, RestrictedCodeError, compile_cell

USER_MODULE = "repl"
HELPER_NAMES = ("llm_query", "llm_query_batched", "rlm_query", "FINAL", "FINAL_VAR", "SHOW_VARS")
RESERVED = ("context", *HELPER_NAMES)
MAX_VARIABLES = 200
MAX_MESSAGE_CHARS = 4000
FD_BATCH = 200
_SIZED_TYPES = (str, bytes, bytearray, list, tuple, dict, set, frozenset, deque)


class LLMError(Exception):
    """A sub-call (llm_query / llm_query_batched) failed."""


class SubcallBudgetExceeded(LLMError):
    """The session's or run's sub-call budget is used up."""


class LLMBatchError(LLMError):
    """Some prompts of a batch failed; ``results`` holds the others (None where failed)."""

    def __init__(self, message: str, results: list[str | None], errors: dict[int, str]):
        super().__init__(message)
        self.results = results
        self.errors = errors
        self.failed = sorted(errors)


class ExecInterrupted(BaseException):
    """Raised into running user code on timeout or cancellation."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


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


class Interrupts:
    """Soft timeout and cancellation, delivered as an exception into user code only.

    While the worker runs its own code (talking to the parent), a signal is
    recorded and delivered when user code resumes, so the protocol is never cut
    mid-message. The exception derives from ``BaseException``, so the usual
    ``except Exception`` does not swallow it; after the first interrupt the
    timer keeps firing every 50 ms for code that catches it anyway. Code that
    still does not stop (a bare ``except`` in a tight loop, or one long call in
    C) is ended by the parent's hard kill.
    """

    REPEAT_S = 0.05
    EXPIRED_S = 1e-6

    def __init__(self) -> None:
        self.active = False
        self.fired: str | None = None
        self._pending = False
        self._saved = 0.0

    def install(self) -> None:
        signal.signal(signal.SIGALRM, lambda *_: self._interrupt("timeout"))
        signal.signal(signal.SIGUSR1, lambda *_: self._interrupt("cancelled"))

    def _interrupt(self, reason: str) -> None:
        if self.fired is None:
            self.fired = reason
            if reason == "cancelled":
                signal.setitimer(signal.ITIMER_REAL, self.REPEAT_S, self.REPEAT_S)
        if self.active:
            raise ExecInterrupted(self.fired)
        self._pending = True

    def enter(self, timeout: float) -> None:
        self.fired = None
        self._pending = False
        signal.setitimer(signal.ITIMER_REAL, max(timeout, 0.001), self.REPEAT_S)
        self.active = True

    def leave(self) -> None:
        self.active = False
        signal.setitimer(signal.ITIMER_REAL, 0)

    def pause(self) -> None:
        """Stop the clock while the parent serves a sub-call: waiting is not computing."""
        self.active = False
        remaining, _ = signal.setitimer(signal.ITIMER_REAL, 0)
        self._saved = remaining

    def resume(self, charge: float = 0.0) -> None:
        """Restart the clock where it stopped; ``charge`` is wall time to count as compute after all.

        The timer is re-armed with exactly what is left (a floor would hand a loop of quick
        sub-calls a little fresh time on every call, so that it never ran out).
        """
        if self._saved > 0 or self.fired:
            remaining = self._saved - charge
            if remaining <= self.EXPIRED_S and self.fired is None:
                self.fired = "timeout"
                self._pending = True
            signal.setitimer(signal.ITIMER_REAL, max(remaining, self.EXPIRED_S), self.REPEAT_S)
        self.active = True
        if self._pending:
            self._pending = False
            raise ExecInterrupted(self.fired or "timeout")


class Channel:
    def __init__(self, sock: socket.socket, max_bytes: int):
        self.sock = sock
        self.max_bytes = max_bytes

    def send(self, message: dict[str, Any]) -> None:
        protocol.write_frame(self.sock, message)

    def recv(self) -> dict[str, Any]:
        return protocol.read_frame(self.sock, self.max_bytes)

    def recv_fds(self, count: int) -> list[int]:
        fds: list[int] = []
        while len(fds) < count:
            _, batch, _, _ = socket.recv_fds(self.sock, 1, min(FD_BATCH, count - len(fds)))
            if not batch:
                raise protocol.ProtocolError("expected file descriptors from the parent")
            fds.extend(batch)
        return fds


def _clip(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    return text if len(text) <= limit else text[:limit] + f"... [{len(text) - limit:,} more characters]"


def _is_str_list(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _safe_str(value: object) -> str:
    try:
        return str(value)
    except ExecInterrupted:
        raise
    except BaseException:
        return f"<{type(value).__name__} whose str() failed>"


def describe_exception(exc: BaseException) -> dict[str, Any]:
    """Type, message and a traceback that shows only the user's own lines."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.startswith("<cell-")]
    message = _safe_str(exc)
    if isinstance(exc, MemoryError) and not message:
        message = "out of memory: the sandbox's memory limit was reached"
    lines = ["Traceback (most recent call last):\n", *traceback.StackSummary.from_list(frames).format()]
    lines.append(f"{type(exc).__name__}: {message}" if message else type(exc).__name__)
    return {
        "type": type(exc).__name__,
        "message": _clip(message),
        "traceback": _clip("".join(lines if frames else lines[-1:]), 4 * MAX_MESSAGE_CHARS),
        "line": frames[-1].lineno if frames else None,
    }


def describe_syntax_error(exc: SyntaxError) -> dict[str, Any]:
    detail = "".join(traceback.format_exception_only(SyntaxError, exc)).rstrip()
    return {
        "type": "SyntaxError",
        "message": _clip(exc.msg or str(exc)),
        "traceback": _clip(detail),
        "line": exc.lineno,
    }


def variable_size(value: object) -> int | None:
    """len() of builtin containers, read without calling any method user code defined."""
    for base in _SIZED_TYPES:
        if isinstance(value, base):
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
        self.capture = OutputCapture(max_output_chars)
        self._request_id = 0
        self.context: str | list[str] = ""
        proxies = modules.build_all({"pprint": {"pprint": Helper("pprint", self._pprint)}})
        self.helpers: dict[str, Helper] = {
            "llm_query": Helper("llm_query", self._llm_query),
            "llm_query_batched": Helper("llm_query_batched", self._llm_query_batched),
            "FINAL": Helper("FINAL", self._final),
            "FINAL_VAR": Helper("FINAL_VAR", self._final_var),
            "SHOW_VARS": Helper("SHOW_VARS", self._show_vars),
            "rlm_query": Helper("rlm_query", self._rlm_query),
        }
        extra_builtins = {
            "print": Helper("print", self._print),
            "__import__": modules.make_import(proxies),
            "LLMError": LLMError,
            "LLMBatchError": LLMBatchError,
            "SubcallBudgetExceeded": SubcallBudgetExceeded,
        }
        self.ns: dict[str, Any] = {
            "__builtins__": safe_builtins.make_builtins(extra_builtins),
            "__name__": USER_MODULE,
            WRITE_GUARD: safe_builtins.make_write_guard(USER_MODULE),
            READ_GUARD: safe_builtins.guarded_read,
            ECHO_HOOK: self._echo,
        }
        self._restore_reserved()

    # -- REPL names -------------------------------------------------------------------

    def _print(
        self, *args: Any, sep: str | None = " ", end: str | None = "\n", file: Any = None, flush: bool = False
    ) -> None:
        builtins.print(*args, sep=sep, end=end, file=self.capture if file is None else file)

    def _pprint(self, obj: Any, *args: Any, **kwargs: Any) -> None:
        import pprint

        self.capture.write(pprint.pformat(obj, *args, **kwargs) + "\n")

    def _echo(self, value: Any) -> None:
        if value is None:
            return
        if isinstance(value, str) and len(value) > self.max_output_chars:
            half = self.max_output_chars // 2
            text = f"{value[:half]!r} ... {value[-half:]!r}  ({len(value):,} characters)"
        else:
            text = repr(value)
        self.capture.write(text + "\n")

    def _final(self, answer: Any) -> None:
        text = answer if isinstance(answer, str) else str(answer)
        self.final = _clip(text, self.max_final_chars)

    def _final_var(self, name: Any) -> None:
        if not isinstance(name, str):
            raise TypeError("FINAL_VAR takes the name of a variable as a string, e.g. FINAL_VAR('answer')")
        if name not in self.ns or name.startswith("_"):
            known = ", ".join(v["name"] for v in self.variables()) or "none"
            raise NameError(f"FINAL_VAR: no variable named {name!r}; defined variables: {known}")
        self._final(self.ns[name])

    def _show_vars(self) -> None:
        rows = self.variables()
        if not rows:
            self.capture.write("(no variables)\n")
        for row in rows:
            size = "" if row["size"] is None else f"  len={row['size']:,}"
            self.capture.write(f"{row['name']}: {row['type']}{size}\n")

    def _llm_query(self, prompt: Any, model: Any = None) -> str:
        if not isinstance(prompt, str):
            raise TypeError(
                f"llm_query(prompt) takes a str, not {type(prompt).__name__}; use llm_query_batched(prompts) for a list"
            )
        outcome = self._request_llm([prompt], model)[0]
        if "error" in outcome:
            raise LLMError(outcome["error"])
        return str(outcome["text"])

    def _llm_query_batched(self, prompts: Any, model: Any = None) -> list[str]:
        if isinstance(prompts, str) or not isinstance(prompts, Iterable):
            raise TypeError("llm_query_batched(prompts) takes a list of str; use llm_query(prompt) for one")
        prompts = list(prompts)
        for i, prompt in enumerate(prompts):
            if not isinstance(prompt, str):
                raise TypeError(f"prompts[{i}] is a {type(prompt).__name__}, not a str")
        if not prompts:
            return []
        outcomes = self._request_llm(prompts, model)
        errors = {i: str(o["error"]) for i, o in enumerate(outcomes) if "error" in o}
        if errors:
            results = [None if "error" in o else str(o["text"]) for o in outcomes]
            first = next(iter(errors.values()))
            shown = ", ".join(map(str, sorted(errors)[:10])) + (", ..." if len(errors) > 10 else "")
            raise LLMBatchError(
                f"{len(errors)} of {len(prompts)} prompts failed (indices {shown}): {first}. "
                "The other answers are in e.results; retry e.failed if needed.",
                results,
                errors,
            )
        return [str(o["text"]) for o in outcomes]

    def _request_llm(self, prompts: list[str], model: Any) -> list[dict[str, Any]]:
        if model is not None and not isinstance(model, str):
            raise TypeError("model must be a model id string or None")
        self._request_id += 1
        request_id = self._request_id
        self.interrupts.pause()
        waited = time.monotonic()
        reply: dict[str, Any] = {}
        try:
            self.channel.send({"op": "llm", "id": request_id, "prompts": prompts, "model": model})
            reply = self.channel.recv()
        finally:
            # A refused request (budget spent, no model) is answered at once: its round trip counts
            # as compute, so a loop that keeps asking runs into the timeout instead of spinning forever.
            refused = "error" in reply
            self.interrupts.resume(time.monotonic() - waited if refused else 0.0)
        if reply.get("op") != "llm_result" or reply.get("id") != request_id:
            raise protocol.ProtocolError("unexpected reply to a sub-call")
        if reply.get("interrupt"):
            raise ExecInterrupted("cancelled")
        if "error" in reply:
            kind = SubcallBudgetExceeded if reply.get("error_type") == "SubcallBudgetExceeded" else LLMError
            raise kind(str(reply["error"]))
        results = reply.get("results")
        if not isinstance(results, list) or len(results) != len(prompts):
            raise protocol.ProtocolError("sub-call reply does not match the request")
        return results

    def _rlm_query(self, prompt: Any, context: Any = None) -> str:
        if not isinstance(prompt, str):
            raise TypeError(f"rlm_query(prompt, context=None) takes a str prompt, not {type(prompt).__name__}")
        if not (context is None or isinstance(context, str) or _is_str_list(context)):
            raise TypeError("rlm_query's context must be None (the whole corpus), a str, or a list of str")
        return str(self._call_parent("rlm_query", {"prompt": prompt, "context": context}))

    def _call_parent(self, name: str, args: dict[str, Any]) -> Any:
        """A named request the parent serves (e.g. a nested run); the worker knows only the name."""
        self._request_id += 1
        request_id = self._request_id
        self.interrupts.pause()
        try:
            self.channel.send({"op": "call", "id": request_id, "name": name, "args": args})
            reply = self.channel.recv()
        finally:
            self.interrupts.resume()
        if reply.get("op") != "call_result" or reply.get("id") != request_id:
            raise protocol.ProtocolError(f"unexpected reply to {name}")
        if reply.get("interrupt"):
            raise ExecInterrupted("cancelled")
        if "error" in reply:
            kind = SubcallBudgetExceeded if reply.get("error_type") == "SubcallBudgetExceeded" else LLMError
            raise kind(str(reply["error"]))
        return reply.get("result")

    # -- namespace -----------------------------------------------------------------------

    def _restore_reserved(self) -> list[str]:
        reserved = {"context": self.context, **self.helpers}
        changed = [name for name, value in reserved.items() if self.ns.get(name) is not value]
        self.ns.update(reserved)
        return changed

    def variables(self) -> list[dict[str, Any]]:
        rows = []
        for name, value in list(self.ns.items()):
            if name.startswith("_") or name in HELPER_NAMES or isinstance(value, types.ModuleType):
                continue
            rows.append({"name": name, "type": type(value).__name__, "size": variable_size(value)})
            if len(rows) >= MAX_VARIABLES:
                break
        return rows

    # -- requests ------------------------------------------------------------------------

    def load(self, message: dict[str, Any]) -> dict[str, Any]:
        specs = [loader.DocumentSpec.from_message(d) for d in message["documents"]]
        if message.get("memory_bytes"):
            confine.set_memory_limit(int(message["memory_bytes"]))
        texts: list[str] = []
        if message.get("mode") == "append":
            texts = [self.context] if isinstance(self.context, str) else list(self.context)
            if isinstance(self.context, str) and message.get("first_header"):
                texts[0] = str(message["first_header"]) + texts[0]
        else:
            self.context = ""
            self._restore_reserved()
        batch = max(1, min(int(message.get("batch") or FD_BATCH), FD_BATCH))
        for start in range(0, len(specs), batch):
            if start:
                self.channel.send({"op": "load_more", "done": start})
            self._read_batch(specs[start : start + batch], texts)
        self.context = texts[0] if message.get("shape") == "str" and len(texts) == 1 else texts
        self._restore_reserved()
        return loader.describe(self.context)

    def _read_batch(self, specs: list[loader.DocumentSpec], texts: list[str]) -> None:
        fds = self.channel.recv_fds(len(specs))
        try:
            for index, spec in enumerate(specs):
                fd, fds[index] = fds[index], -1
                if spec.parts:
                    texts.extend(loader.read_parts(fd, spec))
                else:
                    texts.append(loader.read_document(fd, spec))
        finally:
            for fd in fds:
                if fd >= 0:
                    os.close(fd)

    def execute(self, code: str, timeout: float, cpu_budget: float) -> dict[str, Any]:
        self.interrupts.fired = None
        self.cells += 1
        filename = f"<cell-{self.cells}>"
        self.capture = OutputCapture(self.max_output_chars)
        self.final = None
        error: dict[str, Any] | None = None
        started = time.perf_counter()
        try:
            cell = compile_cell(code, filename)
        except SyntaxError as exc:
            error = describe_syntax_error(exc)
        except RestrictedCodeError as exc:
            error = {
                "type": "RestrictedCodeError",
                "message": _clip("the sandbox refused this code: " + str(exc)),
                "traceback": None,
                "line": None,
            }
        else:
            linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
            confine.limit_cpu_seconds(cpu_budget)
            error = self._run(cell.code, timeout)
        notes = []
        restored = self._restore_reserved()
        if restored:
            notes.append(f"reserved name(s) restored: {', '.join(restored)}; store results under other names")
        return {
            "op": "result",
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


def serve(channel: Channel, repl: Repl) -> None:
    while True:
        try:
            message = channel.recv()
        except EOFError:
            return
        op = message.get("op")
        try:
            if op == "exec":
                reply = repl.execute(str(message["code"]), float(message["timeout"]), float(message["cpu_budget"]))
            elif op == "load":
                try:
                    reply = {"op": "loaded", **repl.load(message)}
                except loader.DocumentDecodeError as exc:
                    reply = {"op": "load_error", "message": str(exc)}
            elif op == "vars":
                reply = {"op": "vars", "variables": repl.variables()}
            elif op == "shutdown":
                return
            else:
                reply = {"op": "internal_error", "message": f"unknown request {op!r}"}
        except MemoryError:
            repl.capture = OutputCapture(repl.max_output_chars)
            reply = {"op": "internal_error", "message": "the sandbox ran out of memory while answering"}
        except (EOFError, BrokenPipeError):
            return
        channel.send(reply)


def interpreter_directories() -> tuple[str, ...]:
    """What the worker still reads once confined: its interpreter's library and this package.

    ``sys.path[0]`` is where the parent found the ``sandbox`` package (a source
    checkout, say), so only the package itself is kept from it.
    """
    package = os.path.dirname(os.path.abspath(__file__))
    library = [os.path.abspath(p) for p in sys.path[1:] if os.path.isdir(p)]
    return (package, *library)


def main() -> None:
    config = json.loads(sys.argv[1])
    sock = socket.socket(fileno=int(config["fd"]))
    channel = Channel(sock, int(config["max_message_bytes"]))
    interrupts = Interrupts()
    repl = Repl(channel, interrupts, int(config["max_output_chars"]), int(config["max_final_chars"]))
    report = confine.apply(
        confine.Confinement(
            memory_bytes=config.get("memory_bytes"),
            memory_hard_bytes=config.get("memory_hard_bytes"),
            readable=interpreter_directories(),
        )
    )
    interrupts.install()
    channel.send({"op": "ready", "pid": os.getpid(), "confinement": report})
    serve(channel, repl)


if __name__ == "__main__":
    main()
