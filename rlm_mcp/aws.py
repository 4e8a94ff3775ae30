"""The AWS pieces shared by the Bedrock client, S3 sources and the S3 store.

Clients come from boto3's default session, so every standard setting applies
(``AWS_PROFILE``, credentials chain, ``AWS_DEFAULT_REGION``, ``AWS_ENDPOINT_URL_S3``,
``AWS_ENDPOINT_URL_BEDROCK_RUNTIME``, ...). The only addition is ``AWS_REGION``
(set by AWS runtimes, not read by botocore), used when boto3 finds no region.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

import boto3
from botocore.config import Config

from rlm_mcp.errors import InvalidInput, ModelError, ModelErrorKind


def resolve_region(session: boto3.session.Session, fallback: str | None) -> str | None:
    return session.region_name or fallback


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/key/or/prefix/`` -> ``(bucket, key)``; the key may be empty or end with ``/``."""
    parsed = urlparse(url)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise InvalidInput(f"{url!r} is not an s3://bucket/key URL")
    return parsed.netloc, parsed.path.lstrip("/")


def client(
    service: str,
    *,
    fallback_region: str | None,
    config: Config | None = None,
    session: boto3.session.Session | None = None,
) -> Any:
    """A boto3 client built the standard way, with a clear error when no region is known."""
    session = session or boto3.session.Session()
    region = resolve_region(session, fallback_region)
    if region is None:
        raise ModelError(
            "no AWS region is configured: set AWS_REGION (or AWS_DEFAULT_REGION, or a region in your AWS profile)",
            kind=ModelErrorKind.CONFIG,
        )
    return session.client(service, region_name=region, config=config)
