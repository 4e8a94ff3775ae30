"""Where spans go: the OpenTelemetry SDK set up from ``RLM_TRACES``, and trace context from HTTP headers.

``RLM_TRACES=otlp`` installs a tracer provider with a batching OTLP/HTTP exporter
configured the standard way (``OTEL_EXPORTER_OTLP_ENDPOINT`` or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``, ``OTEL_EXPORTER_OTLP_HEADERS``,
``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_BSP_*``): the SDK reads
them itself. When the endpoint is CloudWatch's own OTLP endpoint
(``https://xray.<region>.amazonaws.com/v1/traces``), each export is signed with
SigV4 from boto3's credential chain, so an AgentCore runtime or any AWS role
sends traces straight to CloudWatch GenAI Observability with no collector. An
ADOT collector or any other OTLP collector needs no signing.

``console`` prints spans as JSON to stderr (stdout is the protocol channel in
stdio mode). ``off`` installs nothing, so a provider set up by the host (for
example ``opentelemetry-instrument``) still receives our spans.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from opentelemetry import context, propagate, trace

from rlm_mcp import __version__
from rlm_mcp.errors import RLMError

log = logging.getLogger(__name__)
_XRAY_HOST = re.compile(r"^xray\.([a-z0-9-]+)\.amazonaws\.com$")


def setup(mode: str) -> Callable[[], None]:
    """Install the tracer provider ``mode`` asks for; returns what flushes and stops it at exit."""
    if mode == "off":
        return lambda: None
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
    except ImportError:
        raise RLMError(
            f"RLM_TRACES={mode} needs the OpenTelemetry SDK: install rlm-mcp with its otel extra "
            "(pip install 'rlm-mcp[otel]'), or set RLM_TRACES=off"
        ) from None
    resource = Resource.create({"service.version": __version__})
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": "rlm-mcp"}))
    exporter: SpanExporter
    if mode == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(session=_signing_session())
    else:
        exporter = ConsoleSpanExporter(out=sys.stderr, formatter=lambda span: span.to_json(indent=None) + "\n")
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    log.info("traces: %s exporter, service %s", mode, resource.attributes.get("service.name"))
    return provider.shutdown


def _signing_session() -> Any:
    """A requests session that signs exports bound for CloudWatch's OTLP endpoint with SigV4."""
    import boto3
    import requests
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest

    credentials_source = boto3.session.Session()

    class SigV4ForCloudWatch(requests.auth.AuthBase):
        def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
            match = _XRAY_HOST.match(urlsplit(request.url or "").hostname or "")
            if match is None:
                return request
            credentials = credentials_source.get_credentials()
            if credentials is None:
                log.warning("no AWS credentials to sign trace exports to %s", request.url)
                return request
            headers = {k: v for k, v in request.headers.items() if k.lower() in ("content-type", "content-encoding")}
            signed = AWSRequest(method=request.method, url=request.url, data=request.body, headers=headers)
            SigV4Auth(credentials.get_frozen_credentials(), "xray", match[1]).add_auth(signed)
            request.headers.update(dict(signed.headers.items()))
            return request

    session = requests.Session()
    session.auth = SigV4ForCloudWatch()
    return session


class TraceContextMiddleware:
    """ASGI middleware: continue the caller's trace from W3C ``traceparent`` headers.

    AgentCore Runtime (and most gateways) send the trace of the invocation as HTTP
    headers; the MCP SDK only reads trace context from a request's ``_meta``. With
    this, a tool call's spans join the platform's trace instead of starting one.
    """

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        carrier = {key.decode("latin-1"): value.decode("latin-1") for key, value in scope.get("headers", [])}
        extracted = propagate.extract(carrier)
        if not trace.get_current_span(extracted).get_span_context().is_valid:
            await self.app(scope, receive, send)
            return
        token = context.attach(extracted)
        try:
            await self.app(scope, receive, send)
        finally:
            context.detach(token)
