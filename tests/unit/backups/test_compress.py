"""The archive's zstd: what does not compress is stored in raw frames, the rest compressed, one readable stream."""
from __future__ import annotations

import gzip
import io
import os
import random

import pytest
import zstandard

from clouds.backups.compress import StoringZstd, compressor, raw_frame

RAW_FRAME = b"\x28\xb5\x2f\xfd\x00\x38"   # magic, descriptor, 128 KiB window: what raw_frame writes

MiB = 1024 * 1024


def read_all(blob: bytes) -> bytes:
    """Every frame, one after another, as `zstd -d` reads a .zst."""
    return zstandard.ZstdDecompressor().decompressobj(read_across_frames=True).decompress(blob)


def frames(blob: bytes) -> list[bytes]:
    """The frames of `blob`, each whole, in order."""
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


def kinds(blob: bytes) -> list[str]:
    """Each frame with bytes in it: "raw" (stored) or "zstd" (compressed); an empty frame (zstd may end so) left out."""
    return ["raw" if f.startswith(RAW_FRAME) else "zstd" for f in frames(blob) if read_all(f)]


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
    assert writer.stored == len(data)
    assert len(blob) < len(data) + 1100 + 200          # a block header per 128 KiB, a frame header per write


def test_compressible_data_is_one_ordinary_frame_as_small_as_plain_zstd():
    data = text(6 * MiB)
    blob, writer = write([data[i:i + MiB] for i in range(0, len(data), MiB)])
    assert writer.stored == 0
    assert read_all(blob) == data
    assert len(frames(blob)) == 1
    plain = zstandard.ZstdCompressor(level=3).compress(data)
    assert len(blob) <= len(plain) * 1.02


def test_stretches_as_long_as_the_window_are_stored_shorter_ones_compressed():
    def megabytes(n: int) -> list[bytes]:
        return [os.urandom(MiB) for _ in range(n)]
    chunks = [text(MiB, 1), *megabytes(3), text(700, 2), text(MiB, 3), *megabytes(1), text(MiB, 4),
              b"h" * 512, *megabytes(4), b"\0" * 512]
    blob, writer = write(chunks)

    assert read_all(blob) == b"".join(chunks)
    assert writer.total == sum(len(c) for c in chunks)
    assert writer.stored == 7 * MiB                    # the 3 and 4 MiB stretches; not the one of 1 MiB
    assert kinds(blob) == ["zstd", *["raw"] * 3, "zstd", *["raw"] * 4, "zstd"]
    # and storing cost nothing against compressing it all
    assert len(blob) <= len(zstandard.ZstdCompressor(level=3).compress(b"".join(chunks))) * 1.005


def test_a_short_stretch_keeps_the_history_a_match_needs():
    # The same text before and after a random megabyte: within zstd's window, so its second copy costs almost
    # nothing, as long as no new frame starts in between.
    first, noise = text(512 * 1024, seed=5), os.urandom(MiB)
    blob, writer = write([first, noise, first])
    alone = len(zstandard.ZstdCompressor(level=3).compress(first))
    assert writer.stored == 0 and kinds(blob) == ["zstd"]
    assert read_all(blob) == first + noise + first
    assert len(blob) < MiB + alone * 1.2


def test_tar_headers_within_a_stretch_ride_along():
    chunks = [*(os.urandom(MiB) for _ in range(2)), b"h" * 1024, os.urandom(MiB)]
    blob, writer = write(chunks)
    assert read_all(blob) == b"".join(chunks)
    assert writer.stored == 3 * MiB + 1024
    assert kinds(blob) == ["raw"] * 4                  # no compressed frame between the two files


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
