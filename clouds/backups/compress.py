"""The archive's compression: zstd that stores what does not compress, or gzip.

Much of a web front's bytes are compressed already (images, video, archives of
their own), and zstd spends about a second of CPU per GiB on such data to save
nothing. So the tar stream is judged as it passes: each large write (tar writes
a file's data a megabyte at a time) and each megabyte of small ones is probed by
compressing four 4 KiB samples of it at level 1; what shrinks by less than 3% is
written as a zstd frame of raw blocks (RFC 8878, 3.1.1.2: a block header every
128 KiB, the bytes as they are), the rest through one ordinary zstd stream, which
starts a new frame after each stored stretch.

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
_JUDGED = 64 * 1024         # a write this large is judged on its own; smaller ones gather to a megabyte
_LARGEST = 4 * CHUNK        # larger writes are judged (and framed) a piece of this size at a time
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
    """A zstd stream writer that stores incompressible stretches as raw frames; `stored` counts their bytes."""

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
        self._pending = bytearray()
        self._in_frame = False          # the zstd stream has had bytes since its last frame ended
        self.stored = 0
        self.total = 0

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        size = len(view)
        if size < _JUDGED:
            self._pending += view
            if len(self._pending) >= CHUNK:
                self._flush_pending(None)
            return size
        for start in range(0, size, _LARGEST):
            piece = view[start:start + _LARGEST]
            stored = not self._compressible(piece)
            if self._pending:
                # A few headers or small files before it go the same way, unless there is enough to judge.
                self._flush_pending(stored if len(self._pending) < _JUDGED else None)
            self._emit(piece, stored)
        return size

    def flush(self) -> None:
        """Nothing to do: ending a frame here would only cost ratio; close() writes everything."""

    def close(self) -> None:
        if self._pending:
            self._flush_pending(None)
        self._zstd.close()

    def _flush_pending(self, stored: bool | None) -> None:
        with memoryview(self._pending) as view:
            self._emit(view, (not self._compressible(view)) if stored is None else stored)
        self._pending.clear()

    def _emit(self, view: memoryview, stored: bool) -> None:
        self.total += len(view)
        if not stored:
            self._zstd.write(view)
            self._in_frame = True
            return
        if self._in_frame:
            self._zstd.flush(zstandard.FLUSH_FRAME)
            self._in_frame = False
        self._out.write(raw_frame(view))
        self.stored += len(view)

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
