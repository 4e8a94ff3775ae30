#!/usr/bin/env python3
"""Ask rlm-mcp on AgentCore Runtime a question about a local file, as an MCP client signed with SigV4.

    python3 scripts/agentcore_client.py --arn "$RUNTIME_ARN" --file notes.txt --query "How many ...?"

The runtime's MCP endpoint is
``https://bedrock-agentcore.<region>.amazonaws.com/runtimes/<url-encoded ARN>/invocations?qualifier=DEFAULT``;
every request is signed with the caller's AWS credentials (boto3's usual chain:
``AWS_PROFILE``, environment, SSO, instance role) for the ``bedrock-agentcore``
service, which needs ``bedrock-agentcore:InvokeAgentRuntime`` on the runtime. One
``X-Amzn-Bedrock-AgentCore-Runtime-Session-Id`` is kept for the whole conversation,
so the platform routes every request to the same microVM, where the session's
sandbox lives. ``--url`` points the same client at any other endpoint (for example
a local ``rlm-mcp serve``) to try it out.
"""

from __future__ import annotations

import argparse
import uuid
from collections.abc import Generator
from pathlib import Path
from urllib.parse import quote

import anyio
import boto3
import httpx2
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client


class SigV4(httpx2.Auth):
    """Sign each HTTP request for an AWS service with the default credential chain."""

    requires_request_body = True

    def __init__(self, service: str, region: str, session: boto3.session.Session | None = None):
        self.service, self.region = service, region
        self.session = session or boto3.session.Session()

    def auth_flow(self, request: httpx2.Request) -> Generator[httpx2.Request, httpx2.Response, None]:
        credentials = self.session.get_credentials()
        if credentials is None:
            raise SystemExit("no AWS credentials: set AWS_PROFILE or run aws configure / aws sso login")
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("connection", "accept-encoding")}
        signed = AWSRequest(method=request.method, url=str(request.url), data=request.content, headers=headers)
        SigV4Auth(credentials.get_frozen_credentials(), self.service, self.region).add_auth(signed)
        request.headers.update(dict(signed.headers.items()))
        yield request


def runtime_url(arn: str, qualifier: str = "DEFAULT") -> str:
    region = arn.split(":")[3]
    endpoint = f"https://bedrock-agentcore.{region}.amazonaws.com"
    return f"{endpoint}/runtimes/{quote(arn, safe='')}/invocations?qualifier={qualifier}"


async def ask(url: str, region: str, text: str, query: str) -> None:
    headers = {"X-Amzn-Bedrock-AgentCore-Runtime-Session-Id": f"rlm-{uuid.uuid4().hex}{uuid.uuid4().hex[:8]}"}
    async with (
        httpx2.AsyncClient(auth=SigV4("bedrock-agentcore", region), headers=headers, timeout=900) as http,
        Client(streamable_http_client(url, http_client=http), read_timeout_seconds=900) as client,
    ):
        loaded = await client.call_tool("load_context", {"content": text})
        if loaded.is_error:
            raise SystemExit(f"load_context failed: {loaded.content[0].text}")
        session = loaded.structured_content
        print(f"loaded {session['chars']:,} characters: session {session['session_id']}, corpus {session['corpus_id']}")
        result = await client.call_tool("rlm_query", {"session_id": session["session_id"], "query": query})
        if result.is_error:
            raise SystemExit(f"rlm_query failed: {result.content[0].text}")
        out = result.structured_content
        print(f"{out['status']} after {out['iterations']} iterations and {out['sub_calls']} sub-calls")
        print(f"trajectory: {out['trajectory_id']}  cost: {out['cost_usd']}")
        print(out["answer"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--arn", help="the agent runtime ARN (from create-agent-runtime)")
    target.add_argument("--url", help="any MCP endpoint instead, e.g. http://127.0.0.1:8000/mcp")
    parser.add_argument("--qualifier", default="DEFAULT", help="runtime endpoint name (default DEFAULT)")
    parser.add_argument("--region", help="signing region (default: the ARN's, else boto3's)")
    parser.add_argument("--file", type=Path, required=True, help="a text file to load as the corpus")
    parser.add_argument("--query", required=True, help="the question to answer over it")
    args = parser.parse_args()
    url = runtime_url(args.arn, args.qualifier) if args.arn else args.url
    region = args.region or (args.arn.split(":")[3] if args.arn else boto3.session.Session().region_name or "us-east-1")
    anyio.run(ask, url, region, args.file.read_text(), args.query)


if __name__ == "__main__":
    main()
