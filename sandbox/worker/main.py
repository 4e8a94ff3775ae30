"""The worker process: one per session, running user code in a persistent namespace.

Started by :class:`sandbox.host.Sandbox` with the same interpreter in isolated
mode. It confines itself (see :mod:`sandbox.worker.confine`), says ``ready`` and then
serves requests from its parent over a dedicated socket, one at a time. It
never holds a model client or a credential: ``llm_query`` sends the prompts to
the parent and waits for the texts.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from typing import Any

from sandbox.protocol import Channel, Op
from sandbox.worker import confine, loader, snapshot
from sandbox.worker.capture import OutputCapture
from sandbox.worker.interrupts import Interrupts
from sandbox.worker.repl import RESERVED, Repl


def serve(channel: Channel, repl: Repl) -> None:
    """Answer the parent's requests one at a time; every reply carries the id of its request."""
    while True:
        try:
            message = channel.recv()
        except EOFError:
            return
        op, request_id = message.get("op"), message.get("id")
        repl.parent_request = request_id
        try:
            if op == Op.EXEC:
                reply = repl.execute(str(message["code"]), float(message["timeout"]))
            elif op == Op.LOAD:
                try:
                    reply = {"op": Op.LOADED, **repl.load(message)}
                except loader.DocumentDecodeError as exc:
                    reply = {"op": Op.LOAD_ERROR, "message": str(exc)}
            elif op == Op.VARS:
                reply = {"op": Op.VARS, "variables": repl.variables()}
            elif op == Op.SNAPSHOT:
                reply = {"op": Op.SNAPSHOT, **snapshot.encode(repl.ns, RESERVED, int(message["max_bytes"]))}
            elif op == Op.RESTORE:
                values, failed = snapshot.decode(message, RESERVED)
                repl.ns.update(values)
                reply = {"op": Op.RESTORED, "restored": list(values), "failed": failed}
            elif op == Op.SHUTDOWN:
                return
            else:
                reply = {"op": Op.INTERNAL_ERROR, "message": f"unknown request {op!r}"}
        except MemoryError:
            repl.capture = OutputCapture(repl.max_output_chars)
            reply = {"op": Op.INTERNAL_ERROR, "message": "the sandbox ran out of memory while answering"}
        except (EOFError, BrokenPipeError):
            return
        channel.send({**reply, "id": request_id})


def run(config: dict[str, Any]) -> None:
    """Confine this process with the limits in ``config``, say ready on the channel ``config["fd"]``, serve.

    A worker started from nothing (:func:`main`) and one forked by the template
    (:mod:`sandbox.template`) both come here before reading any request.
    """
    sock = socket.socket(fileno=int(config["fd"]))
    channel = Channel(sock, int(config["max_message_bytes"]))
    interrupts = Interrupts()
    repl = Repl(channel, interrupts, int(config["max_output_chars"]), int(config["max_final_chars"]))
    report = confine.apply(
        confine.Confinement(
            memory_bytes=config.get("memory_bytes"),
            cpu_seconds=config.get("cpu_seconds"),
            readable=confine.interpreter_directories(),
        )
    )
    interrupts.install()
    channel.send({"op": Op.READY, "pid": os.getpid(), "confinement": report})
    serve(channel, repl)


def main() -> None:
    run(json.loads(sys.argv[1]))


if __name__ == "__main__":
    main()
