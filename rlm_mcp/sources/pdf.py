"""PDF files: the text of each page becomes one document named ``file.pdf#page=N``.

Pages stay separate so an answer can cite the page, and ``context[i]`` is page
``i + 1`` when a single PDF is loaded. Text extraction uses pypdf (the optional
extra ``rlm-mcp[pdf]``); a page without extractable text (a scan) is kept,
empty but for its header, so page numbers never shift.
"""

from __future__ import annotations

from pathlib import Path

from rlm_mcp.errors import InvalidInput, TooLarge
from rlm_mcp.sources.derived import PartsWriter

SUFFIX = ".pdf"
MAGIC = b"%PDF-"


def is_pdf(name: str, head: bytes) -> bool:
    return name.lower().endswith(SUFFIX) or head.startswith(MAGIC)


def extract_pages(source: Path, name: str, writer: PartsWriter) -> None:
    try:
        from pypdf import PdfReader
    except ImportError:
        raise InvalidInput(
            f"{name} is a PDF, and reading PDFs needs the optional extra: pip install 'rlm-mcp[pdf]'"
        ) from None
    try:
        reader = PdfReader(source)
        if reader.is_encrypted and not reader.decrypt(""):
            raise InvalidInput(f"{name} is an encrypted PDF; decrypt it first")
        for number, page in enumerate(reader.pages, start=1):
            writer.add(f"{name}#page={number}", page.extract_text() or "")
    except (InvalidInput, TooLarge):
        raise
    except Exception as exc:  # a third-party parser on untrusted input: any failure means "unreadable"
        raise InvalidInput(f"{name} is not a readable PDF ({type(exc).__name__}: {exc})") from None
