"""Traces, JSON logs and the per-run summary.

In process, the OpenTelemetry SDK's in-memory exporter records every span while a
real ``mcp.Client`` drives the server; over the wire, a server process exports
OTLP/HTTP to a collector stand-in here that decodes the protobuf, and its
stderr is checked line by line.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from conftest import ROOT_MODEL, SUB_MODEL, HttpServer, server_env
from helpers import call, rpc, tool_result
from mcp import Client, StdioServerParameters
from opentelemetry import trace
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from rlm_mcp.config import Settings
from rlm_mcp.core.service import RLMService
from rlm_mcp.server.app import build_server
from rlm_mcp.telemetry import tracing
from rlm_mcp.testing.bedrock import ConverseRequest, Fault, Reply, code, scripted

pytestmark = pytest.mark.anyio
CORPUS = "".join(f"record {i}: {'needle' if i % 10 == 3 else 'hay'}\n" for i in range(200))
MAP = """
chunks = [context[i:i + 1000] for i in range(0, len(context), 1000)]
counts = llm_query_batched(['how many? ' + c for c in chunks])
print(len(chunks))
"""


@pytest.fixture(scope="module")
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)  # once per process: our tracer and the mcp SDK's now record here
    yield exporter


@pytest.fixture
async def app(tmp_path: Path, fake, monkeypatch: pytest.MonkeyPatch, spans: InMemorySpanExporter) -> AsyncIterator:
    for name, value in server_env(tmp_path, tmp_path, fake.url).items():
        if name.startswith("AWS_"):
            monkeypatch.setenv(name, value)
    settings = Settings(
        data_dir=tmp_path / "data",
        allowed_roots=[tmp_path],
        root_model=ROOT_MODEL,
        sub_model=SUB_MODEL,
        exec_timeout_s=600,
        bedrock_max_attempts=1,
    )
    service = RLMService(settings)
    async with service.running():
        spans.clear()
        yield build_server(service)


def by_name(finished: tuple[ReadableSpan, ...], prefix: str) -> list[ReadableSpan]:
    return [s for s in finished if s.name.startswith(prefix)]


def children(finished: tuple[ReadableSpan, ...], parent: ReadableSpan) -> list[ReadableSpan]:
    return [s for s in finished if s.parent is not None and s.parent.span_id == parent.context.span_id]


def sub_answer(request: ConverseRequest) -> Reply:
    return Reply(text=str(request.last_user_text.count("needle")), input_tokens=30, output_tokens=2)


async def test_repl_exec_traces_the_execution_and_each_sub_call(app, fake, spans: InMemorySpanExporter) -> None:
    fake.respond = sub_answer
    async with Client(app) as client:
        sid = (await call(client, "load_context", content=CORPUS))["session_id"]
        out = await call(client, "repl_exec", session_id=sid, code=MAP)
    assert out["stdout"] == f"{-(-len(CORPUS) // 1000)}\n"
    finished = spans.get_finished_spans()
    [execution] = by_name(finished, "execute_tool python")
    assert execution.attributes["gen_ai.operation.name"] == "execute_tool"
    assert execution.attributes["gen_ai.tool.name"] == "python"
    assert execution.attributes["rlm.session_id"] == sid and execution.attributes["rlm.exec.final"] is False
    [tool_call] = [s for s in finished if s.name == "tools/call repl_exec"]  # the mcp SDK's own span
    assert execution.parent.span_id == tool_call.context.span_id
    subs = children(finished, execution)
    assert len(subs) == out["sub_calls"]["count"] == len(by_name(finished, f"chat {SUB_MODEL}"))
    for sub in subs:
        assert sub.kind == trace.SpanKind.CLIENT and sub.status.is_ok
        attributes = sub.attributes
        assert attributes["gen_ai.operation.name"] == "chat" and attributes["gen_ai.provider.name"] == "aws.bedrock"
        assert attributes["gen_ai.request.model"] == SUB_MODEL and attributes["rlm.role"] == "sub"
        assert (attributes["gen_ai.usage.input_tokens"], attributes["gen_ai.usage.output_tokens"]) == (30, 2)
        assert attributes["gen_ai.response.finish_reasons"] == ("end_turn",)
        assert 0 < attributes["rlm.prompt_chars"] <= 1000 + len("how many? ")
        assert sub.end_time - sub.start_time > 0  # the latency is the span's duration


async def test_a_failed_sub_call_and_a_failed_execution_are_errors(app, fake, spans: InMemorySpanExporter) -> None:
    fake.respond = lambda request: Fault(400, "ValidationException", "the prompt is malformed")
    async with Client(app) as client:
        sid = (await call(client, "load_context", content="x"))["session_id"]
        out = await call(client, "repl_exec", session_id=sid, code="llm_query('hi')")
    assert out["error"]["type"] == "LLMError"
    finished = spans.get_finished_spans()
    [sub] = by_name(finished, "chat ")
    assert not sub.status.is_ok and sub.attributes["error.type"] == "validation"
    [execution] = by_name(finished, "execute_tool")
    assert not execution.status.is_ok and execution.attributes["error.type"] == "LLMError"


async def test_a_run_is_one_span_with_iterations_model_calls_and_a_summary(
    app, fake, spans: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    fake.respond = scripted(
        ROOT_MODEL,
        [
            code("print(len(context))", input_tokens=100, output_tokens=10),
            code(MAP + "total = sum(int(c) for c in counts)", input_tokens=120, output_tokens=20),
            code("FINAL(total)", input_tokens=140, output_tokens=5),
        ],
        sub=sub_answer,
    )
    caplog.set_level(logging.INFO, logger="rlm_mcp")
    async with Client(app) as client:
        sid = (await call(client, "load_context", content=CORPUS))["session_id"]
        result = await call(client, "rlm_query", session_id=sid, query="How many needles?")
        trajectory = await call(client, "get_trajectory", trajectory_id=result["trajectory_id"])
    assert result["status"] == "completed" and result["answer"] == str(CORPUS.count("needle")) == "20"

    finished = spans.get_finished_spans()
    [run] = by_name(finished, "invoke_agent rlm")
    [tool_call] = [s for s in finished if s.name == "tools/call rlm_query"]
    assert run.parent.span_id == tool_call.context.span_id and run.status.is_ok
    attributes = run.attributes
    assert attributes["gen_ai.operation.name"] == "invoke_agent" and attributes["gen_ai.agent.name"] == "rlm"
    assert attributes["gen_ai.request.model"] == ROOT_MODEL and attributes["gen_ai.conversation.id"] == sid
    assert attributes["rlm.trajectory_id"] == result["trajectory_id"] and attributes["rlm.status"] == "completed"
    chunks = -(-len(CORPUS) // 1000)
    assert (attributes["rlm.iterations"], attributes["rlm.sub_calls"]) == (3, chunks)
    assert attributes["gen_ai.usage.input_tokens"] == 360 + 30 * chunks
    assert attributes["gen_ai.usage.output_tokens"] == 35 + 2 * chunks
    assert attributes["rlm.corpus_chars"] == len(CORPUS)
    assert attributes["rlm.sub_prompt_chars"] == len(CORPUS) + chunks * len("how many? ")
    assert attributes["rlm.corpus_share"] == round(attributes["rlm.sub_prompt_chars"] / len(CORPUS), 4)

    iterations = children(finished, run)
    assert [s.name for s in iterations] == ["iteration 1", "iteration 2", "iteration 3"]
    assert all(s.status.is_ok for s in iterations)  # ending the run with FINAL is not an error
    for index, iteration in enumerate(iterations):
        root_call, execution = sorted(children(finished, iteration), key=lambda s: s.start_time)
        assert root_call.name == f"chat {ROOT_MODEL}" and root_call.attributes["rlm.role"] == "root"
        assert root_call.attributes["gen_ai.usage.input_tokens"] == [100, 120, 140][index]
        assert root_call.attributes["gen_ai.response.finish_reasons"] == ("tool_use",)
        assert execution.name == "execute_tool python" and execution.attributes["gen_ai.tool.call.id"]
        assert len(children(finished, execution)) == (chunks if index == 1 else 0)

    # The same summary is in the trajectory and in one structured log line.
    assert trajectory["corpus_chars"] == len(CORPUS) and trajectory["corpus_share"] == attributes["rlm.corpus_share"]
    [record] = [r for r in caplog.records if hasattr(r, "run_summary")]
    summary = record.run_summary
    assert summary["trajectory_id"] == result["trajectory_id"] and summary["sub_calls"] == chunks
    assert summary["corpus_share"] == attributes["rlm.corpus_share"] and summary["iterations"] == 3
    assert f"{chunks} sub-calls" in record.getMessage() and "of the corpus" in record.getMessage()


# -- over the wire: OTLP export, JSON logs, trace context from headers ------------------------------


class Collector:
    """An OTLP/HTTP trace receiver: decodes what exporters send to /v1/traces."""

    def __init__(self) -> None:
        self.spans: list[Any] = []
        self.resources: list[dict[str, Any]] = []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                request = ExportTraceServiceRequest.FromString(body)
                for resource_spans in request.resource_spans:
                    collector.resources.append(
                        {a.key: a.value.string_value for a in resource_spans.resource.attributes}
                    )
                    for scope_spans in resource_spans.scope_spans:
                        collector.spans.extend(scope_spans.spans)
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/traces"

    def attributes(self, span: Any) -> dict[str, Any]:
        values = {}
        for attribute in span.attributes:
            value = attribute.value
            values[attribute.key] = getattr(value, value.WhichOneof("value"))
        return values


async def test_otlp_export_json_logs_and_the_callers_trace(tmp_path: Path, fake) -> None:
    collector = Collector()
    fake.respond = scripted(ROOT_MODEL, [code(MAP), code("FINAL('done')")], sub=sub_answer)
    env = server_env(
        tmp_path / "data",
        tmp_path,
        fake.url,
        RLM_TRACES="otlp",
        RLM_LOG_FORMAT="json",
        RLM_LOG_LEVEL="INFO",
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=collector.url,
        OTEL_SERVICE_NAME="rlm-under-test",
        OTEL_BSP_SCHEDULE_DELAY="100",
    )
    stderr_path = tmp_path / "stderr.log"
    trace_id, parent_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    with stderr_path.open("w") as stderr:
        server = HttpServer(env, "--stateless", stderr=stderr, stdout=subprocess.PIPE)
        try:
            async with Client(server.url, read_timeout_seconds=60) as client:
                sid = (await call(client, "load_context", content=CORPUS))["session_id"]
                result = await call(client, "rlm_query", session_id=sid, query="count")
            assert result["status"] == "completed"
            # As AgentCore forwards an invocation: the caller's trace in a W3C header, nothing in _meta.
            headers = {
                "Accept": "application/json, text/event-stream",
                "traceparent": f"00-{trace_id}-{parent_id}-01",
            }
            params = {"name": "repl_exec", "arguments": {"session_id": sid, "code": "llm_query('hello')"}}
            tool_result(rpc(server.url, "tools/call", params, headers))
        finally:
            server.stop()
        assert server.process.stdout is not None and server.process.stdout.read() == b""  # never on stdout

    names = {span.name for span in collector.spans}
    assert {"invoke_agent rlm", "iteration 1", f"chat {ROOT_MODEL}", f"chat {SUB_MODEL}"} <= names
    assert "execute_tool python" in names and "tools/call rlm_query" in names
    [joined] = [span for span in collector.spans if span.name == "tools/call repl_exec"]
    assert joined.trace_id.hex() == trace_id and joined.parent_span_id.hex() == parent_id
    in_that_trace = {span.name for span in collector.spans if span.trace_id.hex() == trace_id}
    assert in_that_trace == {"tools/call repl_exec", "execute_tool python", f"chat {SUB_MODEL}"}
    assert collector.resources[0]["service.name"] == "rlm-under-test"
    [run] = [span for span in collector.spans if span.name == "invoke_agent rlm"]
    assert collector.attributes(run)["gen_ai.operation.name"] == "invoke_agent"
    assert collector.attributes(run)["rlm.sub_calls"] == -(-len(CORPUS) // 1000)

    lines = [json.loads(line) for line in stderr_path.read_text().splitlines() if line.strip()]
    assert lines and all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    [summary] = [line for line in lines if "run_summary" in line]
    assert summary["run_summary"]["trajectory_id"] == result["trajectory_id"]
    assert summary["trace_id"] == run.trace_id.hex() and summary["level"] == "INFO"
    assert any(line["logger"].startswith("uvicorn") for line in lines)  # the web server's logs are JSON too


def test_exports_to_cloudwatch_are_signed_and_others_are_not(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAFAKEFAKEFAKE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "fake-secret")
    session = tracing._signing_session()
    to_cloudwatch = requests.Request(
        "POST",
        "https://xray.eu-west-1.amazonaws.com/v1/traces",
        data=b"\x0a\x00",
        headers={"Content-Type": "application/x-protobuf"},
    )
    signed = session.prepare_request(to_cloudwatch)
    assert signed.headers["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIAFAKEFAKEFAKE/")
    assert "/eu-west-1/xray/aws4_request" in signed.headers["Authorization"]
    assert "X-Amz-Date" in signed.headers and "x-amz-content-sha256" not in signed.headers
    elsewhere = session.prepare_request(requests.Request("POST", "http://collector:4318/v1/traces", data=b""))
    assert "Authorization" not in elsewhere.headers


NO_SDK = (
    "import sys\n"
    "for name in ('opentelemetry.sdk', 'opentelemetry.exporter'): sys.modules[name] = None\n"
    "from rlm_mcp.cli.entry import main\n"
    "main()\n"
)


async def test_without_the_otel_extra_everything_works(tmp_path: Path, fake) -> None:
    """The SDK made unimportable, as in an install without the otel extra: the spans are no-ops."""
    env = server_env(tmp_path / "data", tmp_path, fake.url)
    fake.respond = scripted(ROOT_MODEL, [code(MAP), code("FINAL('done')")], sub=sub_answer)
    async with Client(StdioServerParameters(command=sys.executable, args=["-c", NO_SDK], env=env)) as client:
        sid = (await call(client, "load_context", content=CORPUS))["session_id"]
        assert (await call(client, "rlm_query", session_id=sid, query="q"))["answer"] == "done"


def test_asking_for_traces_without_the_otel_extra_says_how_to_get_it(tmp_path: Path, fake) -> None:
    env = server_env(tmp_path / "data", tmp_path, fake.url, RLM_TRACES="otlp")
    done = subprocess.run([sys.executable, "-c", NO_SDK], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and done.stdout == ""
    assert "RLM_TRACES=otlp needs the OpenTelemetry SDK" in done.stderr and "pip install 'rlm-mcp[otel]'" in done.stderr
