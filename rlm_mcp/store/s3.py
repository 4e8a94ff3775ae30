"""The shared store: one S3 bucket and prefix that every replica reads and writes.

Objects map to objects. A log cannot be appended to in S3, so each record is its
own object, ``<log>.log/<seq>.json``: it is durable the moment its PUT returns
(a crash keeps every finished record) and records sort in the order they were
written. Each PUT is conditional (``If-None-Match: *``), so two replicas that
ever write the same log cannot overwrite each other: the one that loses the race
lists the log again and takes the next number. S3's read-after-write
consistency means a record written on one replica is listed by the next request
on any other.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from boto3.exceptions import S3TransferFailedError, S3UploadFailedError
from botocore.exceptions import BotoCoreError, ClientError

from rlm_mcp.store.base import Entry, KeyNotFound, LogRecord, StoreError, check_key
from rlm_mcp.store.failures import storing

LOG_DIR = ".log/"
_RECORD = re.compile(r"^(\d{10})\.json$")
_TAKEN = frozenset({"PreconditionFailed", "ConditionalRequestConflict", "412", "409"})
APPEND_ATTEMPTS = 20
_NOT_FOUND = frozenset({"NoSuchKey", "404", "NotFound"})
READ_THREADS = 16


def _missing(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") in _NOT_FOUND


@dataclass
class _Shared:
    """State shared by a store and its ``sub`` views: the next record number of each log written here."""

    next_seq: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


class S3Store:
    def __init__(self, client: Any, bucket: str, prefix: str = "", *, _shared: _Shared | None = None):
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.url = f"s3://{bucket}/{self.prefix}"
        self._shared = _shared or _Shared()

    def sub(self, name: str) -> S3Store:
        return S3Store(self.client, self.bucket, self.prefix + check_key(name), _shared=self._shared)

    def _key(self, key: str) -> str:
        return self.prefix + check_key(key)

    def _fail(self, action: str, key: str, exc: Exception) -> StoreError:
        if isinstance(exc, ClientError):
            error = exc.response.get("Error", {})
            code, message = error.get("Code", "?"), error.get("Message", "")
            hint = ""
            if code in ("AccessDenied", "403", "Forbidden"):
                hint = (
                    f"; the server's role needs s3:GetObject, s3:PutObject and s3:DeleteObject on "
                    f"arn:aws:s3:::{self.bucket}/{self.prefix}* and s3:ListBucket on arn:aws:s3:::{self.bucket}"
                )
            elif code == "NoSuchBucket":
                hint = f"; create the bucket {self.bucket!r} or fix RLM_STORE"
            return StoreError(
                f"S3 store {self.url} (RLM_STORE): {action} {key!r} failed: {code} {message}{hint}".rstrip()
            )
        hint = f"; create the bucket {self.bucket!r} or fix RLM_STORE" if "NoSuchBucket" in str(exc) else ""
        return StoreError(f"S3 store {self.url} (RLM_STORE): {action} {key!r} failed: {exc}{hint}")

    @contextlib.contextmanager
    def _calling(self, action: str, key: str, *, missing_is_absent: bool = False) -> Iterator[None]:
        """boto3 failures as StoreError saying which store and why; a missing key as KeyNotFound if asked."""
        try:
            yield
        except ClientError as exc:
            if missing_is_absent and _missing(exc):
                raise KeyNotFound(key) from None
            raise self._fail(action, key, exc) from None
        except (BotoCoreError, S3UploadFailedError, S3TransferFailedError) as exc:  # the last two: upload_file's own
            raise self._fail(action, key, exc) from None

    # -- objects ---------------------------------------------------------------------------

    def read(self, key: str) -> bytes:
        with self._calling("reading", key, missing_is_absent=True):
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()

    def write(self, key: str, data: bytes) -> None:
        with self._calling("writing", key):
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def delete(self, key: str) -> None:
        with self._calling("deleting", key):
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def exists(self, key: str) -> bool:
        try:
            with self._calling("checking", key, missing_is_absent=True):
                self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except KeyNotFound:
            return False
        return True

    def _list_raw(self, prefix: str) -> list[dict[str, Any]]:
        with self._calling("listing", prefix):
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
            return [item for page in pages for item in page.get("Contents", [])]

    def list(self, prefix: str = "") -> list[Entry]:
        entries = []
        for item in self._list_raw(self.prefix + prefix):
            key = item["Key"][len(self.prefix) :]
            if LOG_DIR in key:
                continue
            entries.append(Entry(key=key, size=int(item["Size"]), modified=item["LastModified"].timestamp()))
        return sorted(entries, key=lambda e: e.key)

    def upload(self, key: str, source: Path) -> None:
        with self._calling("uploading", key):
            self.client.upload_file(str(source), self.bucket, self._key(key))

    def download(self, key: str, target: Path) -> None:
        with storing(f"copying {key!r} from {self.url}", target.parent):
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
            os.close(fd)
        try:
            with storing(f"copying {key!r} from {self.url}", target.parent):
                with self._calling("downloading", key, missing_is_absent=True):
                    self.client.download_file(self.bucket, self._key(key), tmp)
                os.replace(tmp, target)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)

    def local_path(self, key: str) -> None:
        return None

    # -- logs ------------------------------------------------------------------------------

    def _records(self, log: str) -> list[tuple[int, str]]:
        base = self._key(log) + LOG_DIR
        found = []
        for item in self._list_raw(base):
            match = _RECORD.match(item["Key"][len(base) :])
            if match:
                found.append((int(match[1]), item["Key"]))
        return sorted(found)

    def _remember(self, log_key: str, seq: int) -> None:
        with self._shared.lock:
            if self._shared.next_seq.get(log_key, 0) <= seq:
                self._shared.next_seq[log_key] = seq + 1

    def append(self, log: str, record: bytes) -> None:
        log_key = self._key(log)
        with self._shared.lock:
            seq = self._shared.next_seq.get(log_key)
        for _ in range(APPEND_ATTEMPTS):
            if seq is None:
                records = self._records(log)
                seq = records[-1][0] + 1 if records else 0
            try:
                self.client.put_object(
                    Bucket=self.bucket, Key=f"{log_key}{LOG_DIR}{seq:010d}.json", Body=record, IfNoneMatch="*"
                )
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in _TAKEN:
                    seq = None  # another writer took this number: look again
                    continue
                raise self._fail("appending to", log, exc) from None
            except BotoCoreError as exc:
                raise self._fail("appending to", log, exc) from None
            self._remember(log_key, seq)
            return
        raise StoreError(f"S3 store {self.url}: could not append to {log!r}: other writers kept taking its next number")

    def read_log(self, log: str) -> list[LogRecord]:
        records = self._records(log)
        if not records:
            raise KeyNotFound(log)
        self._remember(self._key(log), records[-1][0])

        def fetch(key: str) -> bytes | None:
            try:
                return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
            except ClientError as exc:
                if _missing(exc):
                    return None  # deleted between the listing and the read
                raise self._fail("reading", key, exc) from None

        keys = [key for _, key in records]
        if len(keys) == 1:
            bodies = [fetch(keys[0])]
        else:
            with ThreadPoolExecutor(min(READ_THREADS, len(keys))) as pool:
                bodies = list(pool.map(fetch, keys))
        return [LogRecord(body, f"s3://{self.bucket}/{key}") for key, body in zip(keys, bodies, strict=True) if body]

    def delete_log(self, log: str) -> None:
        keys = [key for _, key in self._records(log)]
        for start in range(0, len(keys), 1000):  # DeleteObjects takes at most 1,000 keys
            batch = [{"Key": key} for key in keys[start : start + 1000]]
            with self._calling("deleting", log):
                self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
        with self._shared.lock:
            self._shared.next_seq.pop(self._key(log), None)

    def list_logs(self) -> list[Entry]:
        logs: dict[str, Entry] = {}
        for item in self._list_raw(self.prefix):
            key = item["Key"][len(self.prefix) :]
            if LOG_DIR not in key:
                continue
            name = key.split(LOG_DIR, 1)[0]
            modified = item["LastModified"].timestamp()
            seen = logs.get(name)
            size = int(item["Size"]) + (seen.size if seen else 0)
            logs[name] = Entry(key=name, size=size, modified=max(modified, seen.modified if seen else 0.0))
        return sorted(logs.values(), key=lambda e: e.key)

    def check(self) -> None:
        # A listing of our own prefix needs only what the store needs anyway (s3:ListBucket on the prefix).
        try:
            self.client.list_objects_v2(Bucket=self.bucket, Prefix=self.prefix, MaxKeys=1)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchBucket", "NotFound"):
                raise StoreError(f"RLM_STORE {self.url}: the bucket {self.bucket!r} does not exist") from None
            raise self._fail("opening", self.bucket, exc) from None
        except BotoCoreError as exc:
            raise self._fail("opening", self.bucket, exc) from None
