"""The compiled API against fastrnn.reference: every cell option x driver x dtype x
size x lengths x memory layout.  Random, non-trivial weights (biases and peepholes
included) and random initial states, so every index matters."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

import fastrnn
import fastrnn.reference as ref
from fastrnn import _options

from helpers import CONFIGS, assert_close, layout, lengths_for, make_pair, random_state, with_units


SIZES = [  # (batch, time, depth, units): odd sizes 1, 3, 7, 33, 130 on every axis
    (1, 1, 1, 1), (3, 5, 7, 3), (7, 4, 3, 7), (33, 3, 5, 33), (130, 2, 9, 5), (5, 17, 130, 4), (4, 3, 6, 130),
]
LENGTHS = ["none", "ragged", "zeros", "full"]
LAYOUTS = ["C", "F", "strided", "readonly"]
DTYPES = [np.float32, np.float64]


def _grid():
    """Each config meets every size, lengths kind, layout and dtype (cycled, not a full product)."""
    cycle = itertools.cycle(itertools.product(LENGTHS, LAYOUTS))
    for name in sorted(CONFIGS):
        for i, size in enumerate(SIZES):
            lens, lay = next(cycle)
            yield pytest.param(name, size, lens, lay, DTYPES[i % 2], id=f"{name}-{'x'.join(map(str, size))}-"
                                                                          f"{lens}-{lay}-{np.dtype(DTYPES[i % 2])}")


@pytest.mark.parametrize("name,size,lens,lay,dtype", list(_grid()))
@pytest.mark.parametrize("time_major", [False, True], ids=["batch_major", "time_major"])
def test_dynamic_rnn(name, size, lens, lay, dtype, time_major, rng):
    batch, time, depth, units = size
    cell, ref_cell = make_pair(with_units(CONFIGS[name], units), depth, dtype, rng)
    x = rng.standard_normal((time, batch, depth) if time_major else (batch, time, depth)).astype(dtype)
    x_in = layout(x, lay)
    lengths = lengths_for(lens, batch, time, rng)
    init = random_state(cell, batch, dtype, rng) if lens != "none" else None
    before = (x_in.copy(), None if lengths is None else lengths.copy())
    out, state = fastrnn.dynamic_rnn(cell, x_in, sequence_length=lengths, initial_state=init,
                                     time_major=time_major)
    exp_out, exp_state = ref.dynamic_rnn(ref_cell, x, sequence_length=lengths, initial_state=init,
                                         time_major=time_major)
    assert out.shape == exp_out.shape and out.flags.c_contiguous
    assert_close(out, exp_out, dtype, "outputs")
    assert_close(state, exp_state, dtype, "state")
    np.testing.assert_array_equal(x_in, before[0])  # the caller's arrays are untouched
    if lengths is not None:
        np.testing.assert_array_equal(lengths, before[1])


@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_bidirectional_dynamic_rnn(name, dtype, rng):
    batch, time, depth = 6, 7, 4
    fw, ref_fw = make_pair(CONFIGS[name], depth, dtype, rng, seed=1)
    bw, ref_bw = make_pair(CONFIGS["lstm_proj_clip_all" if name != "lstm_proj_clip_all" else "gru_tanh"],
                           depth, dtype, rng, seed=2)
    x = rng.standard_normal((batch, time, depth)).astype(dtype)
    for lengths in (None, np.array([7, 3, 0, 1, 7, 5])):
        init_bw = random_state(bw, batch, dtype, rng)
        got = fastrnn.bidirectional_dynamic_rnn(fw, bw, x, lengths, initial_state_bw=init_bw)
        exp = ref.bidirectional_dynamic_rnn(ref_fw, ref_bw, x, lengths, initial_state_bw=init_bw)
        assert_close(got, exp, dtype, f"bidirectional lengths={lengths}")


@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_static_drivers(name, dtype, rng):
    batch, time, depth = 5, 4, 3
    cell, ref_cell = make_pair(CONFIGS[name], depth, dtype, rng)
    bw, ref_bw = make_pair(CONFIGS["basic_lstm"], depth, dtype, rng, seed=3)
    xs = [rng.standard_normal((batch, depth)).astype(dtype) for _ in range(time)]
    lengths = [4, 0, 2, 4, 1]
    init = random_state(cell, batch, dtype, rng)
    got = fastrnn.static_rnn(cell, xs, initial_state=init, sequence_length=lengths)
    exp = ref.static_rnn(ref_cell, xs, initial_state=init, sequence_length=lengths)
    assert isinstance(got[0], list) and len(got[0]) == time
    assert_close(got, exp, dtype, "static_rnn")
    got = fastrnn.static_bidirectional_rnn(cell, bw, xs, sequence_length=lengths)
    exp = ref.static_bidirectional_rnn(ref_cell, ref_bw, xs, sequence_length=lengths)
    assert_close(got, exp, dtype, "static_bidirectional_rnn")


@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_one_step_call(name, dtype, rng):
    cell, ref_cell = make_pair(CONFIGS[name], 6, dtype, rng)
    x = layout(rng.standard_normal((7, 6)).astype(dtype), "F")
    state = random_state(cell, 7, dtype, rng)
    assert_close(cell(x, state), ref_cell(x, state), dtype, "cell call")


@pytest.mark.parametrize("name", ["lstm_proj_clip_all", "gru_tanh", "gru_reset_after", "rnn_relu", "multi"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_other_gemm_paths(name, dtype, rng, other_gemm, xproj):
    """SciPy's BLAS and the portable C GEMM behind the same kernels give the same answers,
    in both input-projection modes (fused GRU accumulates a second product into the first)."""
    assert _options.current().gemm == other_gemm
    cell, ref_cell = make_pair(with_units(CONFIGS[name], 9), 5, dtype, rng)
    x = rng.standard_normal((6, 8, 5)).astype(dtype)
    lengths = np.array([8, 3, 0, 8, 1, 5])
    assert_close(fastrnn.dynamic_rnn(cell, x, lengths), ref.dynamic_rnn(ref_cell, x, lengths), dtype, name)


@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_every_instruction_set(name, dtype, isa, xproj, rng):
    """Each dispatch path (generic, AVX2, AVX-512: whatever this CPU runs) against the reference,
    in both input-projection modes, with sizes that leave SIMD remainders (units 1, 13, 37)."""
    for units, lengths in ((1, None), (13, np.array([9, 0, 4, 9, 2])), (37, np.array([3, 9, 9, 1, 0]))):
        cell, ref_cell = make_pair(with_units(CONFIGS[name], units), 6, dtype, rng)
        x = rng.standard_normal((5, 9, 6)).astype(dtype)
        init = random_state(cell, 5, dtype, rng)
        got = fastrnn.bidirectional_dynamic_rnn(cell, cell, x, lengths, init, init)
        exp = ref.bidirectional_dynamic_rnn(ref_cell, ref_cell, x, lengths, init, init)
        assert_close(got, exp, dtype, f"{isa} {xproj} units={units}")


@pytest.mark.parametrize("name", ["lstm_proj_clip_all", "gru_tanh", "gru_reset_after", "rnn_relu", "multi"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_every_tile_height(name, dtype, tile_rows, xproj, rng):
    """Each register tile the packed GEMM has (1 to 8 rows; one row takes two panels at once)
    against the reference: 13 rows split into tiles of at most tile_rows, units that leave a
    partial panel, ragged lengths."""
    for units, batch in ((21, 13), (40, 1), (3, 9)):
        cell, ref_cell = make_pair(with_units(CONFIGS[name], units), 7, dtype, rng)
        x = rng.standard_normal((batch, 6, 7)).astype(dtype)
        lengths = rng.integers(0, 7, batch)
        lengths[0] = 6
        init = random_state(cell, batch, dtype, rng)
        got = fastrnn.dynamic_rnn(cell, x, lengths, init)
        exp = ref.dynamic_rnn(ref_cell, x, lengths, init)
        assert_close(got, exp, dtype, f"tile {tile_rows} {xproj} units={units} batch={batch}")


@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_every_thread_schedule(name, dtype, schedule, xproj, rng):
    """Both schedules of the recurrence on 3 threads, in both input-projection modes: ragged
    lengths with zeros (groups whose rows finish at different steps, a group of zero-length rows),
    fewer rows than threads, time-major, both directions."""
    for batch, units, lengths in ((7, 13, np.array([9, 0, 4, 9, 2, 0, 7])), (2, 37, None),
                                  (10, 5, np.array([0, 0, 0, 3, 9, 1, 9, 9, 2, 5]))):
        cell, ref_cell = make_pair(with_units(CONFIGS[name], units), 6, dtype, rng)
        x = rng.standard_normal((9, batch, 6)).astype(dtype)
        init = random_state(cell, batch, dtype, rng)
        got = fastrnn.bidirectional_dynamic_rnn(cell, cell, x, lengths, init, init, time_major=True)
        exp = ref.bidirectional_dynamic_rnn(ref_cell, ref_cell, x, lengths, init, init, time_major=True)
        assert_close(got, exp, dtype, f"{schedule} {xproj} batch={batch}")


@pytest.mark.parametrize("name", ["basic_lstm", "gru_tanh", "multi"])
@pytest.mark.parametrize("time_major", [False, True], ids=["batch_major", "time_major"])
@pytest.mark.parametrize("batch", [1, 2, 65])
def test_lengths_with_few_or_many_rows(name, time_major, batch, rng):
    """Regression: the input projection skips padding per batch row; a single row with a
    length once took the wrong branch (one segment) and read unprojected rows."""
    cell, ref_cell = make_pair(CONFIGS[name], 3, np.float64, rng)
    time = 70
    x = rng.standard_normal((time, batch, 3) if time_major else (batch, time, 3))
    lengths = rng.integers(0, time + 1, batch)
    lengths[0] = min(time, 67)  # more than one projection chunk of rows
    got = fastrnn.dynamic_rnn(cell, x, lengths, time_major=time_major)
    exp = ref.dynamic_rnn(ref_cell, x, lengths, time_major=time_major)
    assert_close(got, exp, np.float64, f"batch {batch}")
