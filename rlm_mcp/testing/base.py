"""What every local model fake shares: scripted replies, injected faults and a threaded JSON server.

Each fake (:mod:`rlm_mcp.testing.bedrock`, :mod:`rlm_mcp.testing.openai`) speaks one
real wire protocol, so the real client code runs end to end against it; what a
test scripts (a :class:`Reply` with text and tool calls, or a :class:`Fault`)
is the same whichever protocol carries it, so one script can drive a root on
one backend and a sub-model on another.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol


@dataclass
class Reply:
    text: str = ""
    tool_calls: list[tuple[str, Any]] = field(default_factory=list)
    """(tool name, input) pairs; ids are generated. An input that is a str goes out as it is: the raw
    arguments of the OpenAI-compatible API (code instead of JSON, JSON cut off or encoded twice), a
    string document in Converse."""
    stop_reason: str | None = None
    """The backend-neutral reason (``end_turn``, ``tool_use``, ``max_tokens``, ...), or any wire value."""
    reasoning: str = ""
    """Reasoning apart from the text: a Converse ``reasoningContent`` block, an OpenAI-compatible reasoning field."""
    delay_s: float = 0.0
    input_tokens: int | None = None
    output_tokens: int | None = None


@dataclass
class Fault:
    status: int
    code: str
    message: str = "fault injected by the fake"
    delay_s: float = 0.0


@dataclass
class Malformed:
    """A reply that is not what the protocol returns: ``body`` is sent as it is, with ``status``."""

    body: str = "<html>not json</html>"
    status: int = 200
    delay_s: float = 0.0


@dataclass
class Hangup:
    """Close the connection without answering (a load balancer dropping the request)."""

    delay_s: float = 0.0


Outcome = Reply | Fault | Malformed | Hangup


def throttled() -> Fault:
    return Fault(429, "ThrottlingException", "Too many requests, please wait before trying again.")


class FakeRequest(Protocol):
    """What a responder may read from a request, whatever the protocol."""

    model_id: str
    received_at: float

    @property
    def messages(self) -> list[dict[str, Any]]: ...

    @property
    def last_user_text(self) -> str: ...


Responder = Callable[[Any], Outcome]


def echo(request: FakeRequest) -> Reply:
    """The default: answer with the prompt, upper-cased (deterministic and easy to check)."""
    return Reply(text=request.last_user_text.upper())


def code(source: str, text: str = "", **kwargs: Any) -> Reply:
    """A root reply that calls the REPL tool with ``source``."""
    return Reply(text=text, tool_calls=[("python", {"code": source})], **kwargs)


Step = Callable[[Any], Outcome] | Outcome


def scripted(root_model: str, steps: list[Step], sub: Responder = echo) -> Responder:
    """Play a root model turn by turn; every other model is answered by ``sub``.

    The turn is the number of assistant messages already in the conversation,
    so a retried request gets the same step again. Past the end of ``steps``
    the last one repeats.
    """

    def respond(request: FakeRequest) -> Outcome:
        if request.model_id != root_model:
            return sub(request)
        turn = sum(1 for m in request.messages if m.get("role") == "assistant")
        step = steps[min(turn, len(steps) - 1)]
        return step(request) if callable(step) else step

    return respond


def estimated_tokens(reply: Reply, request_body: dict[str, Any], content: Any) -> tuple[int, int]:
    """Token counts for a reply: the scripted ones, or about four characters per token."""
    input_tokens = reply.input_tokens if reply.input_tokens is not None else len(json.dumps(request_body)) // 4
    output_tokens = reply.output_tokens if reply.output_tokens is not None else max(1, len(json.dumps(content)) // 4)
    return input_tokens, output_tokens


Response = tuple[int, dict[str, str], "dict[str, Any] | Malformed | Hangup"]


def passthrough(outcome: Outcome) -> Response | None:
    """The response for an outcome that is not a protocol message (a malformed body, a hang-up), else None."""
    if isinstance(outcome, Malformed):
        return outcome.status, {}, outcome
    if isinstance(outcome, Hangup):
        return 0, {}, outcome
    return None


class JsonHTTPFake:
    """A threaded HTTP server for a JSON API; subclasses map a POST to a response.

    ``requests`` records every request (thread-safe); ``max_in_flight`` is the
    highest number of requests served at the same moment, to observe concurrency.
    """

    name = "model-fake"

    def __init__(self, respond: Responder = echo, host: str = "127.0.0.1", port: int = 0):
        self.respond = respond
        self.requests: list[Any] = []
        self.max_in_flight = 0
        self._in_flight = 0
        self._lock = threading.Lock()
        self._tool_ids = 0
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> JsonHTTPFake:
        self._thread = threading.Thread(target=self._server.serve_forever, name=self.name, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def requests_for(self, model_id: str) -> list[Any]:
        with self._lock:
            return [r for r in self.requests if r.model_id == model_id]

    def _next_tool_id(self, prefix: str) -> str:
        with self._lock:
            self._tool_ids += 1
            return f"{prefix}{self._tool_ids:06d}"

    def _play(self, request: Any) -> Outcome:
        """Record ``request``, ask the responder, and wait out the scripted delay."""
        with self._lock:
            self.requests.append(request)
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            outcome = self.respond(request)
            if outcome.delay_s:
                time.sleep(outcome.delay_s)
        finally:
            with self._lock:
                self._in_flight -= 1
        return outcome

    def handle(self, path: str, headers: dict[str, str], body: dict[str, Any]) -> Response:
        """Answer one POST whose JSON body is ``body``."""
        raise NotImplementedError

    def bad_request(self, status: int, message: str) -> Response:
        """The protocol's shape of an error the fake itself raises (unknown path, bad JSON, responder bug)."""
        return status, {}, {"message": message}

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in separate writes; with Nagle's algorithm on, the client's delayed
            # ACK would add ~40 ms to every call and the fake, not rlm-mcp, would dominate every timing.
            disable_nagle_algorithm = True

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    self._send(*fake.bad_request(400, "bad JSON"))
                    return
                try:
                    status, headers, payload = fake.handle(self.path, dict(self.headers.items()), body)
                except Exception as exc:  # a responder bug should show up as a 500, not a hang
                    status, headers, payload = fake.bad_request(500, repr(exc))
                if isinstance(payload, Hangup):
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self._send(status, headers, payload)

            def _send(self, status: int, headers: dict[str, str], payload: dict[str, Any] | Malformed) -> None:
                data = payload.body.encode() if isinstance(payload, Malformed) else json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for key, value in headers.items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client went away (e.g. a killed server)
                    self.close_connection = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler
