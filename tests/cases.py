"""Cell configurations and input layouts shared by the equivalence and property tests."""
from __future__ import annotations

import numpy as np

from fastrnn._structure import map_structure

from conftest import build_cell, randomize, twin


def lstmcell(n, **kw):
    return {"type": "LSTMCell", "num_units": n, "kwargs": kw}


# Every option of every built-in cell, and stacks of them.
CONFIGS = {
    "rnn_tanh": {"type": "BasicRNNCell", "num_units": 5},
    "rnn_relu": {"type": "BasicRNNCell", "num_units": 5, "kwargs": {"activation": "relu"}},
    "rnn_sigmoid": {"type": "BasicRNNCell", "num_units": 4, "kwargs": {"activation": "sigmoid"}},
    "rnn_linear": {"type": "BasicRNNCell", "num_units": 3, "kwargs": {"activation": "linear"}},
    "gru_tanh": {"type": "GRUCell", "num_units": 5},
    "gru_relu": {"type": "GRUCell", "num_units": 4, "kwargs": {"activation": "relu"}},
    "gru_reset_after": {"type": "GRUCell", "num_units": 5, "kwargs": {"reset_after": True}},
    "basic_lstm": {"type": "BasicLSTMCell", "num_units": 5},
    "basic_lstm_fb_flat": {"type": "BasicLSTMCell", "num_units": 4,
                           "kwargs": {"forget_bias": 0.3, "state_is_tuple": False}},
    "basic_lstm_relu": {"type": "BasicLSTMCell", "num_units": 3, "kwargs": {"activation": "relu"}},
    "lstm_plain": lstmcell(5),
    "lstm_peep": lstmcell(5, use_peepholes=True),
    "lstm_peep_clip": lstmcell(4, use_peepholes=True, cell_clip=0.4),
    "lstm_proj": lstmcell(6, num_proj=3),
    "lstm_proj_clip_all": lstmcell(5, use_peepholes=True, cell_clip=1.0, num_proj=2, proj_clip=0.3,
                                   forget_bias=0.0),
    "lstm_proj_flat": lstmcell(4, num_proj=3, state_is_tuple=False),
    "multi": {"type": "MultiRNNCell", "cells": [lstmcell(5, use_peepholes=True, num_proj=3),
                                                 {"type": "GRUCell", "num_units": 4},
                                                 {"type": "BasicRNNCell", "num_units": 3}]},
    "multi_flat": {"type": "MultiRNNCell", "kwargs": {"state_is_tuple": False},
                   "cells": [{"type": "GRUCell", "num_units": 3},
                             lstmcell(4, state_is_tuple=False, num_proj=2)]},
}


def with_units(spec, units):
    """``spec`` with every layer's num_units (and num_proj, kept smaller) set from ``units``."""
    spec = dict(spec)
    if spec["type"] == "MultiRNNCell":
        spec["cells"] = [with_units(s, units + i) for i, s in enumerate(spec["cells"])]
        return spec
    spec["num_units"] = units
    kw = dict(spec.get("kwargs", {}))
    if "num_proj" in kw:
        kw["num_proj"] = max(1, units // 2 + 1)
    spec["kwargs"] = kw
    return spec


def make_pair(spec, depth, dtype, rng, seed=0):
    """A built fastrnn cell with random non-trivial weights, and its reference twin."""
    import fastrnn
    cell = build_cell(fastrnn, spec, seed)
    cell.build(depth, dtype)
    for c in getattr(cell, "cells", [cell]):
        randomize(c, rng)
    return cell, twin(cell)


def random_state(cell, batch, dtype, rng):
    return map_structure(lambda s: rng.uniform(-1, 1, (batch, s)).astype(dtype), cell.state_size)


def layout(x, kind, rng):
    """``x`` as a C-contiguous, Fortran-ordered, strided or read-only array with the same values."""
    if kind == "C":
        return np.ascontiguousarray(x)
    if kind == "F":
        return np.asfortranarray(x)
    if kind == "strided":
        big = np.empty(x.shape[:-1] + (2 * x.shape[-1] + 1,), x.dtype)
        big[..., 1::2] = x
        return big[..., 1::2]
    if kind == "readonly":
        y = np.array(x)
        y.setflags(write=False)
        return y
    raise ValueError(kind)


def lengths_for(kind, batch, time, rng):
    if kind == "none":
        return None
    if kind == "full":
        return np.full(batch, time, np.int32)
    if kind == "zeros":
        return np.zeros(batch, np.int64)
    lens = rng.integers(0, time + 1, batch)
    lens[0] = time
    if batch > 2:
        lens[-1] = 0
    return lens
