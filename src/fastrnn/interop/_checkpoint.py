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

Everything is parsed by hand -- the protobuf wire format (``_wire.py``),
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

from ._wire import DTYPE_NAMES, DTYPES, Corrupt, fields, tensor_shape, varint

__all__ = ["load_tf_checkpoint", "crc32c", "checkpoint_prefix"]

PathLike = Union[str, "os.PathLike[str]"]

_MAGIC = 0xDB4775248B80FB57
_FOOTER = 48


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
_Corrupt = Corrupt  # the name the tests use


def _snappy_decompress(buf: bytes) -> bytes:
    size, pos = varint(buf, 0)
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
                raise Corrupt("truncated Snappy literal")
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
            raise Corrupt("bad Snappy copy offset")
        for _ in range(n):  # copies may overlap their own output
            out.append(out[-offset])
    if len(out) != size:
        raise Corrupt("Snappy block has the wrong decompressed size")
    return bytes(out)


def _read_block(data: bytes, handle: Tuple[int, int]) -> bytes:
    offset, size = handle
    if offset + size + 5 > len(data):
        raise Corrupt(f"block at offset {offset} (size {size}) runs past the end of the file")
    raw = data[offset:offset + size + 1]
    stored = struct.unpack_from("<I", data, offset + size + 1)[0]
    if crc32c(raw) != _unmask(stored):
        raise Corrupt(f"checksum mismatch in the index block at offset {offset}")
    kind = data[offset + size]
    if kind == 0:
        return raw[:-1]
    if kind == 1:
        return _snappy_decompress(raw[:-1])
    raise Corrupt(f"unknown block compression type {kind}")


def _block_entries(block: bytes) -> Iterator[Tuple[bytes, bytes]]:
    if len(block) < 4:
        raise Corrupt("block too short")
    restarts = struct.unpack_from("<I", block, len(block) - 4)[0]
    end = len(block) - 4 - 4 * restarts
    if end < 0:
        raise Corrupt("bad restart count in a block")
    pos, key = 0, b""
    while pos < end:
        shared, pos = varint(block, pos)
        unshared, pos = varint(block, pos)
        vlen, pos = varint(block, pos)
        if shared > len(key) or pos + unshared + vlen > end:
            raise Corrupt("bad block entry")
        key = key[:shared] + block[pos:pos + unshared]
        pos += unshared
        yield key, block[pos:pos + vlen]
        pos += vlen


def _handle(buf: bytes, pos: int = 0) -> Tuple[Tuple[int, int], int]:
    offset, pos = varint(buf, pos)
    size, pos = varint(buf, pos)
    return (offset, size), pos


def _table_items(data: bytes) -> Iterator[Tuple[bytes, bytes]]:
    if len(data) < _FOOTER:
        raise Corrupt(f"file is {len(data)} bytes, shorter than an SSTable footer")
    footer = data[-_FOOTER:]
    if struct.unpack_from("<Q", footer, 40)[0] != _MAGIC:
        raise Corrupt("no SSTable magic number at the end (not a TensorFlow checkpoint index, or truncated)")
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
    for field, _, v in fields(value):
        if isinstance(v, memoryview):
            if field == 2:
                entry.shape = tensor_shape(v)
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


def _state_file_prefix(directory: str, state: str) -> str:
    """The latest checkpoint named by a ``checkpoint`` state file (``model_checkpoint_path: "..."``)."""
    with open(state, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith("model_checkpoint_path:"):
                name = line.split(":", 1)[1].strip().strip('"')
                if not os.path.isabs(name):
                    return os.path.join(directory, name)
                # An absolute path written on another machine (the directory was copied):
                # TensorFlow's own lookup then fails; the checkpoint next to the state file is meant.
                here = os.path.join(directory, os.path.basename(name))
                if not os.path.exists(name + ".index") and os.path.exists(here + ".index"):
                    return here
                return name
    raise ValueError(f"{state!r}: no model_checkpoint_path line")


def checkpoint_prefix(path: PathLike) -> str:
    """The checkpoint prefix for ``path``.

    ``path`` may be the prefix itself (``model.ckpt``), its ``.index`` file, one of
    its ``.data-?????-of-?????`` shards, its ``.meta`` graph, a directory holding
    a TensorFlow ``checkpoint`` state file (the latest checkpoint is used; the
    state file itself works too), or a SavedModel: its directory, its
    ``saved_model.pb`` or its ``variables/`` folder (the weights are the
    checkpoint ``variables/variables``).
    """
    p = os.fspath(path)
    if isinstance(p, bytes):
        p = os.fsdecode(p)
    if os.path.isdir(p):
        state = os.path.join(p, "checkpoint")
        if os.path.isfile(state):
            return _state_file_prefix(p, state)
        for candidate in (os.path.join(p, "variables", "variables"), os.path.join(p, "variables")):
            if os.path.isfile(candidate + ".index"):
                return candidate
        if any(os.path.isfile(os.path.join(p, f)) for f in ("saved_model.pb", "saved_model.pbtxt")):
            raise ValueError(f"{p!r} is a SavedModel directory without 'variables/variables.index': the model "
                             "has no variables, or its variables/ folder was not copied with it")
        raise ValueError(f"{p!r} is a directory with neither a 'checkpoint' file nor a SavedModel's "
                         "'variables/variables.index'; pass the checkpoint prefix (the path of the .index file "
                         "without '.index')")
    base = os.path.basename(p)
    if base in ("saved_model.pb", "saved_model.pbtxt", "checkpoint") and os.path.isfile(p):
        return checkpoint_prefix(os.path.dirname(p) or os.curdir)
    for suffix in (".index", ".meta"):
        if p.endswith(suffix):
            return p[:-len(suffix)]
    if ".data-" in base:
        return p[:p.rindex(".data-")]
    return p


class _Bundle:
    """An opened checkpoint: the index parsed (names, dtypes, shapes), tensors read on demand.

    Restoring a cell from a training checkpoint needs a few tensors out of
    many (optimizer slots can triple the file); only those are read and checked.
    """

    def __init__(self, path: PathLike) -> None:
        self.prefix = base = checkpoint_prefix(path)
        self.index_path = index_path = base + ".index"
        try:
            with open(index_path, "rb") as f:
                index = f.read()
        except OSError as e:
            raise ValueError(f"cannot read TensorFlow checkpoint index {index_path!r}: {e.strerror or e}") from None
        self.num_shards, self.endianness = 1, 0
        self.entries: Dict[str, _Entry] = {}
        try:
            for key, value in _table_items(index):
                if key == b"":
                    for field, _, v in fields(value):
                        if field == 1 and isinstance(v, int):
                            self.num_shards = v
                        elif field == 2 and isinstance(v, int):
                            self.endianness = v
                else:
                    self.entries[key.decode("utf-8", "replace")] = _parse_entry(value)
        except Corrupt as e:
            raise ValueError(f"{index_path!r} is not a valid TensorFlow V2 checkpoint index: {e}") from None
        self._shards: Dict[int, bytes] = {}

    def dtype(self, name: str) -> Optional[np.dtype]:
        """The variable's NumPy dtype, or None for one this reader does not decode (strings, ...)."""
        code = self.entries[name].dtype
        return np.dtype(DTYPES[code]) if code in DTYPES else None

    def read(self, names: List[str]) -> Dict[str, np.ndarray]:
        """``{name: fresh ndarray}`` for these variables (names known to be in the index)."""
        return {name: self._read_one(name) for name in names}

    def _read_one(self, name: str) -> np.ndarray:
        base, index_path, entry = self.prefix, self.index_path, self.entries[name]
        where = f"variable {name!r} of checkpoint {base!r}"
        if entry.sliced:
            raise ValueError(f"{where} is a partitioned (sliced) variable; not supported")
        code = entry.dtype
        if code not in DTYPES:
            raise ValueError(f"{where} has dtype {DTYPE_NAMES.get(code, code)}, which this reader does not decode")
        dtype = np.dtype(DTYPES[code]).newbyteorder(">" if self.endianness == 1 else "<")
        shape, shard_id, offset, size = entry.shape, entry.shard_id, entry.offset, entry.size
        count = int(np.prod(shape, dtype=np.int64))
        if min(shape, default=0) < 0 or count * dtype.itemsize != size or not 0 <= shard_id < self.num_shards:
            raise ValueError(f"{where}: inconsistent index entry (shape {shape}, {dtype}, {size} bytes, "
                             f"shard {shard_id} of {self.num_shards}) in {index_path!r}")
        shard_path = f"{base}.data-{shard_id:05d}-of-{self.num_shards:05d}"
        if shard_id not in self._shards:
            try:
                with open(shard_path, "rb") as f:
                    self._shards[shard_id] = f.read()
            except OSError as err:
                raise ValueError(f"cannot read checkpoint data shard {shard_path!r}: {err.strerror or err}") from None
        blob = self._shards[shard_id]
        if offset + size > len(blob):
            raise ValueError(f"{shard_path!r} is truncated: {where} needs bytes {offset}..{offset + size}, "
                             f"the file has {len(blob)}")
        raw = memoryview(blob)[offset:offset + size]
        if entry.crc32c is not None and crc32c(raw) != _unmask(entry.crc32c):
            raise ValueError(f"{shard_path!r} is corrupted: checksum mismatch for {where}")
        return np.frombuffer(raw, dtype=dtype).astype(dtype.newbyteorder("="), copy=True).reshape(shape)


def load_tf_checkpoint(prefix: PathLike, names: Optional[List[str]] = None) -> Dict[str, np.ndarray]:
    """Read a TensorFlow V2 checkpoint into ``{variable name: ndarray}``, without TensorFlow.

    Parameters
    ----------
    prefix : str or path-like
        The checkpoint prefix as given to / returned by ``tf.train.Saver.save``
        (``/path/model.ckpt-1000``), or its ``.index`` file, a data shard, its
        ``.meta`` file, a directory holding a ``checkpoint`` state file, or a
        SavedModel directory (its ``variables/variables`` checkpoint; in a TF1
        SavedModel the keys are the variable names).
    names : list of str, optional
        Read only these variables (default: all).  A name that is not in the
        checkpoint is a ``KeyError``.

    Returns
    -------
    dict of str -> ndarray
        Variable names as TensorFlow saved them (``rnn/basic_lstm_cell/kernel``,
        ``global_step``, ``rnn/basic_lstm_cell/kernel/Adam``, ...), each a fresh
        array of the saved dtype and shape.

    Raises
    ------
    ValueError
        The index or a shard is missing, truncated, corrupted (any checksum
        mismatch), not a checkpoint, or holds a tensor this reader cannot
        decode (strings, bfloat16, partitioned variables); the message names
        the file (and the variable).
    """
    bundle = _Bundle(prefix)
    wanted = list(bundle.entries) if names is None else list(names)
    for name in wanted:
        if name not in bundle.entries:
            raise KeyError(f"{name!r} is not in checkpoint {bundle.prefix!r}; it holds {sorted(bundle.entries)}")
    return bundle.read(wanted)
