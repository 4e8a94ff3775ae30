"""Public test doubles for rlm-mcp: use them in your own tests, benchmarks and offline demos.

- :mod:`rlm_mcp.testing.bedrock` (``ConverseFake``) and :mod:`rlm_mcp.testing.openai`
  (``ChatCompletionsFake``): local HTTP servers that speak the real wire protocols, so the real client
  code (boto3, the OpenAI-compatible client) runs against them;
- :mod:`rlm_mcp.testing.sampling`: the MCP client's own model, as a ``sampling_callback``;
- :mod:`rlm_mcp.testing.mock_model` (``MockModel``): a model client in-process, for fast tests of the loop.

All of them play the scripted ``Reply``/``Fault`` values of :mod:`rlm_mcp.testing.base`. This package is
part of the public surface (semantic versioning applies); nothing in the product imports it.
"""
