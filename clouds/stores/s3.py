"""Any S3 API as an object store (boto3): AWS, Ceph RGW, MinIO, Swift's s3api.

Large streams go up as a multipart upload: parts of `part_size` bytes, several in
flight at once with a bounded number of buffers, completed last; S3 shows the
object only once the upload is completed. A failed upload is aborted on the spot;
one killed with its process stays pending on the server (invisible to listings
but billed), which is what `cleanup_orphans` aborts once it has been idle for
`orphan_grace` seconds.

Requests are signed with SigV4 and use path-style addressing by default, which
every S3-compatible store understands (virtual-host style needs wildcard DNS).
"""
from __future__ import annotations

import base64
import hashlib
import logging
import time
from datetime import datetime, timezone
from typing import BinaryIO, Iterator

import boto3
import botocore.config
from botocore.exceptions import BotoCoreError, ClientError

from clouds.stores.segments import BufferReader, MiB, ParallelSegments, check_key
from core.stores import ObjectInfo, ObjectMissing, StoreError

log = logging.getLogger(__name__)

MIN_PART_SIZE = 5 * MiB       # S3's floor for every part but the last
MAX_PARTS = 10_000
_MISSING = {"NoSuchKey", "404", "NotFound", "NoSuchBucket"}
_CHUNK = MiB


class S3Store:
    """A bucket on any S3 endpoint. Without keys, boto3's usual chain (environment, instance role) applies."""

    def __init__(self, bucket: str, *, endpoint_url: str | None = None, region_name: str = "us-east-1",
                 access_key: str | None = None, secret_key: str | None = None, part_size: int = 32 * MiB,
                 threads: int = 4, orphan_grace: float = 3600.0, addressing_style: str = "path",
                 verify_tls: bool = True, create_bucket: bool = True, retries: int = 5,
                 profile_name: str | None = None):
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"s3 store {bucket!r}: part_size must be at least 5 MiB (S3's minimum part size)")
        self.bucket = bucket
        self.part_size = int(part_size)
        self.threads = int(threads)
        self.orphan_grace = float(orphan_grace)
        self.create_bucket = create_bucket
        self.name = f"s3:{bucket}"
        self._endpoint = endpoint_url
        self._bucket_ready = False
        self._client = boto3.session.Session(profile_name=profile_name).client(
            "s3", endpoint_url=endpoint_url, region_name=region_name, aws_access_key_id=access_key,
            aws_secret_access_key=secret_key, verify=verify_tls,
            config=_client_config(addressing_style, retries, threads))

    def __repr__(self) -> str:
        return f"S3Store({self.bucket!r}, endpoint_url={self._endpoint!r})"

    # -- writing -----------------------------------------------------------------

    def put_stream(self, key: str, stream: BinaryIO, *, progress=None) -> ObjectInfo:
        check_key(key)
        self._ensure_bucket()
        parts = ParallelSegments(self.part_size, self.threads)
        first, whole = parts.first(stream)
        if whole:
            info = self._put_one(key, first)
            if progress is not None:
                progress(info.size)
            return info
        with self._errors(key):
            upload_id = self._client.create_multipart_upload(Bucket=self.bucket, Key=key)["UploadId"]
        try:
            done = parts.upload(stream, lambda i, data: self._put_part(key, upload_id, i, data), progress)
            with self._errors(key):
                answer = self._client.complete_multipart_upload(
                    Bucket=self.bucket, Key=key, UploadId=upload_id,
                    MultipartUpload={"Parts": [{"PartNumber": n, "ETag": etag} for n, etag, _ in done]})
        except BaseException as exc:
            self._abort_quietly(key, upload_id)
            if isinstance(exc, (StoreError, KeyboardInterrupt, SystemExit)):
                raise
            raise StoreError(f"{self.name}: upload of {key} failed: {type(exc).__name__}: {exc}") from exc
        return ObjectInfo(key=key, size=sum(size for _, _, size in done), etag=answer.get("ETag", "").strip('"'),
                          modified=datetime.now(timezone.utc))

    def put_bytes(self, key: str, data: bytes) -> ObjectInfo:
        check_key(key)
        self._ensure_bucket()
        return self._put_one(key, memoryview(data))

    def _put_one(self, key: str, data: memoryview) -> ObjectInfo:
        with self._errors(key):
            answer = self._client.put_object(Bucket=self.bucket, Key=key, Body=BufferReader(data),
                                             ContentLength=len(data), ContentMD5=_md5(data))
        return ObjectInfo(key=key, size=len(data), etag=answer.get("ETag", "").strip('"'),
                          modified=datetime.now(timezone.utc))

    def _put_part(self, key: str, upload_id: str, index: int, data: memoryview) -> tuple[int, str, int]:
        number = index + 1
        if number > MAX_PARTS:
            raise StoreError(f"{self.name}: {key} needs more than {MAX_PARTS} parts; raise part_size")
        # No Content-MD5 on parts: it costs more CPU than the rest of the upload, and the
        # stream's sha256 (in the backup manifest) checks every byte end to end, TLS in transit.
        with self._errors(f"{key} part {number}"):
            answer = self._client.upload_part(Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number,
                                              Body=BufferReader(data), ContentLength=len(data))
        return number, answer["ETag"], len(data)

    def _abort_quietly(self, key: str, upload_id: str) -> None:
        try:
            self._client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except (ClientError, BotoCoreError) as exc:
            log.warning("%s: could not abort the failed upload of %s (cleanup_orphans will): %s",
                        self.name, key, exc)

    # -- reading -----------------------------------------------------------------

    def get_stream(self, key: str, *, progress=None) -> Iterator[bytes]:
        check_key(key)
        with self._errors(key):
            body = self._client.get_object(Bucket=self.bucket, Key=key)["Body"]
        return _chunks(body, progress)

    def get_bytes(self, key: str) -> bytes:
        check_key(key)
        with self._errors(key):
            return self._client.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def list(self, prefix: str = "") -> list[ObjectInfo]:
        found = []
        with self._errors(prefix or self.bucket, missing_ok=True):
            for page in self._client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
                found.extend(ObjectInfo(key=o["Key"], size=o["Size"], modified=o["LastModified"],
                                        etag=o.get("ETag", "").strip('"')) for o in page.get("Contents", ()))
        return sorted(found, key=lambda info: info.key)

    # -- removing ----------------------------------------------------------------

    def delete(self, key: str, *, ignore_missing: bool = True) -> None:
        check_key(key)
        with self._errors(key, missing_ok=ignore_missing):
            if not ignore_missing:
                self._client.head_object(Bucket=self.bucket, Key=key)   # S3's DELETE never says "missing"
            self._client.delete_object(Bucket=self.bucket, Key=key)

    def cleanup_orphans(self, prefix: str = "") -> list[str]:
        """Abort multipart uploads under `prefix` that have seen no new part for `orphan_grace` seconds."""
        cutoff = time.time() - self.orphan_grace
        removed = []
        for upload in self._uploads(prefix):
            key, upload_id = upload["Key"], upload["UploadId"]
            if self._last_activity(upload) > cutoff:
                continue                        # still being written (or too recent to tell)
            with self._errors(key, missing_ok=True):
                self._client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            removed.append(f"{key} (multipart upload {upload_id})")
        return removed

    def _uploads(self, prefix: str) -> list[dict]:
        uploads = []
        with self._errors(prefix or self.bucket, missing_ok=True):
            pages = self._client.get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket, Prefix=prefix)
            for page in pages:
                uploads.extend(page.get("Uploads", ()))
        return uploads

    def _last_activity(self, upload: dict) -> float:
        """When the upload last moved: its newest part, or its start when it has none."""
        newest = upload["Initiated"].timestamp()
        with self._errors(upload["Key"], missing_ok=True):
            pages = self._client.get_paginator("list_parts").paginate(
                Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"])
            for page in pages:
                for part in page.get("Parts", ()):
                    newest = max(newest, part["LastModified"].timestamp())
        return newest

    # -- helpers -----------------------------------------------------------------

    def _ensure_bucket(self) -> None:
        if self._bucket_ready:
            return
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            code = _code(exc)
            if code in ("403", "AccessDenied", "SignatureDoesNotMatch", "InvalidAccessKeyId"):
                raise StoreError(f"{self.name}: access refused ({code}); check the access key and the secret "
                                 "in the variable secret_key_env names") from None
            if code not in _MISSING or not self.create_bucket:
                raise StoreError(f"{self.name}: bucket not usable: {code}") from None
            with self._errors(self.bucket):
                self._client.create_bucket(Bucket=self.bucket, **self._location())
        self._bucket_ready = True

    def _location(self) -> dict:
        region = self._client.meta.region_name
        return {} if region in (None, "us-east-1") else {
            "CreateBucketConfiguration": {"LocationConstraint": region}}

    def _errors(self, what: str, missing_ok: bool = False):
        return _ErrorTranslation(self.name, what, missing_ok)


class _ErrorTranslation:
    """botocore errors -> ObjectMissing / StoreError naming the store and the object (never a key)."""

    def __init__(self, store: str, what: str, missing_ok: bool):
        self.store, self.what, self.missing_ok = store, what, missing_ok

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if isinstance(exc, ClientError):
            if _code(exc) in _MISSING:
                if self.missing_ok:
                    return True
                raise ObjectMissing(f"{self.store}: no object {self.what}") from None
            message = exc.response.get("Error", {}).get("Message", "")
            raise StoreError(f"{self.store}: {self.what}: {_code(exc)} {message}".rstrip()) from None
        if isinstance(exc, BotoCoreError):
            raise StoreError(f"{self.store}: {self.what}: {exc}") from None
        return False


def _client_config(addressing_style: str, retries: int, threads: int) -> botocore.config.Config:
    options = dict(signature_version="s3v4", s3={"addressing_style": addressing_style},
                   retries={"max_attempts": retries, "mode": "standard"}, max_pool_connections=threads + 4)
    # Recent botocore adds CRC checksums (and aws-chunked bodies) to every upload by
    # default; many S3-compatible stores, Swift's s3api among them, refuse those.
    try:
        return botocore.config.Config(request_checksum_calculation="when_required",
                                      response_checksum_validation="when_required", **options)
    except TypeError:                           # botocore older than 1.36: no such defaults to turn off
        return botocore.config.Config(**options)


def _chunks(body, progress) -> Iterator[bytes]:
    done = 0
    try:
        for chunk in body.iter_chunks(_CHUNK):
            done += len(chunk)
            if progress is not None:
                progress(done)
            yield chunk
    finally:
        body.close()


def _md5(data: memoryview) -> str:
    return base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", "")) or str(
        exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
