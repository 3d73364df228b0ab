"""The test Swift's endpoints and account, stores on it, and raw clients to look behind the stores' backs.

Segments and parts are small (1 MiB for Swift, S3's minimum of 5 MiB) so
multi-segment uploads take a few MiB, not gigabytes.
"""
from __future__ import annotations

from pathlib import Path

import boto3
import botocore.config
import swiftclient

from clouds.stores.s3 import S3Store
from clouds.stores.swift import SwiftStore

ROOT = Path(__file__).resolve().parents[3]
AUTH_URL = "http://127.0.0.1:8080/auth/v1.0"
S3_ENDPOINT = "http://127.0.0.1:8080"
USER, KEY = "test:tester", "testing"      # the test Swift's tempauth account; not a secret of anyone's
MiB = 1024 * 1024
SWIFT_SEGMENT = 1 * MiB
S3_PART = 5 * MiB


def swift_connection() -> swiftclient.Connection:
    return swiftclient.Connection(authurl=AUTH_URL, user=USER, key=KEY, retries=2)


def s3_client():
    return boto3.client("s3", endpoint_url=S3_ENDPOINT, region_name="us-east-1", aws_access_key_id=USER,
                        aws_secret_access_key=KEY, config=botocore.config.Config(
                            s3={"addressing_style": "path"}, request_checksum_calculation="when_required",
                            response_checksum_validation="when_required"))


def make_swift_store(container: str, **overrides) -> SwiftStore:
    options = dict(auth_url=AUTH_URL, user=USER, key=KEY, segment_size=SWIFT_SEGMENT, segment_threads=3,
                   orphan_grace=0)
    return SwiftStore(container, **{**options, **overrides})


def make_s3_store(bucket: str, **overrides) -> S3Store:
    options = dict(endpoint_url=S3_ENDPOINT, access_key=USER, secret_key=KEY, part_size=S3_PART, threads=3,
                   orphan_grace=0)
    return S3Store(bucket, **{**options, **overrides})


def drop_swift_containers(*containers: str) -> None:
    conn = swift_connection()
    for container in containers:
        try:
            for item in conn.get_container(container, full_listing=True)[1]:
                conn.delete_object(container, item["name"])
            conn.delete_container(container)
        except swiftclient.ClientException as exc:
            if exc.http_status != 404:
                raise


def drop_bucket(bucket: str) -> None:
    client = s3_client()
    try:
        for upload in client.list_multipart_uploads(Bucket=bucket).get("Uploads", ()):
            client.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for item in page.get("Contents", ()):
                client.delete_object(Bucket=bucket, Key=item["Key"])
        client.delete_bucket(Bucket=bucket)
    except client.exceptions.NoSuchBucket:
        pass
    # s3api keeps multipart segments in "<bucket>+segments": gone with the uploads, drop the container too
    drop_swift_containers(f"{bucket}+segments")
