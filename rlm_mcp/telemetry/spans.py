"""OpenTelemetry spans for runs, iterations, code executions and model calls, and a summary per run.

Spans follow the OpenTelemetry GenAI semantic conventions, so CloudWatch GenAI
Observability (through ADOT or its OTLP endpoint) and any OTLP backend show them
as an agent invocation with model calls and tool executions:

- ``invoke_agent rlm``: one ``rlm_query`` run (root model, corpus size, totals, status);
- ``iteration <n>``: one root turn, holding:
- ``chat <model>``: a model call, root or sub (``gen_ai.usage.*`` tokens, stop reason);
- ``execute_tool python``: one code execution (``repl_exec`` or a root turn), holding its sub-calls.

Only the OpenTelemetry *API* is needed here (the mcp SDK depends on it), so with
no SDK installed or configured every span is a no-op and nothing changes. The
``otel`` extra adds the SDK and the OTLP exporter, which :mod:`rlm_mcp.telemetry.tracing`
sets up when ``RLM_TRACES`` asks for it. Prompts, code and outputs are never put
on spans: they can hold the corpus, and trajectories already record them.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, StatusCode

from rlm_mcp import __version__

if TYPE_CHECKING:
    from rlm_mcp.models import Completion
    from rlm_mcp.schemas import Trajectory
    from sandbox import ExecResult

log = logging.getLogger(__name__)
tracer = trace.get_tracer("rlm_mcp", __version__)

PROVIDERS = {"bedrock": "aws.bedrock", "openai": "openai", "sampling": "mcp.sampling"}
"""``gen_ai.provider.name`` of each model backend (names as in ``bedrock:<id>``, ``openai:<model>``, ``sampling``).

The GenAI conventions name Bedrock ``aws.bedrock`` and OpenAI ``openai``; an OpenAI-compatible server (Ollama,
vLLM) speaks OpenAI's API, so it is labelled as such. Sampling has no registered name: the model is whatever the
MCP client chose, so the span says it went through MCP sampling."""
AGENT_NAME = "rlm"
CODE_TOOL = "python"
_FAILED = frozenset({"failed", "interrupted"})


class RunSpan:
    def __init__(self, span: Span):
        self.span = span

    def finish(self, trajectory: Trajectory) -> dict[str, Any]:
        """Put the run's totals on its span and log them as one structured line; returns the summary."""
        summary = run_summary(trajectory)
        self.span.set_attributes(
            {
                "gen_ai.usage.input_tokens": summary["root_input_tokens"] + summary["sub_input_tokens"],
                "gen_ai.usage.output_tokens": summary["root_output_tokens"] + summary["sub_output_tokens"],
                **{f"rlm.{key}": value for key, value in summary.items() if value is not None},
            }
        )
        if trajectory.status in _FAILED:
            self.span.set_attribute("error.type", trajectory.status)
            self.span.set_status(StatusCode.ERROR, trajectory.message or trajectory.status)
        log.info(
            "run %s %s: %d iterations, %d sub-calls, %d tokens in / %d out, cost %s, %s of the corpus to sub-models",
            trajectory.id,
            trajectory.status,
            summary["iterations"],
            summary["sub_calls"],
            summary["root_input_tokens"] + summary["sub_input_tokens"],
            summary["root_output_tokens"] + summary["sub_output_tokens"],
            "unknown" if summary["cost_usd"] is None else f"${summary['cost_usd']:.4f}",
            "none" if summary["corpus_share"] is None else f"{summary['corpus_share']:.0%}",
            extra={"run_summary": summary},
        )
        return summary


def run_summary(trajectory: Trajectory) -> dict[str, Any]:
    """What a run did, in numbers: iterations, sub-calls, tokens, cost, and how much corpus went to sub-models."""
    failed = sum(1 for step in trajectory.steps for call in step.sub_calls if call.error is not None)
    return {
        "trajectory_id": trajectory.id,
        "session_id": trajectory.session_id,
        "status": trajectory.status,
        "iterations": trajectory.iterations,
        "sub_calls": trajectory.sub_calls,
        "sub_calls_failed": failed,
        "root_input_tokens": trajectory.usage.root_input_tokens,
        "root_output_tokens": trajectory.usage.root_output_tokens,
        "sub_input_tokens": trajectory.usage.sub_input_tokens,
        "sub_output_tokens": trajectory.usage.sub_output_tokens,
        "cost_usd": trajectory.cost_usd,
        "corpus_chars": trajectory.corpus_chars,
        "sub_prompt_chars": trajectory.sub_prompt_chars,
        "corpus_share": trajectory.corpus_share,
        "elapsed_s": trajectory.elapsed_s,
    }


def provider_name(backend: str) -> str:
    """The ``gen_ai.provider.name`` of a backend; one we have no name for is labelled as itself."""
    return PROVIDERS.get(backend, backend)


@contextlib.contextmanager
def run_span(
    *,
    trajectory_id: str,
    session_id: str,
    backend: str,
    root_model: str,
    root_max_tokens: int,
    sub_model: str | None,
    max_iterations: int,
    max_sub_calls: int,
) -> Iterator[RunSpan]:
    """One run; ``backend`` is the root model's (``bedrock``, ``openai``, ``sampling``)."""
    attributes = {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.provider.name": provider_name(backend),
        "gen_ai.agent.name": AGENT_NAME,
        "gen_ai.conversation.id": session_id,
        "gen_ai.request.model": root_model,
        "gen_ai.request.max_tokens": root_max_tokens,
        "rlm.trajectory_id": trajectory_id,
        "rlm.session_id": session_id,
        "rlm.sub_model": sub_model or "",
        "rlm.max_iterations": max_iterations,
        "rlm.max_sub_calls": max_sub_calls,
    }
    with tracer.start_as_current_span(f"invoke_agent {AGENT_NAME}", kind=SpanKind.INTERNAL, attributes=attributes) as s:
        yield RunSpan(s)


@contextlib.contextmanager
def iteration_span(iteration: int) -> Iterator[Span]:
    """One root turn. A turn that ends the run does so by raising; that is not an error of the turn."""
    with tracer.start_as_current_span(
        f"iteration {iteration}",
        attributes={"rlm.iteration": iteration},
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        try:
            yield span
        except BaseException:
            span.set_attribute("rlm.iteration.last", True)
            raise


class ModelSpan:
    def __init__(self, span: Span):
        self.span = span

    def completed(self, completion: Completion) -> None:
        self.span.set_attributes(
            {
                "gen_ai.response.model": completion.model,
                "gen_ai.usage.input_tokens": completion.usage.input_tokens,
                "gen_ai.usage.output_tokens": completion.usage.output_tokens,
                "gen_ai.response.finish_reasons": [completion.stop_reason],
                "rlm.tool_calls": len(completion.tool_calls),
            }
        )


@contextlib.contextmanager
def model_span(
    model: str, *, backend: str, role: str, max_tokens: int, prompt_chars: int | None = None
) -> Iterator[ModelSpan]:
    """One model call (``role`` is ``root`` or ``sub``) to the backend that serves it; failures carry ``error.type``."""
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": provider_name(backend),
        "gen_ai.request.model": model,
        "gen_ai.request.max_tokens": max_tokens,
        "rlm.role": role,
    }
    if prompt_chars is not None:
        attributes["rlm.prompt_chars"] = prompt_chars
    with tracer.start_as_current_span(
        f"chat {model}", kind=SpanKind.CLIENT, attributes=attributes, set_status_on_exception=False
    ) as span:
        try:
            yield ModelSpan(span)
        except Exception as exc:
            span.set_attribute("error.type", getattr(exc, "kind", None) or type(exc).__qualname__)
            span.set_status(StatusCode.ERROR, str(exc)[:500])
            raise


class CodeSpan:
    def __init__(self, span: Span):
        self.span = span

    def result(self, result: ExecResult) -> None:
        self.span.set_attributes(
            {
                "rlm.exec.elapsed_ms": round(result.elapsed_ms, 3),
                "rlm.exec.output_chars": result.output_chars or len(result.stdout),
                "rlm.exec.timed_out": result.timed_out,
                "rlm.exec.restarted": result.restarted,
                "rlm.exec.final": result.final is not None,
            }
        )
        if result.error is not None:
            self.span.set_attribute("error.type", result.error.type)
            self.span.set_status(StatusCode.ERROR, result.error.message[:500])


@contextlib.contextmanager
def code_span(session_id: str, code: str, *, tool_call_id: str | None = None) -> Iterator[CodeSpan]:
    """One code execution in a session's sandbox; its sub-calls are its children."""
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": CODE_TOOL,
        "gen_ai.tool.type": "function",
        "rlm.session_id": session_id,
        "rlm.code_chars": len(code),
    }
    if tool_call_id:
        attributes["gen_ai.tool.call.id"] = tool_call_id
    with tracer.start_as_current_span(f"execute_tool {CODE_TOOL}", attributes=attributes) as span:
        yield CodeSpan(span)
