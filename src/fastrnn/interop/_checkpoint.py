"""Read TensorFlow V2 checkpoints ("tensor bundles") without TensorFlow.

A checkpoint ``<prefix>`` is ``<prefix>.index`` plus data shards
``<prefix>.data-<i>-of-<n>``.  The index is a LevelDB-format SSTable
(``table/format.cc``, ``block.cc``): data blocks of prefix-compressed entries
with restart points, each block followed by a one-byte compression type (none
or Snappy) and a masked CRC32C; an index block pointing at the data blocks; a
48-byte footer ending in the magic number ``0xdb4775248b80fb57``.  The entry
for the empty key is a ``BundleHeaderProto`` (number of shards, endianness);
every other key is a variable name mapped to a ``BundleEntryProto`` (dtype,
shape, shard, offset, size and the masked CRC32C of the tensor's bytes).

Everything is parsed by hand here -- a small protobuf wire-format reader,
a Snappy decompressor and a CRC32C (vectorized over lanes with NumPy, then the
lanes' CRCs combined with the GF(2) "append L zero bytes" operator, so a few
MB are checked in milliseconds).  Every checksum is verified; anything that
does not parse is a ``ValueError`` naming the file.
"""
from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Tuple, Union

import numpy as np

__all__ = ["load_tf_checkpoint", "crc32c", "checkpoint_prefix"]

PathLike = Union[str, "os.PathLike[str]"]

_MAGIC = 0xDB4775248B80FB57
_FOOTER = 48

# DataType enum (tensorflow/core/framework/types.proto) -> NumPy dtype.
_DTYPES = {1: np.float32, 2: np.float64, 3: np.int32, 4: np.uint8, 5: np.int16, 6: np.int8, 9: np.int64,
           10: np.bool_, 17: np.uint16, 19: np.float16, 22: np.uint32, 23: np.uint64,
           8: np.complex64, 18: np.complex128}
_DTYPE_NAMES = {7: "string", 14: "bfloat16", 20: "resource", 21: "variant"}


# -- CRC32C (Castagnoli, reflected polynomial 0x82F63B78) -------------------
def _make_table() -> np.ndarray:
    table = np.arange(256, dtype=np.uint32)
    for _ in range(8):
        table = np.where(table & 1, (table >> 1) ^ np.uint32(0x82F63B78), table >> 1).astype(np.uint32)
    return table


_TABLE = _make_table()
_TABLE_LIST = [int(v) for v in _TABLE]


def _crc_bytes(crc: int, data: bytes) -> int:
    """The raw CRC register after feeding ``data`` (byte at a time; for short inputs)."""
    t = _TABLE_LIST
    for b in data:
        crc = t[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc


def _zeros_operator(length: int) -> List[List[int]]:
    """Tables T[j][b] with ``Z(s) = xor_j T[j][(s >> 8j) & 255]``; Z appends ``length`` zero bytes."""
    basis = np.uint32(1) << np.arange(32, dtype=np.uint32)
    for _ in range(length):
        basis = _TABLE[basis & 0xFF] ^ (basis >> 8)
    bits = (np.arange(256)[:, None] >> np.arange(8)[None, :]) & 1  # [256, 8]
    tables = []
    for j in range(4):
        cols = basis[8 * j:8 * j + 8]
        sel = np.where(bits.astype(bool), cols[None, :], np.uint32(0))
        tables.append([int(v) for v in np.bitwise_xor.reduce(sel, axis=1)])
    return tables


def crc32c(data: Union[bytes, bytearray, memoryview, np.ndarray]) -> int:
    """CRC32C (Castagnoli) of ``data``, as TensorFlow and LevelDB compute it.

    Parameters
    ----------
    data : bytes-like or ndarray
        The bytes to checksum (an array is taken as its raw C-order bytes).

    Returns
    -------
    int
        The 32-bit CRC (unmasked).
    """
    buf = np.frombuffer(memoryview(data).cast("B") if not isinstance(data, np.ndarray)
                        else np.ascontiguousarray(data).view(np.uint8).reshape(-1), dtype=np.uint8)
    n = buf.size
    if n < 8192:
        return _crc_bytes(0xFFFFFFFF, buf.tobytes()) ^ 0xFFFFFFFF
    # Lanes: the data split into `lanes` runs of `length` bytes, all fed at once.
    lanes = int(min(65536, max(64, np.sqrt(n / 4))))
    length = n // lanes
    body = np.ascontiguousarray(buf[:lanes * length].reshape(lanes, length).T)
    regs = np.zeros(lanes, np.uint32)
    regs[0] = 0xFFFFFFFF  # only the first lane starts from the initial register
    for row in body:
        regs = _TABLE[(regs ^ row) & 0xFF] ^ (regs >> 8)
    t0, t1, t2, t3 = _zeros_operator(length)
    acc = 0
    for r in regs.tolist():
        acc = t0[acc & 0xFF] ^ t1[(acc >> 8) & 0xFF] ^ t2[(acc >> 16) & 0xFF] ^ t3[acc >> 24] ^ r
    return _crc_bytes(acc, buf[lanes * length:].tobytes()) ^ 0xFFFFFFFF


def _unmask(masked: int) -> int:
    rot = (masked - 0xA282EAD8) & 0xFFFFFFFF
    return ((rot >> 17) | (rot << 15)) & 0xFFFFFFFF


# -- wire formats ---------------------------------------------------------
class _Corrupt(Exception):
    """Internal: a parse failure; turned into a ValueError naming the file."""


def _varint(buf: bytes, pos: int) -> Tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise _Corrupt("truncated or overlong varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _proto_fields(buf: bytes) -> Iterator[Tuple[int, int, Union[int, bytes]]]:
    """``(field number, wire type, value)`` of a serialized protobuf message."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        value: Union[int, bytes]
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            if pos + 8 > len(buf):
                raise _Corrupt("truncated fixed64 field")
            value, pos = struct.unpack_from("<Q", buf, pos)[0], pos + 8
        elif wire == 5:
            if pos + 4 > len(buf):
                raise _Corrupt("truncated fixed32 field")
            value, pos = struct.unpack_from("<I", buf, pos)[0], pos + 4
        elif wire == 2:
            size, pos = _varint(buf, pos)
            if pos + size > len(buf):
                raise _Corrupt("truncated length-delimited field")
            value, pos = bytes(buf[pos:pos + size]), pos + size
        else:
            raise _Corrupt(f"unsupported protobuf wire type {wire}")
        yield field, wire, value


def _snappy_decompress(buf: bytes) -> bytes:
    size, pos = _varint(buf, 0)
    out = bytearray()
    while pos < len(buf):
        tag = buf[pos]
        pos += 1
        kind = tag & 3
        if kind == 0:  # literal
            n = tag >> 2
            if n >= 60:
                extra = n - 59
                n = int.from_bytes(buf[pos:pos + extra], "little")
                pos += extra
            n += 1
            if pos + n > len(buf):
                raise _Corrupt("truncated Snappy literal")
            out += buf[pos:pos + n]
            pos += n
            continue
        if kind == 1:
            n, offset = 4 + ((tag >> 2) & 7), ((tag >> 5) << 8) | buf[pos]
            pos += 1
        else:
            width = 2 if kind == 2 else 4
            n, offset = (tag >> 2) + 1, int.from_bytes(buf[pos:pos + width], "little")
            pos += width
        if offset == 0 or offset > len(out):
            raise _Corrupt("bad Snappy copy offset")
        for _ in range(n):  # copies may overlap their own output
            out.append(out[-offset])
    if len(out) != size:
        raise _Corrupt("Snappy block has the wrong decompressed size")
    return bytes(out)


def _read_block(data: bytes, handle: Tuple[int, int]) -> bytes:
    offset, size = handle
    if offset + size + 5 > len(data):
        raise _Corrupt(f"block at offset {offset} (size {size}) runs past the end of the file")
    raw = data[offset:offset + size + 1]
    stored = struct.unpack_from("<I", data, offset + size + 1)[0]
    if crc32c(raw) != _unmask(stored):
        raise _Corrupt(f"checksum mismatch in the index block at offset {offset}")
    kind = data[offset + size]
    if kind == 0:
        return raw[:-1]
    if kind == 1:
        return _snappy_decompress(raw[:-1])
    raise _Corrupt(f"unknown block compression type {kind}")


def _block_entries(block: bytes) -> Iterator[Tuple[bytes, bytes]]:
    if len(block) < 4:
        raise _Corrupt("block too short")
    restarts = struct.unpack_from("<I", block, len(block) - 4)[0]
    end = len(block) - 4 - 4 * restarts
    if end < 0:
        raise _Corrupt("bad restart count in a block")
    pos, key = 0, b""
    while pos < end:
        shared, pos = _varint(block, pos)
        unshared, pos = _varint(block, pos)
        vlen, pos = _varint(block, pos)
        if shared > len(key) or pos + unshared + vlen > end:
            raise _Corrupt("bad block entry")
        key = key[:shared] + block[pos:pos + unshared]
        pos += unshared
        yield key, block[pos:pos + vlen]
        pos += vlen


def _handle(buf: bytes, pos: int = 0) -> Tuple[Tuple[int, int], int]:
    offset, pos = _varint(buf, pos)
    size, pos = _varint(buf, pos)
    return (offset, size), pos


def _table_items(data: bytes) -> Iterator[Tuple[bytes, bytes]]:
    if len(data) < _FOOTER:
        raise _Corrupt(f"file is {len(data)} bytes, shorter than an SSTable footer")
    footer = data[-_FOOTER:]
    if struct.unpack_from("<Q", footer, 40)[0] != _MAGIC:
        raise _Corrupt("no SSTable magic number at the end (not a TensorFlow checkpoint index, or truncated)")
    _, pos = _handle(footer)
    index_handle, _ = _handle(footer, pos)
    for _, value in _block_entries(_read_block(data, index_handle)):
        yield from _block_entries(_read_block(data, _handle(value)[0]))


@dataclass
class _Entry:
    """The fields of a ``BundleEntryProto`` this reader uses."""

    dtype: int = 0
    shape: Tuple[int, ...] = ()
    shard_id: int = 0
    offset: int = 0
    size: int = 0
    crc32c: Optional[int] = None
    sliced: bool = False


def _parse_entry(value: bytes) -> _Entry:
    entry = _Entry()
    for field, _, v in _proto_fields(value):
        if isinstance(v, bytes):
            if field == 2:  # TensorShapeProto: repeated Dim dim = 2 {int64 size = 1}; bool unknown_rank = 3
                dims = []
                for f2, _, dim in _proto_fields(v):
                    if f2 == 2 and isinstance(dim, bytes):
                        size = next((x for f3, _, x in _proto_fields(dim) if f3 == 1 and isinstance(x, int)), 0)
                        dims.append(size - (1 << 64) if size >= 1 << 63 else size)
                    elif f2 == 3 and dim:
                        raise _Corrupt("tensor of unknown rank")
                entry.shape = tuple(dims)
            elif field == 7:
                entry.sliced = True
        elif field == 1:
            entry.dtype = v
        elif field == 3:
            entry.shard_id = v
        elif field == 4:
            entry.offset = v
        elif field == 5:
            entry.size = v
        elif field == 6:
            entry.crc32c = v
    return entry


def checkpoint_prefix(path: PathLike) -> str:
    """The checkpoint prefix for ``path``.

    ``path`` may be the prefix itself (``model.ckpt``), its ``.index`` file, one of
    its ``.data-?????-of-?????`` shards, or a directory holding a TensorFlow
    ``checkpoint`` state file (the latest checkpoint is used).
    """
    p = os.fspath(path)
    if os.path.isdir(p):
        state = os.path.join(p, "checkpoint")
        if not os.path.isfile(state):
            raise ValueError(f"{p!r} is a directory without a 'checkpoint' file; pass the checkpoint prefix "
                             "(the path of the .index file without '.index')")
        with open(state, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model_checkpoint_path:"):
                    name = line.split(":", 1)[1].strip().strip('"')
                    return name if os.path.isabs(name) else os.path.join(p, name)
        raise ValueError(f"{state!r}: no model_checkpoint_path line")
    if p.endswith(".index"):
        return p[:-len(".index")]
    if ".data-" in os.path.basename(p):
        return p[:p.rindex(".data-")]
    return p


def load_tf_checkpoint(prefix: PathLike, names: Optional[List[str]] = None) -> Dict[str, np.ndarray]:
    """Read a TensorFlow V2 checkpoint into ``{variable name: ndarray}``, without TensorFlow.

    Parameters
    ----------
    prefix : str or path-like
        The checkpoint prefix as given to / returned by ``tf.train.Saver.save``
        (``/path/model.ckpt-1000``), or its ``.index`` file, a data shard, or a
        directory holding a ``checkpoint`` state file.
    names : list of str, optional
        Read only these variables (default: all).  A name that is not in the
        checkpoint is a ``KeyError``.

    Returns
    -------
    dict of str -> ndarray
        Variable names as TensorFlow saved them (``rnn/basic_lstm_cell/kernel``,
        ``global_step``, ...), each a fresh array of the saved dtype and shape.

    Raises
    ------
    ValueError
        The index or a shard is missing, truncated, corrupted (any checksum
        mismatch), not a checkpoint, or holds a tensor this reader cannot
        decode (strings, bfloat16, partitioned variables); the message names
        the file (and the variable).
    """
    base = checkpoint_prefix(prefix)
    index_path = base + ".index"
    try:
        with open(index_path, "rb") as f:
            index = f.read()
    except OSError as e:
        raise ValueError(f"cannot read TensorFlow checkpoint index {index_path!r}: {e.strerror or e}") from None
    try:
        header: Dict[str, int] = {"num_shards": 1, "endianness": 0}
        entries: Dict[str, _Entry] = {}
        for key, value in _table_items(index):
            if key == b"":
                for field, _, v in _proto_fields(value):
                    if field in (1, 2) and isinstance(v, int):
                        header["num_shards" if field == 1 else "endianness"] = v
            else:
                entries[key.decode("utf-8", "replace")] = _parse_entry(value)
    except _Corrupt as e:
        raise ValueError(f"{index_path!r} is not a valid TensorFlow V2 checkpoint index: {e}") from None
    wanted = list(entries) if names is None else list(names)
    for name in wanted:
        if name not in entries:
            raise KeyError(f"{name!r} is not in checkpoint {base!r}; it holds {sorted(entries)}")
    shards: Dict[int, bytes] = {}
    result = {}
    for name in wanted:
        entry = entries[name]
        where = f"variable {name!r} of checkpoint {base!r}"
        if entry.sliced:
            raise ValueError(f"{where} is a partitioned (sliced) variable; not supported")
        code = entry.dtype
        if code not in _DTYPES:
            raise ValueError(f"{where} has dtype {_DTYPE_NAMES.get(code, code)}, which this reader does not decode")
        dtype = np.dtype(_DTYPES[code]).newbyteorder(">" if header["endianness"] == 1 else "<")
        shape, shard_id, offset, size = entry.shape, entry.shard_id, entry.offset, entry.size
        count = int(np.prod(shape, dtype=np.int64))
        if min(shape, default=0) < 0 or count * dtype.itemsize != size or not 0 <= shard_id < header["num_shards"]:
            raise ValueError(f"{where}: inconsistent index entry (shape {shape}, {dtype}, {size} bytes, "
                             f"shard {shard_id} of {header['num_shards']}) in {index_path!r}")
        shard_path = f"{base}.data-{shard_id:05d}-of-{header['num_shards']:05d}"
        if shard_id not in shards:
            try:
                with open(shard_path, "rb") as f:
                    shards[shard_id] = f.read()
            except OSError as err:
                raise ValueError(f"cannot read checkpoint data shard {shard_path!r}: {err.strerror or err}") from None
        blob = shards[shard_id]
        if offset + size > len(blob):
            raise ValueError(f"{shard_path!r} is truncated: {where} needs bytes {offset}..{offset + size}, "
                             f"the file has {len(blob)}")
        raw = memoryview(blob)[offset:offset + size]
        if entry.crc32c is not None and crc32c(raw) != _unmask(entry.crc32c):
            raise ValueError(f"{shard_path!r} is corrupted: checksum mismatch for {where}")
        result[name] = np.frombuffer(raw, dtype=dtype).astype(dtype.newbyteorder("="), copy=True).reshape(shape)
    return result
