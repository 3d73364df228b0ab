"""The in-memory pipe between the thread that writes the archive and the store that uploads it.

The archive is produced (tar + compression) in one thread and consumed by
`store.put_stream` in another, through a bounded queue of chunks: the backup is
never held whole in memory nor copied to a local file. The reading side counts
and hashes (sha256) exactly the bytes the store reads, which are the bytes stored.

Failures cross the pipe both ways. If the producer fails, the reader raises
`ArchiveFailed` instead of seeing a clean end of stream, so the store aborts its
upload rather than completing a truncated object. If the consumer gives up, the
producer's next write raises `BrokenPipeError` and it stops.
"""
from __future__ import annotations

import hashlib
import io
import queue
import threading
import time
from collections.abc import Callable

CHUNK = 1024 * 1024
Progress = Callable[[int, float], None]   # (bytes so far, bytes per second)
_EOF = object()


class ArchiveFailed(RuntimeError):
    """The archive producer failed; the store must not keep what it received."""


class StreamPipe:
    """A bounded chunk queue: `writer` is a file to write into, `reader` a file to read from."""

    def __init__(self, max_chunks: int = 8, chunk_size: int = CHUNK):
        self._queue: queue.Queue = queue.Queue(maxsize=max_chunks)
        self._chunk_size = chunk_size
        self._reader_gone = threading.Event()
        self.writer = _PipeWriter(self)
        self.reader = _PipeReader(self)

    def close_writer(self, error: BaseException | None = None) -> None:
        """End of stream, or with `error` the producer's failure, which the reader will raise."""
        self.writer._flush()
        self._put(ArchiveFailed(f"{type(error).__name__}: {error}") if error else _EOF, force=True)

    def close_reader(self) -> None:
        """The consumer stopped: unblock and stop the producer."""
        self._reader_gone.set()
        while True:                     # drain, so a producer blocked on a full queue wakes up
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break

    def _put(self, item, force: bool = False) -> None:
        while True:
            if self._reader_gone.is_set():
                if force:
                    return
                raise BrokenPipeError("the upload stopped reading the archive")
            try:
                self._queue.put(item, timeout=0.2)
                return
            except queue.Full:
                continue


class _PipeWriter(io.RawIOBase):
    """Collects small writes (tar blocks, compressor output) into chunks before queueing them."""

    def __init__(self, pipe: StreamPipe):
        super().__init__()
        self._pipe = pipe
        self._pending = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        if type(data) is bytes and len(data) >= self._pipe._chunk_size:
            # A whole chunk (zstd writes them so, each after a few dozen bytes of its own):
            # immutable, queued as it is, after those few bytes. Joining the two would copy
            # the megabyte twice, with the GIL held.
            self._flush()
            self._pipe._put(data)
            return len(data)
        self._pending += data
        if len(self._pending) >= self._pipe._chunk_size:
            self._flush()
        return len(data)

    def _flush(self) -> None:
        if self._pending:
            chunk, self._pending = bytes(self._pending), bytearray()
            self._pipe._put(chunk)

    def close(self) -> None:
        """Closing is the pipe's business (close_writer): compressors close their file on the way out."""


class _PipeReader(io.RawIOBase):
    """The stream the store reads; raises ArchiveFailed if the producer failed."""

    def __init__(self, pipe: StreamPipe):
        super().__init__()
        self._pipe = pipe
        self._current = memoryview(b"")
        self._ended = False
        self._sha256 = hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    @property
    def sha256(self) -> str:
        return self._sha256.hexdigest()

    def readinto(self, target) -> int:
        if not self._current and not self._next():
            return 0
        n = min(len(target), len(self._current))
        target[:n] = self._current[:n]
        self._sha256.update(self._current[:n])
        self._current = self._current[n:]
        self.size += n
        return n

    def _next(self) -> bool:
        if self._ended:
            return False
        item = self._pipe._queue.get()
        if item is _EOF:
            self._ended = True
            return False
        if isinstance(item, ArchiveFailed):
            self._ended = True
            raise item
        self._current = memoryview(item)
        return True


class ProgressMeter:
    """Turns `progress(bytes_so_far)` from a store into `callback(bytes, bytes_per_second)`, at most every `every` s."""

    def __init__(self, callback: Progress | None, every: float = 0.5):
        self._callback = callback
        self._every = every
        self._started = time.monotonic()
        self._last = 0.0
        self._lock = threading.Lock()
        self.bytes = 0

    def __call__(self, done: int) -> None:
        with self._lock:
            self.bytes = done
            now = time.monotonic()
            if self._callback is None or now - self._last < self._every:
                return
            self._last = now
        self._callback(done, self.rate(now))

    def finish(self) -> None:
        """The last report, whatever the time since the previous one."""
        if self._callback is not None:
            self._callback(self.bytes, self.rate(time.monotonic()))

    def rate(self, now: float) -> float:
        elapsed = now - self._started
        return self.bytes / elapsed if elapsed > 0 else 0.0
