"""The object store interface: streams in, streams out, never a whole object in memory."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO, Iterable, Iterator, Protocol


class ObjectMissing(KeyError):
    """No object under that key (a `get` of something deleted or never written)."""


class StoreError(RuntimeError):
    """A store operation failed; the message names the store and the key, never a credential."""


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    modified: datetime | None = None
    etag: str | None = None


class ObjectStore(Protocol):
    name: str  # for messages: "swift:backups", "s3:bucket", "local:/path"

    def put_stream(self, key: str, stream: BinaryIO, *, progress=None) -> ObjectInfo:
        """Read `stream` to its end and store it under `key`.

        Large streams go up in segments (Swift SLO, S3 multipart) so memory stays
        bounded; the object becomes visible under `key` only when complete.
        `progress(bytes_so_far)` is called as data goes up, when given.
        """

    def put_bytes(self, key: str, data: bytes) -> ObjectInfo:
        """A small object in one request (manifests)."""

    def get_stream(self, key: str, *, progress=None) -> Iterator[bytes]:
        """The object's bytes in chunks; raises ObjectMissing."""

    def get_bytes(self, key: str) -> bytes: ...

    def list(self, prefix: str = "") -> list[ObjectInfo]:
        """Completed objects under `prefix`, sorted by key (not segments)."""

    def delete(self, key: str, *, ignore_missing: bool = True) -> None:
        """Delete the object and, for a segmented one, its segments."""

    def cleanup_orphans(self, prefix: str = "") -> list[str]:
        """Remove segments or uploads left by an interrupted put; returns what was removed."""


class ChunkReader:
    """A forward-only file-like over an iterator of chunks (what tarfile's stream mode, put_stream and Glance
    read); `_take` sees every byte handed out, for a subclass that counts or hashes them."""

    def __init__(self, chunks: Iterable[bytes]):
        self._chunks, self._buffer = iter(chunks), b""

    def _take(self, data: bytes) -> bytes:
        return data

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buffer) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buffer += chunk
        data, self._buffer = (self._buffer, b"") if size < 0 else (self._buffer[:size], self._buffer[size:])
        return self._take(data)

    def __iter__(self) -> Iterator[bytes]:
        if self._buffer:
            yield self._take(self._buffer)
            self._buffer = b""
        for chunk in self._chunks:
            yield self._take(chunk)
