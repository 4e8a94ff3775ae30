"""Logging to stderr, as text for people or as one JSON object per line for log pipelines.

stdout is the protocol channel in stdio mode, so nothing here ever writes to it.
JSON lines carry the time, level, logger, message, any structured fields a call
passed with ``extra=`` (for example the per-run summary) and, inside a span, its
``trace_id`` and ``span_id``, so CloudWatch or any log store can join a log line
to its trace.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

from opentelemetry import trace

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# LogRecord's own attributes, and uvicorn's ANSI-coloured copy of its message: not fields of ours.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                data[key] = value
        span_context = trace.get_current_span().get_span_context()
        if span_context.is_valid:
            data["trace_id"] = format(span_context.trace_id, "032x")
            data["span_id"] = format(span_context.span_id, "016x")
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            data["exception"] = record.exc_text
        return json.dumps(data, ensure_ascii=False, default=str)


_VIEWER_LINK = re.compile(r"(\blink=)[^&\s\"]+")


class HideViewerLinks(logging.Filter):
    """The access log names each request's path and query: a signed viewer link (``?link=...``, a capability
    for one trajectory's page) is written as ``link=<hidden>``."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "uvicorn.access" and isinstance(record.args, tuple):
            record.args = tuple(
                _VIEWER_LINK.sub(r"\1<hidden>", arg) if isinstance(arg, str) else arg for arg in record.args
            )
        return True


def configure(level: str, fmt: str = "text") -> None:
    """Send every log record, ours and the libraries' (uvicorn, mcp), to stderr in one format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    handler.addFilter(HideViewerLinks())
    logging.basicConfig(level=level, handlers=[handler], force=True)
