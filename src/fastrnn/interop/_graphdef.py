"""Read the float constants of a frozen TensorFlow GraphDef without TensorFlow.

A frozen graph (``convert_variables_to_constants`` / ``freeze_graph``) is a
serialized ``GraphDef`` whose variables became ``Const`` nodes of the same name
(``rnn/basic_lstm_cell/kernel``).  The messages read here, with their field
numbers (``tensorflow/core/framework/*.proto``)::

    GraphDef     node = 1 (repeated NodeDef), library = 2, version = 3, versions = 4 (VersionDef)
    NodeDef      name = 1, op = 2, input = 3, device = 4, attr = 5 (map<string, AttrValue>:
                 entries {key = 1, value = 2})
    AttrValue    tensor = 8 (TensorProto); the other members are skipped
    TensorProto  dtype = 1, tensor_shape = 2, version_number = 3, tensor_content = 4,
                 float_val = 5, double_val = 6 (packed or not), half_val = 13, ...

A tensor's values are either ``tensor_content`` (the raw little-endian array)
or the typed repeated field; as in TensorFlow's ``Tensor::FromProto``, fewer
values than the shape holds are completed with the last one (a single value
fills the shape) and no values at all mean zeros.  More values than the shape
holds, a ``tensor_content`` of the wrong size, an unknown or negative dimension
are errors.

A GraphDef has no checksum.  What makes a damaged file detectable: every field
is framed (a length that runs past the end is caught), names must be UTF-8 and
unique, and TensorFlow always writes ``versions`` (field 4) and writes it last,
so a file cut anywhere -- even between two nodes -- lacks it.  A changed byte
inside a tensor's values cannot be detected by any reader of this format.

Functions in ``library`` (control flow v2 bodies) are framed but not searched:
a frozen graph's weights are top-level constants.
"""
from __future__ import annotations

import os
import struct
from typing import Dict, List, Optional, Tuple, Union

import numpy as np

from ._wire import Corrupt, fields, tensor_shape

__all__ = ["load_tf_graph"]

PathLike = Union[str, "os.PathLike[str]"]

# DataType -> (NumPy dtype, repeated value field, its packed element format, its unpacked wire type)
_FLOATS: Dict[int, Tuple[np.dtype, int, str, int]] = {1: (np.dtype("<f4"), 5, "<f", 5),
                                                      2: (np.dtype("<f8"), 6, "<d", 1)}
# A Const given by a few values but a huge shape would allocate that much; no RNN weight comes near.
_MAX_ELEMENTS = 1 << 26


def _text(value: object, what: str) -> str:
    if not isinstance(value, memoryview):
        raise Corrupt(f"{what} has the wrong wire type")
    try:
        return bytes(value).decode("utf-8")
    except UnicodeDecodeError:
        raise Corrupt(f"{what} is not UTF-8") from None


def _typed_values(chunks: List[Tuple[int, Union[int, memoryview]]], fmt: str, wire_unpacked: int) -> np.ndarray:
    """The elements of one repeated float/double field, packed (wire 2) and unpacked chunks in order."""
    size = struct.calcsize(fmt)
    parts = []
    for wire, value in chunks:
        if wire == 2 and isinstance(value, memoryview):
            if len(value) % size:
                raise Corrupt(f"packed repeated field of {len(value)} bytes, not a multiple of {size}")
            parts.append(np.frombuffer(value, dtype=fmt))
        elif wire == wire_unpacked and isinstance(value, int):
            parts.append(np.frombuffer(value.to_bytes(size, "little"), dtype=fmt))
        else:
            raise Corrupt(f"repeated value field has wire type {wire}")
    return np.concatenate(parts) if parts else np.zeros(0, fmt)


def _tensor(buf: memoryview) -> Optional[np.ndarray]:
    """A float32/float64 ``TensorProto`` as a fresh array; None for other dtypes."""
    dtype_code, content = 0, None
    shape: Tuple[int, ...] = ()
    values: Dict[int, List[Tuple[int, Union[int, memoryview]]]] = {}
    for field, wire, value in fields(buf):
        if field == 1:
            if not isinstance(value, int):
                raise Corrupt("TensorProto.dtype has the wrong wire type")
            dtype_code = value
        elif field == 2:
            if not isinstance(value, memoryview):
                raise Corrupt("TensorProto.tensor_shape has the wrong wire type")
            shape = tensor_shape(value)
        elif field == 4:
            if not isinstance(value, memoryview):
                raise Corrupt("TensorProto.tensor_content has the wrong wire type")
            content = value
        else:
            values.setdefault(field, []).append((wire, value))
    if dtype_code not in _FLOATS:
        return None
    dtype, value_field, fmt, wire_unpacked = _FLOATS[dtype_code]
    if any(d < 0 for d in shape):
        raise Corrupt(f"a constant of shape {list(shape)} (unknown dimension)")
    count = int(np.prod(shape, dtype=object))
    if content is not None and len(content):
        if len(content) != count * dtype.itemsize:
            raise Corrupt(f"tensor_content of {len(content)} bytes for shape {list(shape)} of {dtype.name} "
                          f"({count * dtype.itemsize} bytes)")
        return np.frombuffer(content, dtype=dtype).astype(dtype.newbyteorder("="), copy=True).reshape(shape)
    given = _typed_values(values.get(value_field, []), fmt, wire_unpacked)
    if given.size > count:
        raise Corrupt(f"{given.size} values for shape {list(shape)} ({count} elements)")
    if count > _MAX_ELEMENTS:
        raise Corrupt(f"a constant of shape {list(shape)} from {given.size} value(s): implausibly large")
    out = np.empty(count, dtype.newbyteorder("="))
    out[:given.size] = given
    out[given.size:] = given[-1] if given.size else 0  # TF: the last value repeats; none given means zeros
    return out.reshape(shape)


def _node(buf: memoryview) -> Tuple[str, str, Optional[np.ndarray]]:
    """``(name, op, value)`` of a NodeDef; value is the float tensor of a ``Const``, else None."""
    name: Optional[str] = None
    op = ""
    attrs: List[memoryview] = []
    for field, _, value in fields(buf):
        if field == 1:
            name = _text(value, "NodeDef.name")
        elif field == 2:
            op = _text(value, "NodeDef.op")
        elif field == 5:
            if not isinstance(value, memoryview):
                raise Corrupt("NodeDef.attr has the wrong wire type")
            attrs.append(value)
    if not name:
        raise Corrupt("a node without a name")
    tensor = None
    for entry in attrs:  # map entries: key = 1, value = 2 (AttrValue)
        key, attr = "", None
        for field, _, value in fields(entry):
            if field == 1:
                key = _text(value, f"an attribute name of node {name!r}")
            elif field == 2:
                if not isinstance(value, memoryview):
                    raise Corrupt(f"attribute of node {name!r} has the wrong wire type")
                attr = value
        if op == "Const" and key == "value" and attr is not None:
            for field, _, value in fields(attr):
                if field == 8:  # AttrValue.tensor
                    if not isinstance(value, memoryview):
                        raise Corrupt(f"the value of node {name!r} has the wrong wire type")
                    try:
                        tensor = _tensor(value)
                    except Corrupt as e:
                        raise Corrupt(f"node {name!r}: {e}") from None
    return name, op, tensor


def load_tf_graph(path: PathLike) -> Dict[str, np.ndarray]:
    """Read the float constants of a frozen TensorFlow GraphDef (``frozen_model.pb``), without TensorFlow.

    A graph frozen by ``convert_variables_to_constants`` / ``freeze_graph`` holds
    each variable as a ``Const`` node of the variable's name, so the result
    feeds :func:`restore_tf` and :func:`find_tf_cells` like a checkpoint does.

    Parameters
    ----------
    path : str or path-like
        A binary ``GraphDef`` file (not a ``.pbtxt`` text graph, not a
        SavedModel's ``saved_model.pb``: pass a SavedModel's directory to
        :func:`load_tf_checkpoint` / :func:`restore_tf` instead).

    Returns
    -------
    dict of str -> ndarray
        ``{node name: value}`` for every float32 and float64 ``Const`` node of
        the graph (the weights, and the graph's other float constants such as
        ``rnn/basic_lstm_cell/Const_1``), each a fresh array.  Constants of other
        dtypes (ints, strings, half) are left out.

    Raises
    ------
    ValueError
        The file cannot be read, is truncated or corrupted, or is not a
        GraphDef; the message names the file.
    """
    p = os.fspath(path)
    try:
        with open(p, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ValueError(f"cannot read TensorFlow graph {p!r}: {e.strerror or e}") from None
    if os.path.basename(p) in ("saved_model.pb", "saved_model.pbtxt"):
        raise ValueError(f"{p!r} is a SavedModel's graph, whose weights are in its variables/ folder: pass the "
                         "SavedModel directory to load_tf_checkpoint or restore_tf")
    try:
        return _graph_constants(memoryview(data))
    except Corrupt as e:
        raise ValueError(f"{p!r} is not a valid TensorFlow GraphDef (frozen graph): {e}") from None


def _graph_constants(data: memoryview) -> Dict[str, np.ndarray]:
    if not len(data):
        raise Corrupt("the file is empty")
    constants: Dict[str, np.ndarray] = {}
    names = set()
    has_versions = False
    for field, wire, value in fields(data):
        if field in (1, 2, 4) and not isinstance(value, memoryview):
            raise Corrupt(f"GraphDef field {field} has wire type {wire}, expected a message (not a GraphDef?)")
        if field == 1:
            assert isinstance(value, memoryview)
            name, op, tensor = _node(value)
            if name in names:
                raise Corrupt(f"two nodes named {name!r}")
            names.add(name)
            if tensor is not None:
                constants[name] = tensor
        elif field == 4:
            assert isinstance(value, memoryview)
            has_versions = True
            for _ in fields(value):  # VersionDef: producer = 1, min_consumer = 2, bad_consumers = 3
                pass
    if not has_versions:
        raise Corrupt("no 'versions' field, which TensorFlow writes last in every GraphDef: the file is "
                      "truncated, or not a binary GraphDef")
    return constants
