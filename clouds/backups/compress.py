"""The archive's compression: zstd that stores what does not compress, or gzip.

Much of a web front's bytes are compressed already (images, video, archives of
their own), and zstd spends about a second of CPU per GiB on such data to save
nothing. So the tar stream is judged as it passes: each large write (tar writes
a file's data a megabyte at a time) is probed by compressing four 4 KiB samples
of it at level 1. A stretch of such writes that shrink by less than 3%, once it
is as long as zstd's window (2 MiB at the default level), is written as zstd
frames of raw blocks (RFC 8878, 3.1.1.2: a block header every 128 KiB, the
bytes as they are); everything else goes through one ordinary zstd stream,
which starts a new frame after each stored stretch. A stretch that long leaves
nothing before it in the window, so the compressed part loses no match it
would have found; a shorter one (a small JPEG between text files) is
compressed as before. Small writes (small files) are compressed as they come;
within a stretch, up to 4 KiB of them between two of its writes (a tar header)
ride along with it, and more end it.

The result is one standard .tar.zst: `zstd -d` and every zstd library read
concatenated frames as one stream (Doppel's restore reads across frames too).
A stretch judged wrongly costs only ratio: stored bytes are stored whole, and
compressible ones that slip through a probe compress as before.
"""
from __future__ import annotations

import contextlib
import gzip
from typing import BinaryIO

import zstandard

from clouds.backups.pipe import CHUNK

DEFAULT_LEVEL = {"zstd": 3, "gzip": 6}
_ZSTD_JOB = 4 * CHUNK       # bytes per zstd compression job (see compressor)
_JUDGED = 64 * 1024         # a write this large is judged; smaller ones are compressed (or ride along)
_LARGEST = 4 * CHUNK        # larger writes are judged (and framed) a piece of this size at a time
_RIDES_ALONG = 4096         # small writes within a stretch, up to this in all, go with it (tar headers)
_LONGEST_HELD = 8 * CHUNK   # a stretch is stored from its window's length on, or from this (high levels)
_SAMPLES, _SAMPLE = 4, 4096
_STORED_ABOVE = 0.97        # a probe compressing to more than this fraction of its size: stored
_RAW_BLOCK = 128 * 1024     # the largest block a frame with a 128 KiB window may hold
# Magic number; frame header descriptor 0 (no content size, no checksum, no dictionary, not single-segment);
# window descriptor 0x38 (exponent 7: a 2^17 = 128 KiB window, all a raw block needs).
_RAW_FRAME_HEADER = b"\x28\xb5\x2f\xfd\x00\x38"


@contextlib.contextmanager
def compressor(compression: str, level: int, out: BinaryIO):
    """A writable file compressing into `out`; the stream's end is written on exit, `out` left open."""
    if compression == "zstd":
        writer = StoringZstd(out, level)
    else:
        writer = gzip.GzipFile(fileobj=out, mode="wb", compresslevel=level, mtime=0)
    try:
        yield writer
    finally:
        writer.close()


class StoringZstd:
    """A zstd stream writer that stores long incompressible stretches as raw frames; `stored` counts their bytes."""

    def __init__(self, out: BinaryIO, level: int):
        # One zstd worker thread, in jobs of 4 MiB. Not for parallelism: fed in small writes
        # (tar headers, then a megabyte), zstd's single-threaded stream wraps its window
        # buffer and matches on its slow external-dictionary path, about twice the CPU
        # (bench/RESULTS.md). Jobs keep the window contiguous. The same level, the same
        # window; memory grows by about 25 MiB, whatever the size.
        params = zstandard.ZstdCompressionParameters.from_level(level, threads=1, job_size=_ZSTD_JOB)
        self._zstd = zstandard.ZstdCompressor(compression_params=params).stream_writer(out, closefd=False,
                                                                                       write_size=CHUNK)
        self._out = out
        self._probe = zstandard.ZstdCompressor(level=1)
        self._stretch = min(1 << params.window_log, _LONGEST_HELD)  # stored from this length on
        self._pending = bytearray()      # small writes within a stretch, up to _RIDES_ALONG bytes
        self._held: list[bytes] = []     # incompressible writes of a stretch not yet long enough
        self._held_size = 0
        self._storing = False            # in a stretch long enough: its writes go out raw at once
        self._in_frame = False           # the zstd stream has had bytes since its last frame ended
        self.stored = 0
        self.total = 0

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        size = len(view)
        self.total += size
        if size < _JUDGED:
            if not (self._storing or self._held):
                self._compress(view)
                return size
            self._pending += view        # within a stretch: may ride along with the next write
            if len(self._pending) > _RIDES_ALONG:
                self._compress_pending()
            return size
        for start in range(0, size, _LARGEST):
            piece = view[start:start + _LARGEST]
            if self._compressible(piece):
                self._compress_pending()
                self._compress(piece)
                continue
            if self._pending:            # a tar header or two since the stretch's last write: they ride along
                self._add_to_stretch(self._pending)
                self._pending.clear()
            self._add_to_stretch(piece)
        return size

    def flush(self) -> None:
        """Nothing to do: ending a frame here would only cost ratio; close() writes everything."""

    def close(self) -> None:
        self._compress_pending()
        self._compress(b"")              # a stretch still held was too short: compressed
        self._zstd.close()

    def _add_to_stretch(self, data) -> None:
        if self._storing:
            self._store(data)
            return
        self._held.append(bytes(data))
        self._held_size += len(data)
        if self._held_size >= self._stretch:
            if self._in_frame:
                self._zstd.flush(zstandard.FLUSH_FRAME)
                self._in_frame = False
            held, self._held, self._held_size = self._held, [], 0
            for chunk in held:
                self._store(chunk)
            self._storing = True

    def _store(self, data) -> None:
        self._out.write(raw_frame(data))
        self.stored += len(data)

    def _compress(self, data) -> None:
        """Compress `data`, after whatever the stretch held: it was too short to store."""
        self._storing = False
        held, self._held, self._held_size = self._held, [], 0
        for chunk in (*held, data):
            if len(chunk):
                self._zstd.write(chunk)
                self._in_frame = True

    def _compress_pending(self) -> None:
        if self._pending:
            with memoryview(self._pending) as view:
                self._compress(view)
            self._pending.clear()

    def _compressible(self, view: memoryview) -> bool:
        size = len(view)
        if size <= _SAMPLES * _SAMPLE:
            sample = bytes(view)
        else:
            step = (size - _SAMPLE) // (_SAMPLES - 1)
            sample = b"".join(view[i * step:i * step + _SAMPLE] for i in range(_SAMPLES))
        return len(self._probe.compress(sample)) < len(sample) * _STORED_ABOVE


def raw_frame(data) -> bytes:
    """`data` (not empty) as one zstd frame of raw blocks."""
    view = memoryview(data)
    size = len(view)
    parts = [_RAW_FRAME_HEADER]
    for start in range(0, size, _RAW_BLOCK):
        length = min(_RAW_BLOCK, size - start)
        last = start + length == size
        parts.append((length << 3 | last).to_bytes(3, "little"))   # block type 0 (raw) in bits 1-2
        parts.append(view[start:start + length])
    return b"".join(parts)
