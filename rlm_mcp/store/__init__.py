"""Where state that must outlive a request lives: the data directory, or S3 shared by replicas.

``RLM_STORE`` picks the backend (:func:`open_store`). The core sees only the
:class:`Store` interface; see :mod:`rlm_mcp.store.base` for its contract.
"""

from __future__ import annotations

from botocore.config import Config

from rlm_mcp import aws
from rlm_mcp.config import Settings
from rlm_mcp.store.base import Entry, KeyNotFound, LogRecord, Store, StoreError
from rlm_mcp.store.local import LocalStore
from rlm_mcp.store.s3 import S3Store

__all__ = ["Entry", "KeyNotFound", "LocalStore", "LogRecord", "S3Store", "Store", "StoreError", "open_store"]


def open_store(settings: Settings) -> Store:
    """The store ``RLM_STORE`` names: the data directory by default, else the S3 bucket and prefix."""
    if not settings.store:
        return LocalStore(settings.data_dir)
    bucket, prefix = aws.parse_s3_url(settings.store)
    client = aws.client(
        "s3",
        fallback_region=settings.aws_region,
        config=Config(retries={"mode": "standard", "max_attempts": 5}, max_pool_connections=32),
    )
    return S3Store(client, bucket, prefix)
