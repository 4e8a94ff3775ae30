"""Everything that runs inside the confined worker process, and nothing else.

This folder is the boundary a security review reads: the worker's entry (:mod:`sandbox.worker.main`),
its confinement (seccomp, Landlock, limits), the restricted REPL and its guards, and the helpers code in the
REPL calls.

The import rule: a module here imports, from :mod:`sandbox`, only :mod:`sandbox.protocol` (the wire format
and the values both processes agree on: message names, the rule for user names, snapshot constants, the
importable modules) and modules of this folder. Nothing from the parent side (:mod:`sandbox.host` and the
modules beside it, which load anyio and start processes), and the parent side imports nothing from here: it
starts the worker by module name and speaks to it only through the protocol. A value both sides need goes
into :mod:`sandbox.protocol`, never into one side for the other to import. ``tests/sandbox/test_boundary.py``
enforces it.
"""
