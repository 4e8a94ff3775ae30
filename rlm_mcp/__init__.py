"""rlm-mcp: a Recursive Language Model behind the Model Context Protocol."""

__version__ = "0.1.0"
