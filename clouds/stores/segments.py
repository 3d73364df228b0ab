"""Shared by the Swift and S3 stores: read a stream into a few fixed buffers and upload them in parallel.

A backup stream has no length known in advance and may be far larger than memory.
It is cut into segments (Swift) or parts (S3) of `segment_size` bytes. One reader
(the caller's thread) fills a buffer while up to `threads` workers upload the
previous ones; there are never more than `threads + 1` buffers, so memory stays
at about `segment_size * (threads + 1)` whatever the stream's size. Buffers are
allocated once and reused, so a long upload does not churn the allocator.
"""
from __future__ import annotations

import io
import logging
import queue
import re
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import BinaryIO, Callable, TypeVar

log = logging.getLogger(__name__)

R = TypeVar("R")

MiB = 1024 * 1024
_KEY_PART = re.compile(r"^[A-Za-z0-9._~@+=:,-]+$")


def check_key(key: str) -> str:
    """Refuse keys that could escape a directory or confuse a listing: '..', '//', leading '/'.

    Every store accepts the same keys, so a backup written to a local directory can
    be copied to Swift or S3 under the same names.
    """
    parts = key.split("/") if key else []
    if not parts or any(p in ("", ".", "..") or not _KEY_PART.match(p) for p in parts):
        raise ValueError(f"invalid object key {key!r}: use '/'-separated names of letters, digits and ._~@+=:,-")
    return key


class BufferReader(io.RawIOBase):
    """A seekable, read-only file over a memoryview, so an SDK can send (and resend) a buffer without copying it."""

    def __init__(self, view: memoryview):
        super().__init__()
        self._view = view
        self._pos = 0

    def __len__(self) -> int:
        return len(self._view)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: len(self._view)}[whence]
        self._pos = max(0, min(len(self._view), base + offset))
        return self._pos

    def read(self, size: int = -1) -> bytes:
        end = len(self._view) if size is None or size < 0 else min(len(self._view), self._pos + size)
        chunk = bytes(self._view[self._pos:end])
        self._pos = end
        return chunk

    def readinto(self, target) -> int:
        n = min(len(target), len(self._view) - self._pos)
        target[:n] = self._view[self._pos:self._pos + n]
        self._pos += n
        return n


def read_full(stream: BinaryIO, buffer: memoryview) -> int:
    """Fill `buffer` from `stream`; returns the bytes read, fewer only at the end of the stream."""
    filled = 0
    readinto = getattr(stream, "readinto", None)
    while filled < len(buffer):
        if readinto is not None:
            n = readinto(buffer[filled:])
        else:
            chunk = stream.read(len(buffer) - filled)
            n = len(chunk)
            buffer[filled:filled + n] = chunk
        if not n:
            break
        filled += n
    return filled


class ParallelSegments:
    """Cuts a stream into segments and uploads them with a bounded pool of threads and buffers."""

    def __init__(self, segment_size: int, threads: int):
        if segment_size < 1 or threads < 1:
            raise ValueError("segment_size and threads must be at least 1")
        self.segment_size = segment_size
        self.threads = threads
        self._free: queue.Queue[bytearray] = queue.Queue()
        self._allocated = 0

    def first(self, stream: BinaryIO) -> tuple[memoryview, bool]:
        """Read the first segment; True when the stream ended within it (one plain PUT will do)."""
        buffer = self._buffer()
        view = memoryview(buffer)
        n = read_full(stream, view)
        self._first = (buffer, n)
        return view[:n], n < self.segment_size

    def upload(self, stream: BinaryIO, put: Callable[[int, memoryview], R],
               progress: Callable[[int], None] | None = None) -> list[R]:
        """Upload the first segment (already read) and the rest of `stream`; `put(index, data)` per segment.

        Returns put's results in segment order. The first failure, in a worker or in
        reading the stream, stops reading, waits for the uploads in flight and is raised.
        """
        done = _Counter(progress)
        results: dict[int, R] = {}
        futures: list[Future] = []
        with ThreadPoolExecutor(self.threads, thread_name_prefix="segment") as pool:
            try:
                buffer, n = self._first
                index = 0
                while n:
                    futures.append(pool.submit(self._put_one, put, index, buffer, n, results, done))
                    futures = _raise_first_failure(futures)
                    if n < self.segment_size:
                        break
                    buffer = self._buffer()
                    n = read_full(stream, memoryview(buffer))
                    index += 1
                if not n:
                    self._free.put(buffer)
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
        _raise_first_failure(futures)
        return [results[i] for i in sorted(results)]

    def _put_one(self, put, index: int, buffer: bytearray, n: int, results: dict, done: "_Counter") -> None:
        try:
            results[index] = put(index, memoryview(buffer)[:n])
        finally:
            self._free.put(buffer)
        done.add(n)

    def _buffer(self) -> bytearray:
        """A free buffer; waits for an upload to finish once threads + 1 are in use."""
        try:
            return self._free.get_nowait()
        except queue.Empty:
            pass
        if self._allocated <= self.threads:
            self._allocated += 1
            return bytearray(self.segment_size)
        return self._free.get()


def _raise_first_failure(futures: list[Future]) -> list[Future]:
    """Raise the first worker failure; returns the futures still running (finished ones are dropped)."""
    pending = []
    for future in futures:
        if not future.done():
            pending.append(future)
        elif not future.cancelled() and future.exception() is not None:
            raise future.exception()
    return pending


class _Counter:
    """Bytes uploaded so far, reported to `progress` from whichever worker finished last."""

    def __init__(self, progress: Callable[[int], None] | None):
        self._progress = progress
        self._lock = threading.Lock()
        self.total = 0

    def add(self, n: int) -> None:
        with self._lock:
            self.total += n
            if self._progress is not None:
                self._progress(self.total)
