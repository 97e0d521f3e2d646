"""TensorBoard's event files, written and read without TensorFlow or protobuf.

An event file is a sequence of TFRecords: ``uint64 length``, ``uint32`` masked CRC-32C
of the length's bytes, the payload, ``uint32`` masked CRC-32C of the payload (all
little-endian). Each payload is a serialized ``tensorflow.Event`` protocol buffer;
the few fields used here are encoded by hand:

- ``Event``: ``wall_time`` (1, double), ``step`` (2, int64), ``file_version``
  (3, string; the first record says ``"brain.Event:2"``), ``summary`` (5).
- ``Summary``: ``value`` (1, repeated); ``Summary.Value``: ``tag`` (1, string),
  ``simple_value`` (2, float), ``histo`` (5).
- ``HistogramProto``: ``min`` (1), ``max`` (2), ``num`` (3), ``sum`` (4),
  ``sum_squares`` (5), ``bucket_limit`` (6, packed doubles), ``bucket`` (7, packed).

TensorBoard reads ``simple_value`` as a scalar and ``histo`` as a histogram.
"""

from __future__ import annotations

import os
import socket
import struct
import time

import numpy as np


def _crc32c_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1  # Castagnoli, reflected
        table.append(c)
    return table


_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli) of ``data``, as TFRecord frames use."""
    c = 0xFFFFFFFF
    for byte in data:
        c = _TABLE[(c ^ byte) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def masked_crc(data: bytes) -> int:
    c = crc32c(data)
    return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF


# -- protocol-buffer encoding of the fields above ------------------------------------


def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1  # int64 two's complement, as protobuf encodes negatives
    out = bytearray()
    while True:
        low = n & 0x7F
        n >>= 7
        if n:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def _field(number: int, wire: int) -> bytes:
    return _varint(number << 3 | wire)


def _bytes(number: int, payload: bytes) -> bytes:
    return _field(number, 2) + _varint(len(payload)) + payload


def _double(number: int, value: float) -> bytes:
    return _field(number, 1) + struct.pack("<d", value)


def _histogram(values, buckets: int) -> bytes:
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    if v.size == 0:
        return _double(1, 0.0) + _double(2, 0.0) + _double(3, 0.0)
    lo, hi = float(v.min()), float(v.max())
    if lo == hi:  # one bucket holding every value
        limits, counts = np.array([hi]), np.array([float(v.size)])
    else:
        counts, edges = np.histogram(v, bins=buckets, range=(lo, hi))
        limits, counts = edges[1:], counts.astype(np.float64)
    out = _double(1, lo) + _double(2, hi) + _double(3, float(v.size))
    out += _double(4, float(v.sum())) + _double(5, float(np.dot(v, v)))
    out += _bytes(6, struct.pack(f"<{limits.size}d", *limits))
    return out + _bytes(7, struct.pack(f"<{counts.size}d", *counts))


def encode_event(step: int, wall_time: float, values=(), file_version=None) -> bytes:
    """One serialized ``Event``: ``values`` is a list of ``(tag, kind, data)`` with kind
    ``"scalar"`` (a number) or ``"histogram"`` (an array: 30 equal-width buckets)."""
    out = _double(1, wall_time) + _field(2, 0) + _varint(int(step))
    if file_version is not None:
        out += _bytes(3, file_version.encode())
    summary = b""
    for tag, kind, data in values:
        value = _bytes(1, str(tag).encode())
        if kind == "scalar":
            value += _field(2, 5) + struct.pack("<f", float(data))
        elif kind == "histogram":
            value += _bytes(5, _histogram(data, 30))
        else:
            raise ValueError(
                f"encode_event: kind must be 'scalar' or 'histogram'. Received: {kind!r}"
            )
        summary += _bytes(1, value)
    if summary:
        out += _bytes(5, summary)
    return out


def frame(payload: bytes) -> bytes:
    """``payload`` as one TFRecord."""
    header = struct.pack("<Q", len(payload))
    return (
        header
        + struct.pack("<I", masked_crc(header))
        + payload
        + struct.pack("<I", masked_crc(payload))
    )


class EventFileWriter:
    """Appends events to a new ``events.out.tfevents.<time>.<host>.<pid>.<n>.v2`` file in
    ``log_dir`` (created); each write is flushed, so TensorBoard sees it while training
    runs and a crash loses nothing already written."""

    _count = 0

    def __init__(self, log_dir):
        os.makedirs(log_dir, exist_ok=True)
        EventFileWriter._count += 1
        name = (
            f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}."
            f"{os.getpid()}.{EventFileWriter._count}.v2"
        )
        self.path = os.path.join(os.fspath(log_dir), name)
        self._file = open(self.path, "wb")  # noqa: SIM115 - open while training runs
        self._write(encode_event(0, time.time(), file_version="brain.Event:2"))

    def _write(self, payload: bytes) -> None:
        self._file.write(frame(payload))
        self._file.flush()

    def scalars(self, step: int, values: dict) -> None:
        """Write the numbers in ``values`` (``{tag: number}``) as one event at ``step``."""
        items = [(tag, "scalar", v) for tag, v in values.items()]
        if items:
            self._write(encode_event(step, time.time(), items))

    def histograms(self, step: int, values: dict) -> None:
        """Write the arrays in ``values`` (``{tag: array}``) as histograms at ``step``."""
        items = [(tag, "histogram", v) for tag, v in values.items()]
        if items:
            self._write(encode_event(step, time.time(), items))

    def close(self) -> None:
        if not self._file.closed:
            os.fsync(self._file.fileno())
            self._file.close()


# -- reading (for tests and for users without TensorBoard) ---------------------------


def _fields(data: bytes):
    """Yield ``(field number, wire type, value)`` of a serialized message."""
    i = 0
    while i < len(data):
        key, i = _read_varint(data, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _read_varint(data, i)
        elif wire == 1:
            value, i = struct.unpack_from("<d", data, i)[0], i + 8
        elif wire == 5:
            value, i = struct.unpack_from("<f", data, i)[0], i + 4
        elif wire == 2:
            n, i = _read_varint(data, i)
            value, i = data[i : i + n], i + n
        else:
            raise ValueError(f"read_events: unsupported protobuf wire type {wire}")
        yield number, wire, value


def _read_varint(data: bytes, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        byte = data[i]
        i += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, i
        shift += 7


def _decode_histogram(data: bytes) -> dict:
    names = {1: "min", 2: "max", 3: "num", 4: "sum", 5: "sum_squares"}
    out = {"bucket_limit": [], "bucket": []}
    for number, _, value in _fields(data):
        if number in names:
            out[names[number]] = value
        elif number in (6, 7):
            key = "bucket_limit" if number == 6 else "bucket"
            out[key] = list(struct.unpack(f"<{len(value) // 8}d", value))
    return out


def _decode_event(data: bytes) -> dict:
    event = {"values": {}}
    for number, _, value in _fields(data):
        if number == 1:
            event["wall_time"] = value
        elif number == 2:
            event["step"] = value
        elif number == 3:
            event["file_version"] = value.decode()
        elif number == 5:
            for _, _, v in _fields(value):
                entry = dict((n, x) for n, _, x in _fields(v))
                tag = entry[1].decode()
                event["values"][tag] = entry[2] if 2 in entry else _decode_histogram(entry[5])
    event.setdefault("step", 0)
    return event


def read_events(path) -> list[dict]:
    """The events of one file: ``{"step", "wall_time", "values": {tag: number or
    histogram dict}}`` (and ``"file_version"`` on the first); every CRC is checked."""
    with open(path, "rb") as f:
        data = f.read()
    events, i = [], 0
    while i < len(data):
        if i + 12 > len(data):
            raise ValueError(f"read_events: {str(path)!r} ends inside a record header")
        header = data[i : i + 8]
        (n,) = struct.unpack("<Q", header)
        (crc,) = struct.unpack_from("<I", data, i + 8)
        payload = data[i + 12 : i + 12 + n]
        if crc != masked_crc(header) or i + 16 + n > len(data):
            raise ValueError(f"read_events: {str(path)!r} has a corrupted record at byte {i}")
        (pcrc,) = struct.unpack_from("<I", data, i + 12 + n)
        if pcrc != masked_crc(payload):
            raise ValueError(f"read_events: {str(path)!r}: payload CRC mismatch at byte {i}")
        events.append(_decode_event(payload))
        i += 16 + n
    return events
