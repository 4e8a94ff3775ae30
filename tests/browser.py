"""Debian's headless Chromium, driven over the DevTools protocol on a pipe (no websocket, no downloads).

``--remote-debugging-pipe`` makes Chromium read commands from fd 3 and write
replies and events to fd 4, as NUL-terminated JSON. That is all a test needs:
open a page, wait for it to draw, ask the DOM questions, collect every console
message, exception and network request, and take a screenshot, which
:func:`decode_png` turns into pixels to check.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import queue
import shutil
import struct
import subprocess
import tempfile
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
]


READY = "document.body.dataset.rendered === 'true'"


def find_chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@dataclass
class PageReport:
    console: list[dict[str, Any]] = field(default_factory=list)
    """Console messages, log entries and uncaught exceptions, as (level, text) dicts."""
    requests: list[str] = field(default_factory=list)

    @property
    def errors(self) -> list[dict[str, Any]]:
        return [m for m in self.console if m["level"] in ("error", "exception", "warning")]


class Chromium:
    def __init__(self, executable: str, width: int = 1280, height: int = 900):
        self._profile = tempfile.mkdtemp(prefix="rlm-chromium-")
        cmd_read, self._cmd = os.pipe()
        self._out, out_write = os.pipe()
        # Move the child's ends above 10 so putting them on 3 and 4 cannot clobber one with the other.
        child_read = fcntl.fcntl(cmd_read, fcntl.F_DUPFD, 10)
        child_write = fcntl.fcntl(out_write, fcntl.F_DUPFD, 10)
        os.close(cmd_read)
        os.close(out_write)

        def on_fds() -> None:
            os.dup2(child_read, 3)
            os.dup2(child_write, 4)

        self.process = subprocess.Popen(
            [
                executable,
                *FLAGS,
                f"--user-data-dir={self._profile}",
                f"--window-size={width},{height}",
                "--remote-debugging-pipe",
                "about:blank",
            ],
            # The ends dup2'ed onto 3 and 4 are inheritable; every other descriptor Python opened is not
            # (PEP 446), so nothing else leaks into the browser.
            close_fds=False,
            preexec_fn=on_fds,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(child_read)
        os.close(child_write)
        self._next_id = 0
        self._replies: dict[int, dict[str, Any]] = {}
        self._events: queue.Queue[dict[str, Any]] = queue.Queue()
        self._lock = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.session: str | None = None

    def _read(self) -> None:
        buffer = b""
        while True:
            try:
                chunk = os.read(self._out, 1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                with self._lock:
                    self._lock.notify_all()
                return
            buffer += chunk
            while b"\0" in buffer:
                raw, buffer = buffer.split(b"\0", 1)
                message = json.loads(raw)
                if "id" in message:
                    with self._lock:
                        self._replies[message["id"]] = message
                        self._lock.notify_all()
                else:
                    self._events.put(message)

    def send(self, method: str, params: dict[str, Any] | None = None, timeout: float = 60) -> dict[str, Any]:
        self._next_id += 1
        request_id = self._next_id
        message: dict[str, Any] = {"id": request_id, "method": method, "params": params or {}}
        if self.session is not None and not method.startswith(("Target.", "Browser.")):
            message["sessionId"] = self.session
        os.write(self._cmd, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        with self._lock:
            while request_id not in self._replies:
                left = deadline - time.monotonic()
                if left <= 0 or self.process.poll() is not None:
                    raise TimeoutError(f"no reply to {method}")
                self._lock.wait(left)
            reply = self._replies.pop(request_id)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    def events(self) -> Iterator[dict[str, Any]]:
        while True:
            try:
                yield self._events.get_nowait()
            except queue.Empty:
                return

    def open(self, url: str, ready: str = READY, timeout: float = 60) -> PageReport:
        """Navigate the page to ``url`` and wait until the ``ready`` expression is true."""
        if self.session is None:
            targets = self.send("Target.getTargets")["targetInfos"]
            page = next(t for t in targets if t["type"] == "page")
            self.session = self.send("Target.attachToTarget", {"targetId": page["targetId"], "flatten": True})[
                "sessionId"
            ]
            for domain in ("Runtime", "Log", "Page", "Network"):
                self.send(f"{domain}.enable")
        report = PageReport()
        self.send("Page.navigate", {"url": url})
        deadline = time.monotonic() + timeout
        probe = f"(() => {{ try {{ return !!({ready}); }} catch (e) {{ return false; }} }})()"
        while not self.evaluate(probe):
            if time.monotonic() > deadline:
                self._collect(report)
                raise TimeoutError(f"{url} never became ready; console: {report.console}")
            time.sleep(0.1)
        time.sleep(0.3)  # let late console messages arrive
        self._collect(report)
        return report

    def _collect(self, report: PageReport) -> None:
        for event in self.events():
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.consoleAPICalled":
                text = " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", []))
                report.console.append({"level": params.get("type"), "text": text})
            elif method == "Runtime.exceptionThrown":
                details = params.get("exceptionDetails", {})
                report.console.append({"level": "exception", "text": json.dumps(details)[:2000]})
            elif method == "Log.entryAdded":
                entry = params.get("entry", {})
                report.console.append({"level": entry.get("level"), "text": entry.get("text", "")})
            elif method == "Network.requestWillBeSent":
                report.requests.append(params.get("request", {}).get("url", ""))

    def evaluate(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self) -> bytes:
        return base64.b64decode(self.send("Page.captureScreenshot", {"format": "png"})["data"])

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.send("Browser.close", timeout=5)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        for fd in (self._cmd, self._out):
            with contextlib.suppress(OSError):
                os.close(fd)
        shutil.rmtree(self._profile, ignore_errors=True)


@dataclass
class Image:
    width: int
    height: int
    channels: int
    rows: list[bytes]

    def pixel(self, x: int, y: int) -> tuple[int, int, int]:
        row = self.rows[y]
        offset = x * self.channels
        return row[offset], row[offset + 1], row[offset + 2]


def decode_png(data: bytes) -> Image:
    """Enough of PNG for Chromium's screenshots: 8-bit RGB or RGBA, not interlaced."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    position, idat = 8, b""
    width = height = channels = 0
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        body = data[position + 8 : position + 8 + length]
        position += 12 + length
        if kind == b"IHDR":
            width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and color in (2, 6) and interlace == 0, (depth, color, interlace)
            channels = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += body
    raw = zlib.decompress(idat)
    stride = width * channels
    rows: list[bytes] = []
    previous = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up = previous[i]
            corner = previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 255
            elif kind == 2:
                line[i] = (line[i] + up) & 255
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 255
            elif kind == 4:
                guess = left + up - corner
                pa, pb, pc = abs(guess - left), abs(guess - up), abs(guess - corner)
                line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 255
        rows.append(bytes(line))
        previous = line
    return Image(width, height, channels, rows)
