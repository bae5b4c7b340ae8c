"""The protobuf wire format, read by hand (no protobuf package), for the TF file readers.

A serialized message is a run of ``(key, value)`` fields: the key is a varint
``field_number << 3 | wire_type``; wire type 0 is a varint, 1 a little-endian
64-bit word, 2 a varint length followed by that many bytes (sub-messages,
strings, packed repeated numbers), 5 a 32-bit word.  Types 3 and 4 (groups)
are not used by any TensorFlow message read here and are refused.

Length-delimited values come back as ``memoryview`` slices of the caller's
buffer, so walking down nested messages (a GraphDef's node -> attr -> tensor ->
tensor_content) copies nothing.  Every read is bounds-checked; anything that
does not parse raises :class:`Corrupt`, which each reader turns into a
``ValueError`` naming its file.
"""
from __future__ import annotations

import struct
from typing import Iterator, Tuple, Union

import numpy as np

__all__ = ["Corrupt", "varint", "fields", "tensor_shape", "DTYPES", "DTYPE_NAMES"]

Buffer = Union[bytes, bytearray, memoryview]
Value = Union[int, memoryview]

# DataType enum (tensorflow/core/framework/types.proto) -> NumPy dtype.
DTYPES = {1: np.float32, 2: np.float64, 3: np.int32, 4: np.uint8, 5: np.int16, 6: np.int8, 9: np.int64,
          10: np.bool_, 17: np.uint16, 19: np.float16, 22: np.uint32, 23: np.uint64,
          8: np.complex64, 18: np.complex128}
DTYPE_NAMES = {7: "string", 14: "bfloat16", 20: "resource", 21: "variant"}


class Corrupt(Exception):
    """A parse failure; each reader turns it into a ValueError naming its file."""


def varint(buf: Buffer, pos: int) -> Tuple[int, int]:
    """``(value, next position)`` of the varint at ``pos`` (at most 10 bytes)."""
    result = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise Corrupt("truncated or overlong varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def fields(buf: Buffer) -> Iterator[Tuple[int, int, Value]]:
    """``(field number, wire type, value)`` of a serialized message, in file order."""
    view = buf if isinstance(buf, memoryview) else memoryview(buf)
    pos, end = 0, len(view)
    while pos < end:
        key, pos = varint(view, pos)
        field, wire = key >> 3, key & 7
        if field == 0:
            raise Corrupt("field number 0")
        value: Value
        if wire == 0:
            value, pos = varint(view, pos)
        elif wire == 1:
            if pos + 8 > end:
                raise Corrupt("truncated fixed64 field")
            value, pos = struct.unpack_from("<Q", view, pos)[0], pos + 8
        elif wire == 5:
            if pos + 4 > end:
                raise Corrupt("truncated fixed32 field")
            value, pos = struct.unpack_from("<I", view, pos)[0], pos + 4
        elif wire == 2:
            size, pos = varint(view, pos)
            if pos + size > end:
                raise Corrupt(f"field {field}: {size} bytes announced, {end - pos} left (truncated)")
            value, pos = view[pos:pos + size], pos + size
        else:
            raise Corrupt(f"unsupported protobuf wire type {wire} (field {field})")
        yield field, wire, value


def tensor_shape(buf: Buffer) -> Tuple[int, ...]:
    """The dims of a ``TensorShapeProto`` (``repeated Dim dim = 2 {int64 size = 1}``, ``bool unknown_rank = 3``).

    An unknown dimension is -1 (int64 sizes are two's complement varints).
    """
    dims = []
    for field, _, value in fields(buf):
        if field == 2 and isinstance(value, memoryview):
            size = 0
            for f2, _, x in fields(value):
                if f2 == 1 and isinstance(x, int):
                    size = x - (1 << 64) if x >= 1 << 63 else x
            dims.append(size)
        elif field == 3 and value:
            raise Corrupt("tensor of unknown rank")
    return tuple(dims)
