"""The archive's zstd: what does not compress is stored in raw frames, the rest compressed, one readable stream."""
from __future__ import annotations

import gzip
import io
import os
import random

import pytest
import zstandard

from clouds.backups.compress import StoringZstd, compressor, raw_frame

MiB = 1024 * 1024


def read_all(blob: bytes) -> bytes:
    """Every frame, one after another, as `zstd -d` reads a .zst."""
    return zstandard.ZstdDecompressor().decompressobj(read_across_frames=True).decompress(blob)


def frames(blob: bytes) -> list[bytes]:
    """The frames of `blob`, each whole (a raw one recognised by its window descriptor and no content size)."""
    found, reader, offset = [], zstandard.ZstdDecompressor(), 0
    while offset < len(blob):
        end = offset + _frame_length(reader, blob[offset:])
        found.append(blob[offset:end])
        offset = end
    return found


def _frame_length(reader, data: bytes) -> int:
    # Decompressing one frame with decompressobj leaves what follows it in unused_data.
    obj = reader.decompressobj()
    obj.decompress(data)
    return len(data) - len(obj.unused_data)


def text(size: int, seed: int = 0) -> bytes:
    """Compressible bytes: made-up log lines."""
    rng = random.Random(seed)
    lines = (f"2026-12-04T01:{rng.randrange(60):02d} GET /shop/item/{rng.randrange(5000)} 200 "
             f"{rng.randrange(90000)}\n" for _ in range(size // 20))
    return "".join(lines).encode()[:size]


def write(chunks: list[bytes], level: int = 3) -> tuple[bytes, StoringZstd]:
    out = io.BytesIO()
    writer = StoringZstd(out, level)
    for chunk in chunks:
        assert writer.write(chunk) == len(chunk)
    writer.close()
    return out.getvalue(), writer


@pytest.mark.parametrize("size", [1, 5, 128 * 1024, 128 * 1024 + 1, 3 * 128 * 1024])
def test_a_raw_frame_reads_back_as_its_bytes(size):
    data = os.urandom(size)
    frame = raw_frame(data)
    assert read_all(frame) == data
    assert len(frame) == 6 + 3 * -(-size // (128 * 1024)) + size   # frame header, a block header per 128 KiB


def test_random_data_is_stored_not_compressed():
    data = os.urandom(9 * MiB)
    # as tar writes it: a header, the file a megabyte at a time, its padding
    blob, writer = write([b"h" * 512, *(data[i:i + MiB] for i in range(0, len(data), MiB)), b"\0" * 512])
    assert read_all(blob) == b"h" * 512 + data + b"\0" * 512
    assert writer.stored == len(data) + 512           # the header rode with the first megabyte, stored too
    assert len(blob) < len(data) + 1100 + 64          # a block header per 128 KiB, a frame header per write


def test_compressible_data_is_one_ordinary_frame_as_small_as_plain_zstd():
    data = text(6 * MiB)
    blob, writer = write([data[i:i + MiB] for i in range(0, len(data), MiB)])
    assert writer.stored == 0
    assert read_all(blob) == data
    assert len(frames(blob)) == 1
    plain = zstandard.ZstdCompressor(level=3).compress(data)
    assert len(blob) <= len(plain) * 1.02


def test_a_mixed_stream_stores_only_what_does_not_compress_and_keeps_its_order():
    rng = random.Random(7)
    chunks, random_megabytes = [], 0
    for n in range(40):
        kind = rng.choice(["text", "random", "small text", "small random"])
        size = {"text": MiB, "random": MiB, "small text": 700, "small random": 3000}[kind]
        chunks.append(text(size, seed=n) if "text" in kind else os.urandom(size))
        random_megabytes += MiB if kind == "random" else 0
    blob, writer = write(chunks)

    assert read_all(blob) == b"".join(chunks)
    assert writer.total == sum(len(c) for c in chunks)
    # every megabyte of random bytes stored, no megabyte of text; the small writes go with their neighbours
    assert random_megabytes <= writer.stored < random_megabytes + 40 * 3700
    assert len(blob) < random_megabytes + (writer.total - random_megabytes) / 3
    assert len(frames(blob)) > 2


def test_a_large_write_is_judged_in_pieces():
    # One 12 MiB write, text then random then text: each 4 MiB piece judged on its own
    data = text(4 * MiB, seed=1) + os.urandom(4 * MiB) + text(4 * MiB, seed=2)
    blob, writer = write([data])
    assert read_all(blob) == data
    assert writer.stored == 4 * MiB
    assert [len(f) > 4 * MiB for f in frames(blob)] == [False, True, False]


def test_gzip_is_unchanged_and_zstd_with_nothing_written_is_an_empty_stream():
    out = io.BytesIO()
    with compressor("zstd", 3, out):
        pass
    assert read_all(out.getvalue()) == b""
    gz = io.BytesIO()
    with compressor("gzip", 6, gz) as writer:
        writer.write(b"x" * 1000)
    assert gzip.decompress(gz.getvalue()) == b"x" * 1000
