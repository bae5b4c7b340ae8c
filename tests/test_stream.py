"""fr.Stream (issue 12): step by step and chunk by chunk it computes one dynamic_rnn over all of it.

Every built-in cell configuration (flat LSTM states, projections, stacks) and any other cell;
ragged lengths across chunk boundaries; validation once per input shape and dtype with the same
errors; nothing changes when a call fails; one stream shared by threads; ``out=``; the
reference's NumPy Stream as the oracle.  The ``bfloat16`` tests run the compiled path and wait on
its kernels (today ``run_sequence`` raises NotImplementedError for them).
"""
from __future__ import annotations

import threading

import numpy as np
import pytest

import fastrnn
import fastrnn.reference as ref
from fastrnn import _compiled
from fastrnn._structure import flatten

from helpers import (CONFIGS, DTYPES, IMPLS, assert_close, assert_identical, assert_same_structure, make_pair,
                     random_state, randomize)

DEPTH = 3


def sequences(rng, batch, time, dtype):
    return rng.standard_normal((batch, time, DEPTH)).astype(dtype)


def chunk_starts(rng, time):
    """Random chunk boundaries over [0, time], empty chunks included."""
    cuts = sorted(rng.integers(0, time + 1, 4).tolist())
    return [0] + cuts + [time]


def per_chunk(lengths, start, width):
    """The chunk's own sequence_length for rows of total length ``lengths`` (the documented recipe)."""
    return np.clip(np.asarray(lengths) - start, 0, width)


# ---- equal to dynamic_rnn ---------------------------------------------------------------------

@pytest.mark.parametrize("spec", list(CONFIGS))
@pytest.mark.parametrize("dtype", DTYPES)
def test_steps_equal_dynamic_rnn(spec, dtype, rng):
    cell, twin = make_pair(CONFIGS[spec], DEPTH, dtype, rng)
    x = sequences(rng, 3, 7, dtype)
    state0 = random_state(cell, 3, dtype, rng)
    stream = fastrnn.Stream(cell, batch_size=3, dtype=dtype, initial_state=state0)
    outputs = np.stack([stream.step(x[:, t]) for t in range(7)], axis=1)
    want = ref.dynamic_rnn(twin, x, initial_state=state0)
    assert_close((outputs, stream.state), want, dtype, f"{spec}: 7 steps")
    assert_same_structure(stream.state, want[1], spec)
    assert_close((outputs, stream.state), fastrnn.dynamic_rnn(cell, x, initial_state=state0), dtype, "vs compiled")


@pytest.mark.parametrize("spec", list(CONFIGS))
@pytest.mark.parametrize("dtype", DTYPES)
def test_chunks_with_ragged_lengths_equal_one_call(spec, dtype, rng):
    """Rows end inside chunks, on chunk boundaries, before the first chunk (length 0) and never;
    each chunk gets its own lengths; the chunks equal one dynamic_rnn with the total lengths."""
    cell, twin = make_pair(CONFIGS[spec], DEPTH, dtype, rng)
    batch, time = 5, 13
    x = sequences(rng, batch, time, dtype)
    starts = chunk_starts(rng, time)
    lengths = np.array([time, 0, starts[2], rng.integers(1, time), rng.integers(1, time)])  # starts[2]: a boundary
    stream = fastrnn.Stream(cell, batch_size=batch, dtype=dtype)
    pieces = [stream.run(x[:, a:b], sequence_length=per_chunk(lengths, a, b - a)) for a, b in zip(starts, starts[1:])]
    outputs = np.concatenate(pieces, axis=1)
    want = ref.dynamic_rnn(twin, x, sequence_length=lengths)
    assert_close((outputs, stream.state), want, dtype, f"{spec}: chunks at {starts}, lengths {lengths}")
    assert_close((outputs, stream.state), fastrnn.dynamic_rnn(cell, x, sequence_length=lengths), dtype, "compiled")


@pytest.mark.parametrize("spec", ["multi", "lstm_proj_flat"])
def test_every_kernel_mode(spec, xproj, schedule, rng):
    """Steps and ragged chunks under each input projection and thread schedule of the kernels."""
    cell, twin = make_pair(CONFIGS[spec], DEPTH, np.float32, rng)
    x = sequences(rng, 9, 8, np.float32)
    lens = rng.integers(0, 9, 9)
    stream = fastrnn.Stream(cell, batch_size=9)
    out = np.concatenate([stream.run(x[:, :5], per_chunk(lens, 0, 5)), stream.run(x[:, 5:], per_chunk(lens, 5, 3))],
                         axis=1)
    assert_close((out, stream.state), ref.dynamic_rnn(twin, x, lens), np.float32, f"{xproj}, {schedule}")
    stream.reset()
    steps = np.stack([stream.step(x[:, t]) for t in range(8)], axis=1)
    assert_close((steps, stream.state), ref.dynamic_rnn(twin, x), np.float32, f"steps: {xproj}, {schedule}")


@pytest.mark.parametrize("m", IMPLS)
def test_steps_and_chunks_mix(m, rng):
    cell, twin = make_pair(CONFIGS["multi"], DEPTH, np.float64, rng)
    cell = cell if m is fastrnn else twin
    x = sequences(rng, 2, 12, np.float64)
    stream = m.Stream(cell, batch_size=2, dtype=np.float64)
    parts = [stream.run(x[:, :4]), stream.step(x[:, 4])[:, None], stream.run(x[:, 5:5]),
             stream.run(x[:, 5:11], sequence_length=[6, 6]), stream.step(x[:, 11])[:, None]]
    assert_close((np.concatenate(parts, axis=1), stream.state), ref.dynamic_rnn(twin, x), np.float64)


@pytest.mark.parametrize("m", IMPLS)
def test_a_row_without_new_steps_keeps_its_state_and_resumes(m, rng):
    """Per-chunk lengths are more than cut-up total lengths: a row may get no new steps in one chunk
    and some in the next (a live stream with nothing new); it then continues from where it stopped."""
    cell, twin = make_pair(CONFIGS["lstm_proj_flat"], DEPTH, np.float64, rng)
    cell = cell if m is fastrnn else twin
    x = sequences(rng, 2, 12, np.float64)
    stream = m.Stream(cell, batch_size=2, dtype=np.float64)
    lens = [[4, 2], [0, 3], [4, 0]]  # row 1 runs x[1, 0:2], x[1, 4:7]
    out = [stream.run(x[:, 4 * i:4 * i + 4], sequence_length=lens[i]) for i in range(3)]
    row0 = ref.dynamic_rnn(twin, x[:1, [0, 1, 2, 3, 8, 9, 10, 11]])
    row1 = ref.dynamic_rnn(twin, x[1:, [0, 1, 4, 5, 6]])
    assert_close((np.concatenate([out[0][:1], out[2][:1]], axis=1), stream.state[:1]), row0, np.float64)
    assert_close((np.concatenate([out[0][1:, :2], out[1][1:, :3]], axis=1), stream.state[1:]), row1, np.float64)
    assert not out[1][0].any() and not out[0][1, 2:].any() and not out[2][1].any()  # zeros where nothing ran


@pytest.mark.parametrize("spec", ["basic_lstm", "lstm_proj_clip_all", "multi_flat", "gru_reset_after"])
def test_the_reference_stream_is_the_reference_loop(spec, rng):
    """fastrnn.reference.Stream runs the oracle's NumPy loop: bit for bit its dynamic_rnn."""
    _, twin = make_pair(CONFIGS[spec], DEPTH, np.float64, rng)
    x = sequences(rng, 3, 6, np.float64)
    lens = np.array([6, 2, 0])
    stream = ref.Stream(twin, batch_size=3, dtype=np.float64)
    out = np.concatenate([stream.run(x[:, :3], per_chunk(lens, 0, 3)), stream.run(x[:, 3:], per_chunk(lens, 3, 3))],
                         axis=1)
    assert_identical((out, stream.state), ref.dynamic_rnn(twin, x, lens))


def test_the_reference_stream_never_reaches_the_kernels(kernel_calls, rng):
    cell, _ = make_pair(CONFIGS["multi"], DEPTH, np.float32, rng)
    stream = ref.Stream(cell, batch_size=2)  # a public (compiled) cell, run by the oracle
    stream.step(np.ones((2, DEPTH)))
    stream.run(np.ones((2, 3, DEPTH)))
    assert kernel_calls == []
    fastrnn.Stream(cell, batch_size=2).step(np.ones((2, DEPTH)))
    assert len(kernel_calls) == 3  # one kernel call per layer and step


# ---- any other cell -----------------------------------------------------------------------------

class Leaky(fastrnn.RNNCell):
    """A user's cell (NumPy): h' = 0.5 h + tanh(x W)."""

    def __init__(self, depth, units, seed=0):
        self.w = np.random.default_rng(seed).standard_normal((depth, units))
        self.calls = 0

    state_size = property(lambda self: self.w.shape[1])
    output_size = property(lambda self: self.w.shape[1])

    def __call__(self, x, state, scope=None):
        self.calls += 1
        h = 0.5 * state + np.tanh(x @ self.w)
        return h, h


@pytest.mark.parametrize("m", IMPLS)
@pytest.mark.parametrize("kind", ["user_cell", "python_activation", "stack_with_user_cell"])
def test_any_other_cell_runs_through_its_own_call(m, kind, rng):
    if kind == "user_cell":
        cell = Leaky(DEPTH, 4)
    elif kind == "python_activation":
        cell = m.GRUCell(4, activation=np.sin, seed=0)
    else:
        cell = m.MultiRNNCell([m.BasicLSTMCell(4, seed=0), Leaky(4, 3)])
    x = sequences(rng, 3, 8, np.float64)
    lens = np.array([8, 5, 1])
    stream = m.Stream(cell, batch_size=3, dtype=np.float64)
    out = np.concatenate([stream.run(x[:, :5], per_chunk(lens, 0, 5)), stream.run(x[:, 5:], per_chunk(lens, 5, 3))],
                         axis=1)
    assert_close((out, stream.state), ref.dynamic_rnn(cell, x, lens), np.float64, kind)
    with pytest.raises(ValueError, match=r"^x_t: (expected depth 3 \(the depth of this stream's inputs\), got 4|"
                                         r"depth 4 does not match the input depth 3)"):
        stream.step(np.zeros((3, 4)))


# ---- state, reset, initial_state ---------------------------------------------------------------

@pytest.mark.parametrize("m", IMPLS)
@pytest.mark.parametrize("spec", ["basic_lstm", "lstm_proj_flat", "multi", "gru_tanh"])
def test_state_is_a_copy_in_the_cells_structure(m, spec, rng):
    cell, twin = make_pair(CONFIGS[spec], DEPTH, np.float32, rng)
    cell = cell if m is fastrnn else twin
    zeros = cell.zero_state(2, np.float32)
    stream = m.Stream(cell, batch_size=2)
    assert_identical(stream.state, zeros)
    assert_same_structure(stream.state, zeros)
    x = sequences(rng, 2, 3, np.float32)
    stream.run(x)
    seen = stream.state
    for leaf in flatten(seen):
        leaf[...] = 7  # the caller's copy: the stream's state is not touched
    assert_close(stream.state, ref.dynamic_rnn(twin, x)[1], np.float32)
    start = random_state(cell, 2, np.float32, rng)
    kept = [a.copy() for a in flatten(start)]
    stream.reset(start)
    assert_identical(stream.state, start)
    stream.run(x)
    assert_identical(flatten(start), kept, "reset(state) must copy the caller's arrays")
    assert_close(stream.state, ref.dynamic_rnn(twin, x, initial_state=start)[1], np.float32)
    stream.reset()
    assert_identical(stream.state, zeros)


@pytest.mark.parametrize("m", IMPLS)
def test_initial_state_and_reset_before_the_first_input(m, rng):
    """An unbuilt cell: the state is kept until the first input builds the cell and starts the engine."""
    cell = m.LSTMCell(4, num_proj=2, state_is_tuple=False, seed=0)
    start = np.arange(12, dtype=np.int64).reshape(2, 6) / 10  # float64, fed to the float32 stream
    stream = m.Stream(cell, batch_size=2, initial_state=start)
    assert not cell.built and stream.state.dtype == np.float32
    np.testing.assert_array_equal(stream.state, start.astype(np.float32))
    stream.reset(np.ones((2, 6), np.int32))  # integer values are fed too
    x = np.ones((2, 5, 3), np.int64)
    out = stream.run(x)
    assert cell.built and cell.input_depth == 3 and cell.dtype == np.float32
    assert_close((out, stream.state), ref.dynamic_rnn(cell, x, initial_state=np.ones((2, 6)), dtype=np.float32),
                 np.float32)


def test_new_weights_are_used_from_the_next_call(rng):
    cell, twin = make_pair(CONFIGS["lstm_peep"], DEPTH, np.float64, rng)
    stream = fastrnn.Stream(cell, dtype=np.float64)
    x = sequences(rng, 1, 4, np.float64)
    stream.run(x[:, :2])
    mid = stream.state
    new = {k: -v for k, v in cell.weights.items()}
    cell.set_weights(new)
    twin.set_weights(new)
    out = stream.run(x[:, 2:])
    assert_close((out, stream.state), ref.dynamic_rnn(twin, x[:, 2:], initial_state=mid), np.float64)


def test_steps_follow_new_weights_options_and_threads(rng):
    """Each step runs under what holds at that step: new weights, other kernel options, another
    thread count (the stepper is made again, the state carried over) -- the bits of one
    dynamic_rnn call per step from the state before it, under the same."""
    from fastrnn import _options
    cell, _ = make_pair(CONFIGS["multi"], DEPTH, np.float32, rng)
    stream = fastrnn.Stream(cell, batch_size=2)
    x = sequences(rng, 2, 6, np.float32)

    def step_checked(t):
        before = stream.state
        got = stream.step(x[:, t])
        want, after = fastrnn.dynamic_rnn(cell, x[:, t:t + 1], initial_state=before)
        assert_identical((got, stream.state), (want[:, 0], after), f"step {t}")

    def stepper():
        return stream._engine._stepper

    step_checked(0)
    first = stepper()
    for layer in cell.cells:
        randomize(layer, rng)
    step_checked(1)
    assert stepper() is not first, "new weights: a new stepper"
    before = stepper()
    with _options.override(isa="generic"):
        step_checked(2)
        assert stepper() is not before, "other options: a new stepper"
    step_checked(3)
    before = stepper()
    fastrnn.set_num_threads(fastrnn.get_num_threads() + 1)
    try:
        step_checked(4)
        assert stepper() is not before, "another thread count: a new stepper"
    finally:
        fastrnn.set_num_threads(0)
    step_checked(5)


@pytest.mark.parametrize("m", IMPLS)
def test_empty_batch_and_empty_chunks(m):
    stream = m.Stream(m.GRUCell(3, seed=0), batch_size=0)
    assert stream.step(np.zeros((0, 2))).shape == (0, 3)
    assert stream.run(np.zeros((0, 4, 2))).shape == (0, 4, 3)
    stream = m.Stream(m.BasicLSTMCell(3, seed=0), batch_size=2)
    assert stream.run(np.zeros((2, 0, 2))).shape == (2, 0, 3)
    assert not flatten(stream.state)[0].any()


# ---- the feed rule, validation once per shape and dtype, the same errors ------------------------

@pytest.mark.parametrize("m", IMPLS)
def test_inputs_are_fed_to_the_streams_dtype(m, rng):
    cell, twin = make_pair(CONFIGS["basic_lstm"], DEPTH, np.float32, rng)
    cell = cell if m is fastrnn else twin
    x = rng.integers(-3, 4, (2, 4, DEPTH))
    a, b = m.Stream(cell, batch_size=2), m.Stream(cell, batch_size=2)
    steps = np.stack([a.step(x[:, t]) for t in range(4)], axis=1)  # int64
    assert steps.dtype == np.float32
    assert_identical(steps, b.run(x.astype(np.float64)))  # float64 fed to float32 the same way
    assert_identical(a.state, b.state)
    assert a.step(x[:, 0].tolist()).dtype == np.float32  # lists too


def test_step_checks_its_input_in_full_once_per_shape_and_dtype(monkeypatch, rng):
    from fastrnn import _validate
    calls = []
    real = _validate.step_inputs
    monkeypatch.setattr(_validate, "step_inputs", lambda *a, **k: calls.append(a[0]) or real(*a, **k))
    stream = fastrnn.Stream(fastrnn.GRUCell(4, seed=0), batch_size=2)
    x = sequences(rng, 2, 6, np.float32)
    for t in range(6):
        stream.step(x[:, t])  # strided views of one shape and dtype: checked once
    assert len(calls) == 1
    stream.step(x[:, 0].astype(np.float64))  # a new dtype: checked in full, then remembered
    stream.step(x[:, 1].astype(np.float64))
    stream.step([[1, 2, 3], [4, 5, 6]])  # not an ndarray: always in full
    assert len(calls) == 3


@pytest.mark.parametrize("m", IMPLS)
def test_bad_input_gets_the_same_clear_errors_and_changes_nothing(m, rng, kernel_calls):
    cell = m.BasicLSTMCell(4, seed=0)
    stream = m.Stream(cell, batch_size=2)
    good = sequences(rng, 2, 3, np.float32)
    stream.run(good)  # built, engine started, shapes remembered
    stream.step(good[:, 0])
    before, calls = stream.state, len(kernel_calls)
    bad_steps = [
        (np.zeros((2, 3), complex), TypeError, r"^x_t: expected real values \(bool, integer or float\) to convert to "
                                               r"float32, got complex \(complex128\)$"),
        (np.zeros((3, 3), np.float32), ValueError, r"^x_t: expected 2 rows \(the stream's batch_size\) in \[batch, "
                                                   r"depth\], got shape \(3, 3\)$"),
        (np.zeros((2, 5), np.float32), ValueError, r"^x_t: depth 5 does not match the input depth 3 that "
                                                   r"BasicLSTMCell 'basic_lstm_cell' was built for$"),
        (np.zeros((2, 3, 1), np.float32), ValueError, r"^x_t: expected a 2-D array \[batch, depth\], got shape"),
        (None, TypeError, r"^x_t: expected an array of numbers, got None$"),
        (np.full((2, 3), "a"), TypeError, r"^x_t: expected real values .* got string"),
    ]
    for value, exc, match in bad_steps:
        with pytest.raises(exc, match=match):
            stream.step(value)
    bad_chunks = [
        (good[:1], None, ValueError, r"^x_chunk: expected 2 rows \(the stream's batch_size\) in \[batch, time, depth\], "
                                     r"got shape \(1, 3, 3\)$"),
        (good[:, 0], None, ValueError, r"^x_chunk: expected a 3-D array \[batch, time, depth\], got shape \(2, 3\)$"),
        (good[..., :2], None, ValueError, r"^x_chunk: depth 2 does not match the input depth 3"),
        (good, [3, 4], ValueError, r"^sequence_length: lengths must be <= the time axis \(3\), got 4 at row 1$"),
        (good, [3], ValueError, r"^sequence_length: expected 2 lengths \(one per batch row\), got 1$"),
        (good, [1.5, 2], ValueError, r"^sequence_length: expected integers"),
        (good.astype(complex), None, TypeError, r"^x_chunk: expected real values"),
    ]
    for value, lens, exc, match in bad_chunks:
        with pytest.raises(exc, match=match):
            stream.run(value, sequence_length=lens)
    bad_outs = [
        (np.zeros((2, 4)), TypeError, r"^out: expected a float32 array of shape \(2, 4\), got float64 array$"),
        ([[0.0] * 4] * 2, TypeError, r"^out: expected a float32 array of shape \(2, 4\), got list$"),
        (np.zeros((2, 5), np.float32), ValueError, r"^out: expected shape \(2, 4\) \(batch_size, output_size\), "
                                                   r"got \(2, 5\)$"),
        (np.zeros((4, 2), np.float32).T, ValueError, r"^out: expected a writable, C-contiguous, aligned array"),
        (_readonly((2, 4)), ValueError, r"^out: expected a writable"),
    ]
    for value, exc, match in bad_outs:
        with pytest.raises(exc, match=match):
            stream.step(good[:, 0], out=value)
    with pytest.raises(TypeError, match=r"^state: expected a state with the structure|^state\[0\]"):
        stream.reset((np.zeros((2, 4), complex), np.zeros((2, 4))))
    with pytest.raises(ValueError, match=r"^state: expected a state with the structure of state_size="):
        stream.reset(np.zeros((2, 8)))
    assert len(kernel_calls) == calls, "a kernel ran before validation refused the input"
    assert_identical(stream.state, before, "a refused call changed the state")
    stream.step(good[:, 0])  # and the stream still works
    assert_close(stream.state, ref.dynamic_rnn(cell, np.concatenate([good, good[:, [0, 0]]], axis=1))[1], np.float32)


def _readonly(shape):
    a = np.zeros(shape, np.float32)
    a.setflags(write=False)
    return a


@pytest.mark.parametrize("m", IMPLS)
def test_out_receives_the_output(m, rng):
    cell, twin = make_pair(CONFIGS["lstm_proj"], DEPTH, np.float64, rng)
    cell = cell if m is fastrnn else twin
    x = sequences(rng, 2, 5, np.float64)
    a, b = m.Stream(cell, batch_size=2, dtype=np.float64), m.Stream(cell, batch_size=2, dtype=np.float64)
    out = np.full((2, cell.output_size), np.nan)
    for t in range(5):
        got = a.step(x[:, t], out=out)
        assert got is out
        np.testing.assert_array_equal(out, b.step(x[:, t]))
    buf = np.zeros((2, 4))  # out may not be the input it is computed from
    with pytest.raises(ValueError, match=r"^out: shares memory with x_t"):
        m.Stream(m.GRUCell(4, seed=0), batch_size=2, dtype=np.float64).step(buf, out=buf)


def test_exact_steps_take_the_engines_fast_path_and_near_misses_the_checked_one(monkeypatch, rng):
    """A step whose input (and out) are exactly what the kernels read runs at once
    (``Stepper.step_exact``); every near miss runs the checked path with its conversions: the
    same bits either way, and the same state after."""
    from fastrnn import _kernels
    fast = []

    class SpyStepper(_kernels.Stepper):
        def step_exact(self, x, out=None):
            result = super().step_exact(x, out)
            fast.append(result is not None)
            return result

    monkeypatch.setattr(_kernels, "Stepper", SpyStepper)
    cell, _ = make_pair(CONFIGS["multi"], DEPTH, np.float32, rng)
    x = sequences(rng, 3, 1, np.float32)[:, 0].copy()
    out = np.empty((3, cell.output_size), np.float32)
    padded = np.empty((3, cell.output_size + 1), np.float32)
    readonly_x = x.copy()
    readonly_x.setflags(write=False)
    cases = [
        ("exact", x, None, True),
        ("exact with out", x, out, True),
        ("read-only input (never written)", readonly_x, None, True),
        ("Fortran-ordered input", np.asfortranarray(np.repeat(x, 2, axis=0)[::2]), None, False),
        ("strided input", np.repeat(x, 2, axis=1)[:, ::2], None, False),
        ("float64 input", x.astype(np.float64), None, False),
        ("int input", np.rint(x * 3).astype(np.int64), None, False),
        ("list input", x.tolist(), None, False),
        ("strided out", x, padded[:, :-1], False),
    ]
    for what, xi, o, exact in cases:
        a, b = fastrnn.Stream(cell, batch_size=3), fastrnn.Stream(cell, batch_size=3)
        a.step(x)
        b.step(x)
        fast.clear()
        if o is not None and not exact:  # an out the kernels cannot write to: refused, as before
            with pytest.raises(ValueError, match="^out: expected a writable, C-contiguous"):
                a.step(xi, out=o)
            assert fast == [False], what
            continue
        got = a.step(xi, out=o)
        assert fast == [exact], what
        b._engine.step_exact = lambda x, out: None  # the checked path
        want = b.step(np.asarray(xi, np.float32))
        assert_identical(got, want, what)
        assert_identical(a.state, b.state, what)
        if o is not None:
            assert got is o


@pytest.mark.parametrize("m", IMPLS)
def test_constructor_arguments(m, rng):
    lstm = m.BasicLSTMCell(3)
    for value, exc, match in [
        ((m.GRUCell, {}), TypeError, r"^cell: expected an RNN cell object, got the class GRUCell itself"),
        ((None, {}), TypeError, r"^cell: expected an RNN cell"),
        ((lstm, {"batch_size": -1}), ValueError, r"^batch_size: expected a non-negative integer, got -1$"),
        ((lstm, {"batch_size": "2"}), TypeError, r"^batch_size: expected a non-negative integer, got '2' \(str\)$"),
        ((lstm, {"dtype": np.int32}), TypeError, r"^dtype: expected float32 or float64, got int32$"),
        ((lstm, {"precision": "bf16"}), ValueError, r"^precision: expected None or 'bfloat16', got 'bf16'$"),
        ((lstm, {"precision": "bfloat16", "dtype": np.float64}), ValueError, r"^precision: 'bfloat16' computes from "
                                                                             r"float32 arrays"),
        ((Leaky(3, 2), {"precision": "bfloat16"}), ValueError, r"^precision='bfloat16': cell \(Leaky\) runs its own step"),
        ((lstm, {"initial_state": np.zeros((1, 6))}), ValueError, r"^initial_state: expected a state with the structure"),
        ((lstm, {"batch_size": 2, "initial_state": (np.zeros((1, 3)),) * 2}), ValueError,
         r"^initial_state\[0\] .*: expected shape \(2, 3\), got \(1, 3\)$"),
        ((lstm, {"initial_state": (np.zeros((1, 3), complex),) * 2}), TypeError,
         r"^initial_state\[0\] .*: expected real values \(bool, integer or float\) to convert to float32, got complex"),
    ]:
        cell, kwargs = value
        with pytest.raises(exc, match=match):
            m.Stream(cell, **kwargs)
    built = m.GRUCell(3, seed=0)
    built.build(2, np.float64)
    with pytest.raises(TypeError, match=r"^dtype: dtype float32 does not match the float64 weights of GRUCell "
                                        r"'gru_cell'; pass dtype=float64 or use a new cell$"):
        m.Stream(built)
    stream = m.Stream(built, dtype=np.float64)
    assert repr(stream) == ("Stream(GRUCell(num_units=3, name='gru_cell'), batch_size=1, dtype=float64)")
    assert (stream.cell, stream.batch_size, stream.dtype, stream.output_size, stream.precision) == \
        (built, 1, np.float64, 3, None)


# ---- failures leave the state as it was ----------------------------------------------------------

class Failing(Leaky):
    fail_at = 3  # the call that raises

    def __call__(self, x, state, scope=None):
        if self.calls == self.fail_at:
            self.calls += 1
            raise ArithmeticError("the cell failed")
        return super().__call__(x, state)


@pytest.mark.parametrize("m", IMPLS)
def test_a_failed_step_or_chunk_leaves_the_state_as_it_was(m, rng):
    cell = Failing(DEPTH, 3)
    stream = m.Stream(cell, batch_size=2, dtype=np.float64)
    x = sequences(rng, 2, 6, np.float64)
    stream.run(x[:, :2])
    before = stream.state
    with pytest.raises(ArithmeticError):
        stream.run(x[:, 2:4])  # its second step fails: the first one's state is not kept either
    assert_identical(stream.state, before)
    stream.run(x[:, 2:])
    cell.fail_at = None
    assert_close(stream.state, ref.dynamic_rnn(cell, x)[1], np.float64)


def test_a_failed_kernel_call_leaves_the_state_as_it_was(monkeypatch, rng):
    """The second layer's kernel call fails: the first layer's new state must not be kept."""
    cell, twin = make_pair(CONFIGS["multi"], DEPTH, np.float32, rng)
    stream = fastrnn.Stream(cell, batch_size=2)
    x = sequences(rng, 2, 4, np.float32)
    stream.run(x[:, :2])
    before = stream.state
    real, count = _compiled.require_kernels().layer_forward, []

    def second_fails(layer, *args):
        count.append(1)
        if len(count) == 2:
            raise MemoryError("no workspace")
        return real(layer, *args)

    monkeypatch.setattr(_compiled.require_kernels(), "layer_forward", second_fails)
    with pytest.raises(MemoryError):
        stream.run(x[:, 2:])
    assert_identical(stream.state, before)
    monkeypatch.undo()
    stepper = stream._engine._current()  # a step is one pass of the kernels over the layers
    stepper._fail_at_layer(1)  # the second layer's call fails after the first one ran
    with pytest.raises(ValueError, match="rejected its arguments"):
        stream.step(x[:, 2])
    assert_identical(stream.state, before)
    stepper._fail_at_layer(-1)
    stream.run(x[:, 2:])
    assert_close(stream.state, ref.dynamic_rnn(twin, x)[1], np.float32)


# ---- threads ---------------------------------------------------------------------------------------

def rotation_cell(m, units=6, seed=0):
    """A linear RNN whose recurrence is a rotation: h' = h R + x W never settles, so every step counts
    (a lost or doubled step changes the final state)."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((units, units)))
    cell = m.BasicRNNCell(units, activation="linear")
    cell.set_weights({"kernel": np.concatenate([rng.standard_normal((DEPTH, units)) * 0.1, q]),
                      "bias": np.zeros(units)})
    return cell


@pytest.mark.parametrize("m", IMPLS)
def test_one_stream_from_two_threads_loses_no_step(m):
    cell = rotation_cell(m)
    x = np.full((2, DEPTH), 0.5)
    steps = 300 if m is fastrnn else 60
    serial = m.Stream(cell, batch_size=2, dtype=np.float64)
    states = [serial.state]
    for _ in range(2 * steps):
        serial.step(x)
        states.append(serial.state)
    shared = m.Stream(cell, batch_size=2, dtype=np.float64)
    start, reads, stop = threading.Barrier(3), [], threading.Event()

    def stepper():
        start.wait()
        for i in range(steps):
            shared.step(x) if i % 3 else shared.run(x[:, None])

    def reader():
        start.wait()
        while not stop.is_set():
            reads.append(shared.state)

    threads = [threading.Thread(target=stepper), threading.Thread(target=stepper), threading.Thread(target=reader)]
    for t in threads:
        t.start()
    for t in threads[:2]:
        t.join()
    stop.set()
    threads[2].join()
    np.testing.assert_allclose(shared.state, states[-1], rtol=1e-12, atol=1e-12)
    history = np.stack(states)
    for seen in reads:  # every state read is one the stream went through, never a half-written one
        assert np.abs(history - seen).max(axis=(1, 2)).min() < 1e-12


@pytest.mark.parametrize("handoff_ns", [None, 0, 10**7])
def test_streams_of_their_own_in_threads(rng, handoff_ns):
    """Threads stepping streams of their own (and one-step calls) give one call's bits, whether
    they wait for each other's hold on the GIL (the default: a few microseconds; here also up to
    10 ms) or never do."""
    from fastrnn import _kernels
    cell, twin = make_pair(CONFIGS["multi"], DEPTH, np.float32, rng)
    xs = [sequences(rng, 2, 20, np.float32) for _ in range(4)]
    results = [None] * 4
    calls = [None] * 4

    def work(i):
        stream = fastrnn.Stream(cell, batch_size=2)
        out = np.empty((2, cell.output_size), np.float32)
        results[i] = (np.stack([stream.step(xs[i][:, t], out=out).copy() for t in range(20)], axis=1),
                      stream.state)
        calls[i] = fastrnn.dynamic_rnn(cell, xs[i][:, :1].copy(), initial_state=stream.state)

    previous = _kernels.set_handoff_ns(handoff_ns) if handoff_ns is not None else None
    try:
        threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        if previous is not None:
            _kernels.set_handoff_ns(previous)
    for i in range(4):
        assert_identical(results[i], fastrnn.dynamic_rnn(cell, xs[i]), f"thread {i}")
        assert_close(results[i], ref.dynamic_rnn(twin, xs[i]), np.float32, f"thread {i}")
        assert_identical(calls[i], fastrnn.dynamic_rnn(cell, xs[i][:, :1].copy(), initial_state=results[i][1]))
    with pytest.raises(ValueError, match="ns: expected a non-negative"):
        _kernels.set_handoff_ns(-1)


# ---- bfloat16: these wait on the compiled bfloat16 kernels -------------------------------------------

def assert_bf16_sequence_close(actual, expected, what=""):
    """A bfloat16 sequence against the reference's emulation, within 1e-2 (of the largest magnitude,
    at least 1): both round the same operands but sum in other orders, so a value on a bfloat16
    rounding boundary may round the other way and carry on along its row (wrong weights, packing or
    gates give errors of order 1).  The lead's bfloat16 tests hold sequences to the same bound."""
    a_flat, e_flat = flatten(actual), flatten(expected)
    assert len(a_flat) == len(e_flat), f"{what}: structure differs"
    for i, (a, e) in enumerate(zip(a_flat, e_flat)):
        assert a.dtype == np.float32 and a.shape == e.shape, f"{what} leaf {i}"
        scale = max(1.0, float(np.abs(e).max())) if e.size else 1.0
        np.testing.assert_allclose(a, e, rtol=1e-2, atol=1e-2 * scale, err_msg=f"{what} leaf {i}")


@pytest.mark.parametrize("spec", ["basic_lstm", "lstm_proj_clip_all", "gru_reset_after", "multi"])
def test_bfloat16_steps_equal_the_reference(spec, rng):
    cell, twin = make_pair(CONFIGS[spec], DEPTH, np.float32, rng)
    x = sequences(rng, 3, 6, np.float32)
    stream = fastrnn.Stream(cell, batch_size=3, precision="bfloat16")
    outputs = np.stack([stream.step(x[:, t]) for t in range(6)], axis=1)
    assert_bf16_sequence_close((outputs, stream.state), ref.dynamic_rnn(twin, x, precision="bfloat16"), spec)


def test_bfloat16_chunks_equal_the_reference(rng):
    cell, twin = make_pair(CONFIGS["lstm_peep"], DEPTH, np.float32, rng)
    x = sequences(rng, 4, 10, np.float32)
    lens = np.array([10, 3, 0, 7])
    stream = fastrnn.Stream(cell, batch_size=4, precision="bfloat16")
    out = np.concatenate([stream.run(x[:, :5], per_chunk(lens, 0, 5)), stream.run(x[:, 5:], per_chunk(lens, 5, 5))],
                         axis=1)
    want = ref.Stream(twin, batch_size=4, precision="bfloat16")
    want_out = np.concatenate([want.run(x[:, :5], per_chunk(lens, 0, 5)), want.run(x[:, 5:], per_chunk(lens, 5, 5))],
                              axis=1)
    assert_bf16_sequence_close((out, stream.state), (want_out, want.state), "chunks")
    assert_bf16_sequence_close((out, stream.state), ref.dynamic_rnn(twin, x, lens, precision="bfloat16"), "one call")


def test_the_reference_stream_in_bfloat16_is_the_reference_loop(rng):
    _, twin = make_pair(CONFIGS["multi"], DEPTH, np.float32, rng)
    x = sequences(rng, 2, 5, np.float32)
    stream = ref.Stream(twin, batch_size=2, precision="bfloat16")
    out = np.stack([stream.step(x[:, t]) for t in range(5)], axis=1)
    assert_identical((out, stream.state), ref.dynamic_rnn(twin, x, precision="bfloat16"))
