"""The MCP surface: tools, prompts and resources mapped onto the core, and the HTTP pieces around them.

Nothing here decides anything: each tool is a call into :mod:`rlm_mcp.core`. Only :mod:`rlm_mcp.cli`
imports this package.
"""
