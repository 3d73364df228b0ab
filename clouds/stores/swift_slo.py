"""Reading a Static Large Object back: the segments its manifest lists, fetched a few ahead, in order.

Nested manifests (what SwiftStore writes past `max_manifest_segments`) are
expanded, for reading and for listing the segments to delete with the object.
"""
from __future__ import annotations

import itertools
import json
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

from swiftclient import Connection

from clouds.stores.swift_connections import CHUNK, SwiftConnections
from core.stores import StoreError

# Segments downloading while one is read: two GETs keep two proxy processes busy; each holds a segment.
_SEGMENTS_AHEAD = 2


def is_slo(headers: dict) -> bool:
    return headers.get("x-static-large-object", "").lower() == "true"


def manifest_segments(swift: SwiftConnections, key: str, manifest: bytes) -> list[tuple[str, str, int]]:
    """(container, name, size) of every segment of an SLO manifest, nested manifests expanded."""
    try:
        entries = json.loads(manifest)
    except ValueError as exc:
        raise StoreError(f"{swift.name}: the SLO manifest of {key} is not JSON: {exc}") from None
    segments = []
    for entry in entries:
        if entry.get("range"):
            raise StoreError(f"{swift.name}: {key} uses segment ranges, which Doppel never writes; "
                             "read it with `swift download`")
        container, _, name = entry["name"].lstrip("/").partition("/")
        if entry.get("sub_slo"):
            with swift.connection() as conn, swift.errors(entry["name"]):
                _, sub = conn.get_object(container, name, query_string="multipart-manifest=get")
            segments.extend(manifest_segments(swift, key, sub))
        else:
            segments.append((container, name, int(entry["bytes"])))
    return segments


def segment_chunks(swift: SwiftConnections, segments: list[tuple[str, str, int]], threads: int,
                   progress) -> Iterator[bytes]:
    """Each segment whole, in order, while the next ones download; a short or missing one raises."""
    def fetch(container: str, name: str, size: int) -> list[bytes]:
        with swift.connection() as conn, swift.errors(f"{container}/{name}"):
            _, body = conn.get_object(container, name, resp_chunk_size=CHUNK)
            chunks = list(body)
        got = sum(len(c) for c in chunks)
        if got != size:
            raise StoreError(f"{swift.name}: segment {container}/{name} has {got} bytes, its manifest says "
                             f"{size}")
        return chunks
    ahead = max(1, min(threads, _SEGMENTS_AHEAD))
    pool = ThreadPoolExecutor(ahead, thread_name_prefix="swift-get")
    waiting = iter(segments)
    pending = deque(pool.submit(fetch, *segment) for segment in itertools.islice(waiting, ahead))
    done = 0
    try:
        while pending:
            chunks = pending.popleft().result()
            following = next(waiting, None)
            if following is not None:
                pending.append(pool.submit(fetch, *following))
            chunks.reverse()
            while chunks:                  # each megabyte let go once handed on
                chunk = chunks.pop()
                done += len(chunk)
                yield chunk
            if progress is not None:
                progress(done)
    finally:
        for future in pending:
            future.cancel()
        pool.shutdown(wait=False)


def segment_names(conn: Connection, container: str, segment_container: str, key: str) -> list[str]:
    """Every segment of an SLO, sub-manifests included (listed after their own segments)."""
    _, body = conn.get_object(container, key, query_string="multipart-manifest=get")
    return _expand(conn, segment_container, json.loads(body))


def _expand(conn: Connection, segment_container: str, entries: list[dict]) -> list[str]:
    names = []
    for entry in entries:
        container, _, name = entry["name"].lstrip("/").partition("/")
        if container != segment_container:
            continue                        # never delete what lives outside our segment container
        if entry.get("sub_slo"):
            _, body = conn.get_object(container, name, query_string="multipart-manifest=get")
            names.extend(_expand(conn, segment_container, json.loads(body)))
        names.append(name)
    return names
