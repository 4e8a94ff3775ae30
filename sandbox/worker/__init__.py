"""Everything that runs inside the confined worker process, and nothing else.

This folder is the boundary a security review reads: the worker's entry (:mod:`sandbox.worker.main`),
its confinement (seccomp, Landlock, limits), the restricted REPL and its guards, and the helpers code in the
REPL calls. From outside this folder it imports only :mod:`sandbox.protocol`, the wire format both processes
share (``tests/project/test_layers.py`` enforces it). The parent side (:mod:`sandbox.host` and the modules
beside it) starts the worker and speaks to it only through that protocol.
"""
