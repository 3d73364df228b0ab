"""OpenStack Swift as an object store (python-swiftclient), with tempauth or Keystone.

Large streams go up as a Static Large Object (SLO): segments into the container
`<container>_segments` (the name the `swift` CLI uses too) under
`<key>/doppel-<UTC time>-<8 hex>/<00000001...>`, several in parallel with a
bounded number of buffers, and the SLO manifest is PUT last, so the object
appears under its key only once every segment is stored. The manifest carries the
upload's token in `X-Object-Meta-Doppel-Upload`, which is how `cleanup_orphans`
tells the segments of a live object from those an interrupted upload left.

A plain `swift download <container> <key>` reads such an object whole: nothing in
the layout is private to Doppel. Connections, authentication and error messages
are in swift_connections.py; reading an SLO's segments back is in swift_slo.py.
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import BinaryIO

from swiftclient import Connection

from clouds.stores.segments import BufferReader, MiB, ParallelSegments, check_key
from clouds.stores.swift_connections import CHUNK, SwiftConnections, reason
from clouds.stores.swift_slo import is_slo, manifest_segments, segment_chunks, segment_names
from core.stores import ObjectInfo, ObjectMissing, StoreError

log = logging.getLogger(__name__)

UPLOAD_META = "X-Object-Meta-Doppel-Upload"
_UPLOAD_TOKEN = re.compile(r"^doppel-\d{8}T\d{6}Z-[0-9a-f]{8}$")
_SEGMENT_PART = re.compile(r"^(\d{8}|manifest-\d{5})$")


class SwiftStore:
    """A Swift container. Authenticate with tempauth/v1 (`auth_url`, `user`, `key`) or Keystone (`cloud`).

    `cloud` names an entry of clouds.yaml (openstacksdk finds the file and the
    password the usual way); `region_name` and `interface` pick the object-store
    endpoint. Memory of a put stays near `segment_size * (segment_threads + 1)`.
    Segments nobody has added to for `orphan_grace` seconds, and that no object
    uses, are what `cleanup_orphans` removes.
    """

    max_manifest_segments = 1000   # Swift's default limit per SLO manifest; more nest one level

    def __init__(self, container: str, *, auth_url: str | None = None, user: str | None = None,
                 key: str | None = None, cloud: str | None = None, region_name: str | None = None,
                 interface: str = "public", segment_size: int = 32 * MiB, segment_threads: int = 4,
                 segment_container: str | None = None, orphan_grace: float = 3600.0,
                 insecure: bool = False, retries: int = 3, timeout: float = 60.0):
        if bool(cloud) == bool(auth_url):
            raise ValueError(f"swift store {container!r}: give either cloud (Keystone, clouds.yaml) "
                             "or auth_url + user + key (tempauth), not both or neither")
        if auth_url and not (user and key):
            raise ValueError(f"swift store {container!r}: tempauth needs user and key with auth_url")
        self.container = container
        self.segment_container = segment_container or f"{container}_segments"
        self.segment_size = int(segment_size)
        self.segment_threads = int(segment_threads)
        self.orphan_grace = float(orphan_grace)
        self.name = f"swift:{container}"
        self._swift = SwiftConnections(self.name, auth_url=auth_url, user=user, key=key, cloud=cloud,
                                       region_name=region_name, interface=interface, insecure=insecure,
                                       retries=retries, timeout=timeout)
        self._containers_ready = False

    def __repr__(self) -> str:
        return f"SwiftStore({self.container!r}, {self._swift.where!r})"

    # -- writing -----------------------------------------------------------------

    def put_stream(self, key: str, stream: BinaryIO, *, progress=None) -> ObjectInfo:
        check_key(key)
        self._ensure_containers()
        segments = ParallelSegments(self.segment_size, self.segment_threads)
        first, whole = segments.first(stream)
        if whole:                               # small: one PUT is atomic already
            info = self._put_one(key, first)
            if progress is not None:
                progress(info.size)
            return info
        upload = f"doppel-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{uuid.uuid4().hex[:8]}"
        prefix = f"{key}/{upload}/"
        try:
            entries = segments.upload(stream, lambda i, data: self._put_segment(prefix, i, data), progress)
            etag = self._put_manifest(key, prefix, upload, entries)
        except BaseException as exc:
            self._remove_segments_quietly(prefix)
            if isinstance(exc, (StoreError, KeyboardInterrupt, SystemExit)):
                raise
            raise StoreError(f"{self.name}: upload of {key} failed: {reason(exc)}") from exc
        return ObjectInfo(key=key, size=sum(e["size_bytes"] for e in entries), etag=etag,
                          modified=datetime.now(UTC))

    def put_bytes(self, key: str, data: bytes) -> ObjectInfo:
        check_key(key)
        self._ensure_containers()
        return self._put_one(key, memoryview(data))

    def _put_one(self, key: str, data: memoryview) -> ObjectInfo:
        etag = hashlib.md5(data, usedforsecurity=False).hexdigest()
        with self._swift.connection() as conn, self._swift.errors(key):
            conn.put_object(self.container, key, BufferReader(data), content_length=len(data), etag=etag)
        return ObjectInfo(key=key, size=len(data), etag=etag, modified=datetime.now(UTC))

    def _put_segment(self, prefix: str, index: int, data: memoryview) -> dict:
        # No client-side MD5 here: at ~500 MB/s it costs more CPU than the rest of the
        # upload, and the stream's sha256 (in the backup manifest) already checks every
        # byte end to end, TLS every byte in transit. Swift's own etag, recorded in the
        # SLO manifest, pins the segment as stored.
        name = f"{prefix}{index + 1:08d}"
        with self._swift.connection() as conn, self._swift.errors(name):
            etag = conn.put_object(self.segment_container, name, _SegmentBody(data), content_length=len(data))
        return {"path": f"/{self.segment_container}/{name}", "etag": etag, "size_bytes": len(data)}

    def _put_manifest(self, key: str, prefix: str, upload: str, entries: list[dict]) -> str:
        """PUT the SLO manifest: the moment the object appears. Over the per-manifest limit, nest one level."""
        limit = self.max_manifest_segments
        if len(entries) > limit:
            entries = [self._put_sub_manifest(f"{prefix}manifest-{n + 1:05d}", entries[i:i + limit])
                       for n, i in enumerate(range(0, len(entries), limit))]
            if len(entries) > limit:
                raise StoreError(f"{self.name}: {key} needs more than {limit * limit} segments; "
                                 "raise segment_size")
        with self._swift.connection() as conn, self._swift.errors(key):
            etag = conn.put_object(self.container, key, json.dumps(entries),
                                   query_string="multipart-manifest=put", headers={UPLOAD_META: upload})
        return etag

    def _put_sub_manifest(self, name: str, entries: list[dict]) -> dict:
        with self._swift.connection() as conn, self._swift.errors(name):
            conn.put_object(self.segment_container, name, json.dumps(entries), query_string="multipart-manifest=put")
        return {"path": f"/{self.segment_container}/{name}", "etag": None,
                "size_bytes": sum(e["size_bytes"] for e in entries)}

    # -- reading -----------------------------------------------------------------

    def get_stream(self, key: str, *, progress=None) -> Iterator[bytes]:
        """The object's bytes in order. A Static Large Object's segments are fetched two at a time while
        the one before is read, each over a connection of its own (one GET of the whole object is served
        by one proxy process, so one core); anything else is one GET.

        One request tells which: the GET asks for the manifest, and Swift answers with the object itself
        when it is not an SLO. Memory stays under `segment_size * (_SEGMENTS_AHEAD + 1)` (swift_slo.py)."""
        check_key(key)
        conn = self._swift.borrow()
        try:
            with self._swift.errors(key):
                headers, body = conn.get_object(self.container, key, resp_chunk_size=CHUNK,
                                                query_string="multipart-manifest=get")
        except BaseException:
            self._swift.give_back(conn)
            raise
        if not is_slo(headers):
            return self._chunks(conn, body, progress)
        manifest = b"".join(self._chunks(conn, body, None))
        with self._swift.errors(key):
            segments = manifest_segments(self._swift, key, manifest)
        return segment_chunks(self._swift, segments, self.segment_threads, progress)

    def _chunks(self, conn: Connection, body, progress) -> Iterator[bytes]:
        done = 0
        finished = False
        try:
            for chunk in body:
                done += len(chunk)
                if progress is not None:
                    progress(done)
                yield chunk
            finished = True
        finally:
            if finished:
                self._swift.give_back(conn)
            else:                               # abandoned mid-body: the connection is not reusable
                conn.close()

    def get_bytes(self, key: str) -> bytes:
        check_key(key)
        with self._swift.connection() as conn, self._swift.errors(key):
            return conn.get_object(self.container, key)[1]

    def list(self, prefix: str = "") -> list[ObjectInfo]:
        return [ObjectInfo(key=o["name"], size=o["bytes"], modified=_when(o["last_modified"]),
                           etag=(o.get("slo_etag") or o["hash"]).strip('"'))
                for o in self._listing(self.container, prefix)]

    # -- removing ----------------------------------------------------------------

    def delete(self, key: str, *, ignore_missing: bool = True) -> None:
        """Delete the manifest first (the object is gone at once), then its segments."""
        check_key(key)
        try:
            with self._swift.connection() as conn, self._swift.errors(key):
                headers = conn.head_object(self.container, key)
                segments = segment_names(conn, self.container, self.segment_container, key) if is_slo(headers) else []
                conn.delete_object(self.container, key)
        except ObjectMissing:
            if not ignore_missing:
                raise
            return
        self._delete_all(self.segment_container, segments)

    def cleanup_orphans(self, prefix: str = "") -> list[str]:
        """Remove segments under `prefix` that no object uses and nothing has added to for `orphan_grace` s."""
        cutoff = time.time() - self.orphan_grace
        uploads: dict[tuple[str, str], list[dict]] = defaultdict(list)
        for item in self._listing(self.segment_container, prefix):
            parts = item["name"].rsplit("/", 2)
            # Only segments named the way this store names them: never another tool's.
            if len(parts) == 3 and _UPLOAD_TOKEN.match(parts[1]) and _SEGMENT_PART.match(parts[2]):
                uploads[(parts[0], parts[1])].append(item)
        removed: list[str] = []
        for (key, upload), items in sorted(uploads.items()):
            newest = max(_when(i["last_modified"]).timestamp() for i in items)
            if newest > cutoff or self._live_upload(key) == upload:
                continue
            names = [i["name"] for i in items]
            self._delete_all(self.segment_container, names)
            removed.extend(f"{self.segment_container}/{n}" for n in names)
        return removed

    def _live_upload(self, key: str) -> str | None:
        try:
            with self._swift.connection() as conn, self._swift.errors(key):
                return conn.head_object(self.container, key).get(UPLOAD_META.lower())
        except ObjectMissing:
            return None


    def _remove_segments_quietly(self, prefix: str) -> None:
        """After a failed upload: try to remove its segments; cleanup_orphans catches what this misses."""
        try:
            names = [o["name"] for o in self._listing(self.segment_container, prefix)]
            self._delete_all(self.segment_container, names)
        except Exception as exc:  # noqa: BLE001 - the upload's own error is the one to report
            log.warning("%s: could not remove the segments of a failed upload under %s: %s",
                        self.name, prefix, reason(exc))

    def _delete_all(self, container: str, names: list[str]) -> None:
        if not names:
            return
        with ThreadPoolExecutor(self.segment_threads, thread_name_prefix="swift-delete") as pool:
            list(pool.map(lambda name: self._delete_one(container, name), names))

    def _delete_one(self, container: str, name: str) -> None:
        try:
            with self._swift.connection() as conn, self._swift.errors(name):
                conn.delete_object(container, name)
        except ObjectMissing:
            pass

    # -- containers --------------------------------------------------------------

    def _listing(self, container: str, prefix: str) -> list[dict]:
        try:
            with self._swift.connection() as conn, self._swift.errors(container):
                return conn.get_container(container, prefix=prefix or None, full_listing=True)[1]
        except ObjectMissing:
            return []                           # no container yet: nothing stored

    def _ensure_containers(self) -> None:
        if self._containers_ready:
            return
        with self._swift.connection() as conn:
            for container in (self.container, self.segment_container):
                with self._swift.errors(container):
                    conn.put_container(container)
        self._containers_ready = True


class _SegmentBody(BufferReader):
    """A segment's buffer as a request body that hands out views of itself, not copies.

    The HTTP connection only sends each piece before it asks for the next, and a
    retry seeks back to the start: the buffer stays the caller's until the PUT returns.
    """

    def read(self, size: int = -1) -> memoryview:
        end = len(self._view) if size is None or size < 0 else min(len(self._view), self._pos + size)
        chunk = self._view[self._pos:end]
        self._pos = end
        return chunk


def _when(text: str) -> datetime:
    """Swift's listing times are UTC without a zone."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)

