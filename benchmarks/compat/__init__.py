"""The compatibility suite: real model-written RLM cells replayed in plain CPython and in the sandbox.

``python -m benchmarks.compat`` prints the share of harmless cells that run as in
CPython, per source and per refusal cause; ``tests/sandbox/test_compat.py`` asserts it
cell by cell. The corpus and its sources are in ``tests/compat/``. Importing
this package runs nothing.
"""
