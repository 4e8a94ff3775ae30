"""A local HTTP server that speaks the Bedrock Converse API, for tests, benchmarks and offline demos.

Point boto3 at it with ``AWS_ENDPOINT_URL_BEDROCK_RUNTIME`` and the real client
code path runs end to end (signing, serialisation, retries, error parsing)
against replies you script in Python: a function gets each request and returns
a :class:`Reply` (text and/or tool calls, optional latency) or a :class:`Fault`
(an HTTP error in Bedrock's shape, e.g. throttling).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

_PATH = re.compile(r"^/model/(?P<model>[^/]+)/converse$")


@dataclass
class Reply:
    text: str = ""
    tool_calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    """(tool name, input) pairs; ids are generated."""
    stop_reason: str | None = None
    delay_s: float = 0.0
    input_tokens: int | None = None
    output_tokens: int | None = None


@dataclass
class Fault:
    status: int
    code: str
    message: str = "fault injected by the fake"
    delay_s: float = 0.0


def throttled() -> Fault:
    return Fault(429, "ThrottlingException", "Too many requests, please wait before trying again.")


@dataclass
class ConverseRequest:
    model_id: str
    body: dict[str, Any]
    received_at: float

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages", []))

    @property
    def system(self) -> str:
        return "\n".join(block.get("text", "") for block in self.body.get("system", []))

    @property
    def tools(self) -> list[dict[str, Any]]:
        return list(self.body.get("toolConfig", {}).get("tools", []))

    @property
    def last_user_text(self) -> str:
        """Text of the last user message, tool results included."""
        for message in reversed(self.messages):
            if message.get("role") == "user":
                return "\n".join(_block_text(b) for b in message.get("content", []))
        return ""

    @property
    def tool_results(self) -> list[str]:
        """Texts of the tool results in the last user message."""
        last = self.messages[-1] if self.messages else {}
        return [_block_text(b) for b in last.get("content", []) if "toolResult" in b]

    @property
    def all_text(self) -> str:
        """Everything the model was sent, as one string (to check what it saw)."""
        return json.dumps(self.body, ensure_ascii=False)


def _block_text(block: dict[str, Any]) -> str:
    if "text" in block:
        return str(block["text"])
    if "toolResult" in block:
        return "\n".join(str(c.get("text", "")) for c in block["toolResult"].get("content", []))
    if "toolUse" in block:
        return json.dumps(block["toolUse"].get("input"))
    return ""


Responder = Callable[[ConverseRequest], "Reply | Fault"]


def echo(request: ConverseRequest) -> Reply:
    """The default: answer with the prompt, upper-cased (deterministic and easy to check)."""
    return Reply(text=request.last_user_text.upper())


class ConverseFake:
    """A threaded HTTP server answering ``POST /model/{id}/converse``.

    ``requests`` records every request (thread-safe); ``max_in_flight`` is the
    highest number of requests served at the same moment, to observe concurrency.
    """

    def __init__(self, respond: Responder = echo, host: str = "127.0.0.1", port: int = 0):
        self.respond = respond
        self.requests: list[ConverseRequest] = []
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

    def start(self) -> ConverseFake:
        self._thread = threading.Thread(target=self._server.serve_forever, name="converse-fake", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> ConverseFake:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def requests_for(self, model_id: str) -> list[ConverseRequest]:
        with self._lock:
            return [r for r in self.requests if r.model_id == model_id]

    def _next_tool_id(self) -> str:
        with self._lock:
            self._tool_ids += 1
            return f"tooluse_{self._tool_ids:06d}"

    def _serve(self, model_id: str, body: dict[str, Any]) -> tuple[int, dict[str, str], dict[str, Any]]:
        request = ConverseRequest(model_id=model_id, body=body, received_at=time.time())
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
        if isinstance(outcome, Fault):
            headers = {"x-amzn-ErrorType": f"{outcome.code}:http://internal.amazon.com/coral/com.amazon.bedrock/"}
            return outcome.status, headers, {"message": outcome.message}
        content: list[dict[str, Any]] = [{"text": outcome.text}] if outcome.text else []
        for name, tool_input in outcome.tool_calls:
            content.append({"toolUse": {"toolUseId": self._next_tool_id(), "name": name, "input": tool_input}})
        stop = outcome.stop_reason or ("tool_use" if outcome.tool_calls else "end_turn")
        input_tokens = outcome.input_tokens if outcome.input_tokens is not None else len(json.dumps(body)) // 4
        output_tokens = (
            outcome.output_tokens if outcome.output_tokens is not None else max(1, len(json.dumps(content)) // 4)
        )
        payload = {
            "output": {"message": {"role": "assistant", "content": content}},
            "stopReason": stop,
            "usage": {
                "inputTokens": input_tokens,
                "outputTokens": output_tokens,
                "totalTokens": input_tokens + output_tokens,
            },
            "metrics": {"latencyMs": int(outcome.delay_s * 1000)},
        }
        return 200, {}, payload

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in separate writes; with Nagle's algorithm on, the client's delayed
            # ACK would add ~40 ms to every call and the fake, not rlm-mcp, would dominate every timing.
            disable_nagle_algorithm = True

            def do_POST(self) -> None:
                match = _PATH.match(self.path)
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                if match is None:
                    self._send(404, {"x-amzn-ErrorType": "UnknownOperationException"}, {"message": "not found"})
                    return
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    self._send(400, {"x-amzn-ErrorType": "ValidationException"}, {"message": "bad JSON"})
                    return
                try:
                    status, headers, payload = fake._serve(unquote(match["model"]), body)
                except Exception as exc:  # a responder bug should show up as a 500, not a hang
                    status, headers, payload = (
                        500,
                        {"x-amzn-ErrorType": "InternalServerException"},
                        {"message": repr(exc)},
                    )
                self._send(status, headers, payload)

            def _send(self, status: int, headers: dict[str, str], payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


def code(source: str, text: str = "", **kwargs: Any) -> Reply:
    """A root reply that calls the REPL tool with ``source``."""
    return Reply(text=text, tool_calls=[("python", {"code": source})], **kwargs)


Step = Callable[[ConverseRequest], "Reply | Fault"] | Reply | Fault


def scripted(root_model: str, steps: list[Step], sub: Responder = echo) -> Responder:
    """Play a root model turn by turn; every other model is answered by ``sub``.

    The turn is the number of assistant messages already in the conversation,
    so a retried request gets the same step again. Past the end of ``steps``
    the last one repeats.
    """

    def respond(request: ConverseRequest) -> Reply | Fault:
        if request.model_id != root_model:
            return sub(request)
        turn = sum(1 for m in request.messages if m.get("role") == "assistant")
        step = steps[min(turn, len(steps) - 1)]
        return step(request) if callable(step) else step

    return respond
