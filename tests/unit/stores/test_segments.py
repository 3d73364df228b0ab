"""Parallel segment uploads: results in order, memory bounded by threads + 1 buffers, failures stop the upload."""
from __future__ import annotations

import io
import os
import threading
import time

import pytest

from clouds.stores.segments import BufferReader, ParallelSegments


def test_segments_arrive_in_order_with_at_most_threads_plus_one_buffers():
    data = os.urandom(10 * 1000 + 17)
    segments = ParallelSegments(segment_size=1000, threads=3)
    in_flight, peak, lock = [0], [0], threading.Lock()

    def put(index, view):
        with lock:
            in_flight[0] += 1
            peak[0] = max(peak[0], in_flight[0])
        time.sleep(0.01 * (index % 3))       # finish out of order
        with lock:
            in_flight[0] -= 1
        return index, bytes(view)

    stream = io.BytesIO(data)
    first, whole = segments.first(stream)
    assert not whole and len(first) == 1000
    parts = segments.upload(stream, put)

    assert [i for i, _ in parts] == list(range(11))
    assert b"".join(chunk for _, chunk in parts) == data
    assert peak[0] <= 3
    assert segments._allocated <= 4                           # threads + 1 buffers, reused


def test_a_stream_shorter_than_a_segment_is_one_piece():
    segments = ParallelSegments(segment_size=1000, threads=2)
    first, whole = segments.first(io.BytesIO(b"small"))
    assert whole and bytes(first) == b"small"


def test_a_failed_segment_stops_reading_and_is_raised():
    read = [0]

    class Counting(io.BytesIO):
        def readinto(self, buffer):
            n = super().readinto(buffer)
            read[0] += n
            return n

    stream = Counting(os.urandom(1000 * 1000))
    segments = ParallelSegments(segment_size=1000, threads=2)
    segments.first(stream)

    def put(index, view):
        if index == 3:
            raise ConnectionError("segment 3 refused")
        return index

    with pytest.raises(ConnectionError, match="segment 3"):
        segments.upload(stream, put)
    assert read[0] < 20 * 1000          # stopped long before the end of a 1000-segment stream


def test_buffer_reader_reads_and_seeks_without_copying_the_whole_buffer():
    reader = BufferReader(memoryview(b"0123456789"))
    assert reader.read(4) == b"0123" and reader.tell() == 4
    reader.seek(0)
    target = bytearray(3)
    assert reader.readinto(target) == 3 and target == b"012"
    reader.seek(-2, io.SEEK_END)
    assert reader.read() == b"89" and reader.read() == b"" and len(reader) == 10
