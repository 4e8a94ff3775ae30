"""rlm-mcp's benchmark suite: ``python -m benchmarks`` (see BENCHMARKS.md). Not collected by pytest."""
