"""S3 sources: ``s3://bucket/key`` is one object, ``s3://bucket/prefix/`` every object under the prefix.

Objects are fetched with boto3 and its standard credential chain (the client
comes from :mod:`rlm_mcp.aws`, so ``AWS_PROFILE``, roles and
``AWS_ENDPOINT_URL_S3`` work as for every AWS tool) and streamed to a file
named by bucket, key and ETag: loading the same object again, from any
session, downloads nothing. After that an object is read like a local file of
the same name (gzip, PDF, JSON records or text). Documents are named by their
``s3://`` URL so answers can cite them. ``include``/``exclude`` globs match the
key relative to the prefix.
"""

from __future__ import annotations

import threading
from typing import Any, BinaryIO

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from rlm_mcp import aws
from rlm_mcp.errors import Binary, InvalidInput, ModelError, NotFound, PathRefused, RLMError
from rlm_mcp.sources.derived import DerivedStore
from rlm_mcp.sources.files import file_document
from rlm_mcp.sources.paths import selected
from rlm_mcp.sources.resolved import LoadOptions, LoadTally, ResolvedSource, too_large
from sandbox import Document

MAX_OBJECTS = 100_000


def check_allowed(url: str, allowed: list[str]) -> None:
    """An S3 location is read only when ``RLM_ALLOWED_S3`` names its bucket or a prefix of it.

    The server's credentials may reach far more than its users should: like
    ``RLM_ALLOWED_ROOTS`` for files, this keeps ``load_context`` to what was meant.
    """
    if "*" in allowed:
        return
    bucket, key = aws.parse_s3_url(url)
    for entry in allowed:
        allowed_bucket, prefix = aws.parse_s3_url(entry)
        if bucket == allowed_bucket and key.startswith(prefix):
            return
    if not allowed:
        raise PathRefused(
            "loading from S3 is off: set RLM_ALLOWED_S3 to the locations load_context may read, "
            "e.g. s3://my-bucket/reports/ (or '*' for every bucket the credentials reach)"
        )
    raise PathRefused(f"{url!r} is outside RLM_ALLOWED_S3; give a location inside it, or ask for it to be added")


class S3Reader:
    def __init__(self, derived: DerivedStore, fallback_region: str | None, allowed: list[str] | None = None):
        self.derived = derived
        self.fallback_region = fallback_region
        self.allowed = list(allowed or [])
        self._client: Any = None
        self._lock = threading.Lock()

    def _s3(self) -> Any:
        with self._lock:
            if self._client is None:
                try:
                    self._client = aws.client("s3", fallback_region=self.fallback_region)
                except ModelError as exc:
                    raise InvalidInput(f"cannot read from S3: {exc}") from None
            return self._client

    def resolve(self, url: str, options: LoadOptions, tally: LoadTally | None = None) -> ResolvedSource:
        check_allowed(url, self.allowed)
        bucket, key = aws.parse_s3_url(url)
        try:
            if key and not key.endswith("/"):
                head = self._s3().head_object(Bucket=bucket, Key=key)
                obj = {"Key": key, "ETag": head.get("ETag", ""), "Size": head.get("ContentLength", 0)}
                doc = self._document(bucket, obj, options, with_header=False)
                return ResolvedSource([doc], "list" if doc.parts else "str", doc.path.stat().st_size)
            return self._prefix(bucket, key, options, url, tally or LoadTally())
        except ClientError as exc:
            raise _client_error(exc, bucket, key) from None
        except NoCredentialsError:
            raise InvalidInput(
                "no AWS credentials were found for S3: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY, or run on a role"
            ) from None
        except BotoCoreError as exc:
            raise RLMError(f"S3 failed while reading {url}: {exc}") from None

    def _prefix(self, bucket: str, prefix: str, options: LoadOptions, url: str, tally: LoadTally) -> ResolvedSource:
        objects = []
        skipped: list[str] = []
        listed = 0
        for page in self._s3().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                listed += 1
                relative = obj["Key"][len(prefix) :]
                if obj["Key"].endswith("/") or not selected(relative, options.include, options.exclude):
                    continue
                if obj.get("Size", 0) == 0:
                    skipped.append(f"s3://{bucket}/{obj['Key']}: empty")
                    continue
                objects.append(obj)
        if not objects:
            what = "no objects" if not listed else "no objects that match include/exclude"
            raise NotFound(f"{what} under {url}")
        if len(objects) > MAX_OBJECTS:
            skipped.append(f"... more objects after the first {MAX_OBJECTS:,} were left out")
            objects = objects[:MAX_OBJECTS]
        listed_bytes = sum(int(o.get("Size", 0)) for o in objects)
        if listed_bytes > options.max_bytes:
            raise too_large(url, listed_bytes, options.max_bytes, "; narrow it with include/exclude globs")
        documents: list[Document] = []
        total = 0
        for obj in objects:
            name = f"s3://{bucket}/{obj['Key']}"
            tally.add(int(obj.get("Size", 0)))
            try:
                doc = self._document(bucket, obj, options, with_header=True)
            except Binary:
                skipped.append(f"{name}: binary")
                continue
            except InvalidInput as exc:
                skipped.append(str(exc))
                continue
            total += doc.path.stat().st_size
            documents.append(doc)
        if not documents:
            raise NotFound(f"no text objects to load under {url} (skipped: {len(skipped)})")
        return ResolvedSource(documents, "list", total, skipped)

    def _document(self, bucket: str, obj: dict[str, Any], options: LoadOptions, *, with_header: bool) -> Document:
        key = obj["Key"]
        name = f"s3://{bucket}/{key}"
        if int(obj.get("Size", 0)) > options.max_bytes:
            raise too_large(name, int(obj["Size"]), options.max_bytes)
        identity: list[object] = ["s3", bucket, key, obj.get("ETag", ""), obj.get("Size", 0)]

        def download(out: BinaryIO) -> None:
            self._s3().download_fileobj(bucket, key, out)

        local = self.derived.build("s3", identity, download)
        return file_document(local, name, options, self.derived, identity=identity, with_header=with_header)


def _client_error(exc: ClientError, bucket: str, key: str) -> RLMError:
    error = exc.response.get("Error", {})
    code = str(error.get("Code", ""))
    where = f"s3://{bucket}/{key}"
    if code in ("NoSuchBucket",):
        return NotFound(f"the bucket {bucket!r} does not exist")
    if code in ("404", "NoSuchKey", "NotFound"):
        return NotFound(f"{where} does not exist; for every object under a prefix, end the URL with '/'")
    if code in ("403", "AccessDenied", "AllAccessDisabled"):
        return InvalidInput(
            f"access to {where} was denied: the server's AWS identity needs s3:GetObject and s3:ListBucket"
        )
    return RLMError(f"S3 error {code or exc} while reading {where}")
