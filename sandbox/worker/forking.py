"""Inside the worker template (:mod:`sandbox.template`): import what workers need, then fork them on request.

The template's loop does two things and nothing else: on a request from the
server it forks a child that closes everything of the template's, becomes its
own session and process group, and runs :func:`sandbox.worker.main.run` (which
confines it before it reads anything); when a child ends it reaps it and tells
the server how. It never reads a session's channel: the descriptor is passed on
to the child unread.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import selectors
import signal
import socket
import sys
from typing import Any

from sandbox import protocol
from sandbox.protocol import Op

_PR_SET_NAME = 15
TEMPLATE_NAME = b"rlm-template"
"""The template's process name (``comm``), as ``ps`` shows it."""
WORKER_NAME = b"rlm-worker"
"""The name of a worker it forks."""


def _set_name(name: bytes) -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_NAME, ctypes.c_char_p(name), 0, 0, 0)


def preload() -> None:
    """Import what every worker imports, so a forked worker starts with it: the REPL, the policy, every
    module the sandbox offers, and (where the worker will not be able to read the library) every codec."""
    import importlib

    from sandbox.worker import confine, modules
    from sandbox.worker import main as worker  # noqa: F401  (the REPL, the policy and RestrictedPython, for the children)

    for name in {**modules.SAFE_MODULES, **modules.INTERNAL_MODULES}:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    if os.geteuid() == 0 and not all(confine.reachable_by_others(p) for p in confine.interpreter_directories()):
        confine.preload_codecs()


class _Template:
    """The template's loop: fork on request, reap and report children; nothing else."""

    def __init__(self, control: socket.socket):
        self.control = control
        self.channel = protocol.Channel(control, 16 * 1024 * 1024)
        self.wake_r, self.wake_w = socket.socketpair()
        self.wake_r.setblocking(False)
        self.wake_w.setblocking(False)
        self.selector = selectors.DefaultSelector()
        self.selector.register(control, selectors.EVENT_READ, "control")
        self.selector.register(self.wake_r, selectors.EVENT_READ, "children")

    def serve(self) -> None:
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.set_wakeup_fd(self.wake_w.fileno())
        while True:
            for key, _ in self.selector.select():
                if key.data == "children":
                    with contextlib.suppress(BlockingIOError):
                        while self.wake_r.recv(4096):
                            pass
                    self.reap()
                else:
                    try:
                        fds = self.channel.recv_fds(1)
                        request = self.channel.recv()
                    except (EOFError, OSError, protocol.ProtocolError):
                        return  # the server is gone or broke the channel: stop (children die with us)
                    self.fork(request, fds[0])

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.channel.send({"op": Op.EXITED, "pid": pid, "returncode": os.waitstatus_to_exitcode(status)})

    def fork(self, request: dict[str, Any], fd: int) -> None:
        config = dict(request.get("config") or {})
        workdir = str(request.get("workdir") or "/")
        started_r, started_w = os.pipe()
        try:
            pid = os.fork()
        except OSError as exc:  # out of processes or memory: the server starts this worker from nothing
            for unused in (started_r, started_w, fd):
                os.close(unused)
            self.channel.send({"op": Op.FORK_FAILED, "message": str(exc)[:200]})
            return
        if pid == 0:
            code = 1
            try:
                os.close(started_r)
                os.setsid()  # its own session and process group before the server learns its pid
                os.close(started_w)
                self.close_in_child(keep=fd)
                _set_name(WORKER_NAME)
                os.chdir(workdir)  # its own private directory; HOME and TMPDIR stay the template's (empty, private)
                from sandbox.worker import main as worker

                worker.run({**config, "fd": fd})
                code = 0
            finally:
                os._exit(code)
        os.close(started_w)
        os.read(started_r, 1)  # EOF once the child has its own session (or has died)
        os.close(started_r)
        os.close(fd)
        self.channel.send({"op": Op.FORKED, "pid": pid})

    def close_in_child(self, keep: int) -> None:
        """Nothing of the template's reaches the worker: the control channel, the selector, the wake-up pair."""
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        self.selector.close()
        self.wake_r.close()
        self.wake_w.close()
        self.control.close()
        os.closerange(3, keep)
        os.closerange(keep + 1, 65536)


def main() -> None:
    from sandbox.worker import confine

    config = json.loads(sys.argv[1])
    control = socket.socket(fileno=int(config["fd"]))
    _set_name(TEMPLATE_NAME)
    preload()
    confine.apply_template()
    protocol.Channel(control, 1024).send({"op": Op.READY, "pid": os.getpid()})
    _Template(control).serve()
