"""The core of rlm-mcp, usable without MCP: sessions, loading, runs, sub-calls and trajectories.

It stands on the model clients, sources, store, telemetry and viewer (and the sandbox), never on the
server or the command line.
"""
