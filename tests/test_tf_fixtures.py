"""Golden outputs computed by real TensorFlow 1.x (tools/make_tf_fixtures.py).

Every fixture runs on both the reference and the compiled API: same weights,
inputs, lengths and initial states, same outputs and final states as TF
(float32 rtol 1e-5, float64 rtol 1e-10).
"""
from __future__ import annotations

import numpy as np
import pytest

import fastrnn
import fastrnn.reference as ref
from fastrnn._structure import flatten, pack_as

from helpers import FIXTURES, assert_close, build_cell, load_fixture


CASES = sorted(FIXTURES.glob("*.npz"))
IMPLS = {"reference": ref, "fastrnn": fastrnn}


def test_fixtures_exist():
    assert len(CASES) >= 40, f"expected the TF fixture set in {FIXTURES}, found {len(CASES)} files"


def _prefixed(data, prefix):
    return [data[f"{prefix}/{i}"] for i in range(len([k for k in data if k.startswith(prefix + "/")]))]


def _cell(module, spec, data, prefix, dtype):
    cell = build_cell(module, spec)
    cell.set_weights({k[len(prefix) + 1:]: v for k, v in data.items() if k.startswith(prefix + "/")})
    assert all(np.asarray(w).dtype == dtype for w in cell.weights.values())
    return cell


def _state(cell, data, prefix):
    leaves = _prefixed(data, prefix)
    return pack_as(cell.state_size, leaves) if leaves else None


@pytest.mark.parametrize("impl", sorted(IMPLS))
@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_matches_tensorflow(path, impl):
    module = IMPLS[impl]
    data = load_fixture(path)
    meta = data["meta"]
    dtype = np.dtype(meta["dtype"])
    driver = meta["driver"]
    lengths = data.get("sequence_length")
    x = data["inputs"]
    what = f"{path.stem} [{impl}]"
    if driver in ("bidirectional_dynamic_rnn", "static_bidirectional_rnn"):
        fw = _cell(module, meta["cell_fw"], data, "w_fw", dtype)
        bw = _cell(module, meta["cell_bw"], data, "w_bw", dtype)
        kw = dict(initial_state_fw=_state(fw, data, "init_fw"), initial_state_bw=_state(bw, data, "init_bw"),
                  dtype=dtype, sequence_length=lengths)
        if driver == "bidirectional_dynamic_rnn":
            (out_fw, out_bw), (st_fw, st_bw) = module.bidirectional_dynamic_rnn(
                fw, bw, x, time_major=meta["time_major"], **kw)
            assert_close(out_fw, data["out_fw"], dtype, what + " out_fw")
            assert_close(out_bw, data["out_bw"], dtype, what + " out_bw")
        else:
            outs, st_fw, st_bw = module.static_bidirectional_rnn(fw, bw, list(x), **kw)
            assert isinstance(outs, list) and len(outs) == x.shape[0]
            assert_close(np.stack(outs), data["out"], dtype, what + " outputs")
        assert_close(flatten(st_fw), _prefixed(data, "state_fw"), dtype, what + " state_fw")
        assert_close(flatten(st_bw), _prefixed(data, "state_bw"), dtype, what + " state_bw")
        return
    cell = _cell(module, meta["cell"], data, "w", dtype)
    init = _state(cell, data, "init")
    if driver == "dynamic_rnn":
        out, state = module.dynamic_rnn(cell, x, sequence_length=lengths, initial_state=init, dtype=dtype,
                                        time_major=meta["time_major"])
    elif driver == "static_rnn":
        outs, state = module.static_rnn(cell, list(x), initial_state=init, dtype=dtype, sequence_length=lengths)
        assert isinstance(outs, list) and len(outs) == x.shape[0]
        out = np.stack(outs)
    else:
        assert driver == "cell_call", driver
        out, state = cell(x, init)
    assert_close(out, data["out"], dtype, what + " outputs")
    assert_close(flatten(state), _prefixed(data, "state"), dtype, what + " state")
