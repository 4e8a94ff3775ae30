"""Small helpers shared by the tests (fixtures live in conftest.py)."""

from __future__ import annotations

from mcp import Client


async def call(client: Client, tool: str, **arguments: object) -> dict:
    """Call a tool that must succeed; return its structured result."""
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, result.content[0].text if result.content else result
    assert result.structured_content is not None
    return result.structured_content


async def call_error(client: Client, tool: str, **arguments: object) -> str:
    """Call a tool that must fail; return the error text."""
    result = await client.call_tool(tool, arguments)
    assert result.is_error, f"{tool} should have failed but returned {result.structured_content}"
    return result.content[0].text
