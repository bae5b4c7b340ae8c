"""The shortcut of calls whose arguments need no checking or conversion (``cell(x, state)`` and
``dynamic_rnn(cell, x)`` with exact arrays: ``fastrnn._compiled.exact_step/exact_sequence``) gives
the bits of the validated path, is taken exactly when it may be, and every near miss -- another
layout, dtype, structure or shape -- goes the validated way, with its conversions and its errors.
"""
from __future__ import annotations

import threading

import numpy as np
import pytest

import fastrnn
from fastrnn import _compiled, _kernels, _options
from fastrnn._structure import LSTMStateTuple, flatten

from helpers import CONFIGS, DTYPES, assert_identical, make_pair, misaligned, random_state, randomize

EXACT = ["rnn_relu", "gru_tanh", "gru_reset_after", "basic_lstm", "lstm_proj_clip_all", "multi"]
FLAT = ["basic_lstm_fb_flat", "lstm_proj_flat", "multi_flat"]  # concatenated states: validated path


@pytest.fixture
def taken(monkeypatch):
    """How many calls took the shortcut (a one-step plan, or the sequences' exact run); the
    test's own cells make their plans while it runs."""
    count = []
    real_run = _compiled._run_exact

    def spy(*args, **kwargs):
        count.append(1)
        return real_run(*args, **kwargs)

    class CountedPlan(_kernels.CallPlan):
        def step(self, *args):
            result = super().step(*args)
            count.extend([1] if result is not None else [])
            return result

        def sequence(self, *args):
            result = super().sequence(*args)
            count.extend([1] if result is not None else [])
            return result

    monkeypatch.setattr(_compiled, "_run_exact", spy)
    monkeypatch.setattr(_kernels, "CallPlan", CountedPlan)
    return count


def validated(monkeypatch, fn):
    """``fn()`` with the shortcut turned off."""
    with monkeypatch.context() as m:
        m.setattr(fastrnn._cells._CompiledStep, "_exact_call", lambda self, x, state: None)
        m.setattr(fastrnn._rnn._drivers, "_exact", None)
        return fn()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("spec", EXACT + FLAT)
def test_a_step_gives_the_validated_bits(spec, dtype, rng, taken, monkeypatch):
    cell, _ = make_pair(CONFIGS[spec], 7, dtype, rng)
    x = rng.standard_normal((5, 7)).astype(dtype)
    state = random_state(cell, 5, dtype, rng)
    got = cell(x, state)
    assert len(taken) == (spec in EXACT), "the shortcut is taken exactly for tuple states of exact arrays"
    assert_identical(got, validated(monkeypatch, lambda: cell(x, state)), spec)


@pytest.mark.parametrize("time", [9, 1])
@pytest.mark.parametrize("time_major", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("spec", EXACT + FLAT)
def test_a_sequence_gives_the_validated_bits(spec, dtype, time_major, time, rng, taken, monkeypatch):
    cell, _ = make_pair(CONFIGS[spec], 7, dtype, rng)
    x = rng.standard_normal((time, 5, 7) if time_major else (5, time, 7)).astype(dtype)
    got = fastrnn.dynamic_rnn(cell, x, time_major=time_major)
    assert len(taken) == 1  # the zero state is exact whatever its structure
    assert_identical(got, validated(monkeypatch, lambda: fastrnn.dynamic_rnn(cell, x, time_major=time_major)), spec)


@pytest.mark.parametrize("time_major", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("spec", EXACT + FLAT)
def test_a_step_from_a_state_gives_the_validated_bits(spec, dtype, time_major, rng, taken, monkeypatch):
    """``dynamic_rnn(cell, x, initial_state=state)`` of one step (token by token, the state fed
    back) takes the step's plan when the state is exact; longer sequences from a state validate."""
    cell, _ = make_pair(CONFIGS[spec], 7, dtype, rng)
    state = random_state(cell, 5, dtype, rng)
    for time in (1, 3):
        x = rng.standard_normal((time, 5, 7) if time_major else (5, time, 7)).astype(dtype)
        del taken[:]
        got = fastrnn.dynamic_rnn(cell, x, initial_state=state, time_major=time_major)
        assert len(taken) == (time == 1 and spec in EXACT), time
        want = validated(monkeypatch, lambda: fastrnn.dynamic_rnn(cell, x, initial_state=state, time_major=time_major))
        assert_identical(got, want, f"{spec}, time {time}")
    x = rng.standard_normal((5, 1, 7)).astype(dtype)
    if spec == "basic_lstm" and dtype == np.float32:  # near misses of the state: the validated path
        for what, _, st in near_misses(x[:, 0], state):
            if st is state:  # an input near miss (the sequence's are in the next test)
                continue
            del taken[:]
            got = fastrnn.dynamic_rnn(cell, x, initial_state=st)
            assert not taken, what
            assert_identical(got, validated(monkeypatch, lambda: fastrnn.dynamic_rnn(cell, x, initial_state=st)),
                             what)


def near_misses(x, state):
    """Arguments that are valid but not exact, each with what makes it so."""
    c, h = state
    yield "Fortran-ordered inputs", np.asfortranarray(x), state
    yield "strided inputs", np.repeat(x, 2, axis=1)[:, ::2], state
    yield "misaligned inputs", misaligned(x), state
    yield "float64 inputs to a float32 cell", x.astype(np.float64), state
    yield "integer inputs", np.rint(x * 3).astype(np.int64), state
    yield "a list for the state", x, [c, h]
    yield "a plain tuple for the state", x, (c, h)
    yield "a float64 state", x, LSTMStateTuple(c.astype(np.float64), h.astype(np.float64))
    yield "a strided state", x, LSTMStateTuple(np.repeat(c, 2, axis=1)[:, ::2], h)
    yield "a nested list input", x.tolist(), state


def test_near_misses_take_the_validated_path(rng, taken, monkeypatch):
    cell, _ = make_pair(CONFIGS["lstm_proj_clip_all"], 6, np.float32, rng)
    x = rng.standard_normal((4, 6)).astype(np.float32)
    state = random_state(cell, 4, np.float32, rng)
    for what, xi, st in near_misses(x, state):
        got = cell(xi, st)
        assert not taken, what
        assert_identical(got, validated(monkeypatch, lambda: cell(xi, st)), what)
    seq = rng.standard_normal((4, 3, 6)).astype(np.float32)
    for what, xi in [("Fortran-ordered", np.asfortranarray(seq)), ("misaligned", misaligned(seq)),
                     ("a view", seq[:, ::-1])]:
        got = fastrnn.dynamic_rnn(cell, xi)
        assert not taken, what
        assert_identical(got, validated(monkeypatch, lambda: fastrnn.dynamic_rnn(cell, xi)), what)


def test_bad_arguments_get_the_validated_errors(rng, taken):
    cell, _ = make_pair(CONFIGS["basic_lstm"], 6, np.float32, rng)
    x = rng.standard_normal((4, 6)).astype(np.float32)
    state = random_state(cell, 4, np.float32, rng)
    with pytest.raises(ValueError, match="inputs"):
        cell(x[:, :5].copy(), state)  # another depth
    with pytest.raises(ValueError, match="state"):
        cell(x, LSTMStateTuple(state.c[:3].copy(), state.h))  # rows differ
    with pytest.raises(ValueError, match="state"):
        cell(x, LSTMStateTuple(state.c, state.h[:, :2].copy()))  # width differs
    with pytest.raises(ValueError, match="state: expected a state with the structure"):
        cell(x, None)
    with pytest.raises(ValueError, match="inputs"):
        fastrnn.dynamic_rnn(cell, rng.standard_normal((4, 3, 5)).astype(np.float32))
    with pytest.raises(TypeError, match="dtype float64 does not match"):
        fastrnn.dynamic_rnn(cell, rng.standard_normal((4, 3, 6)))  # float64 to float32 weights, no dtype=
    with pytest.raises(TypeError, match="time_major"):
        fastrnn.dynamic_rnn(cell, rng.standard_normal((4, 3, 6)).astype(np.float32), time_major="yes")
    assert not taken


def test_the_callers_arrays_are_left_alone(rng):
    cell, _ = make_pair(CONFIGS["multi"], 6, np.float32, rng)
    x = rng.standard_normal((3, 6)).astype(np.float32)
    state = random_state(cell, 3, np.float32, rng)
    copies = [a.copy() for a in flatten(state)] + [x.copy()]
    out, new = cell(x, state)
    for a, b in zip(flatten(state) + [x], copies):
        assert np.array_equal(a, b)
    assert not any(np.shares_memory(a, b) for a in flatten(new) + [out] for b in flatten(state) + [x])


def test_a_step_plan_follows_weights_options_threads_and_batch(rng, taken, monkeypatch):
    """The one-step plan kept on the cell is made again whenever what it was made from changed:
    each call gives the validated path's bits under what holds at that call."""
    cell, _ = make_pair(CONFIGS["multi"], 6, np.float32, rng)

    def check(batch, what):
        x = rng.standard_normal((batch, 6)).astype(np.float32)
        state = random_state(cell, batch, np.float32, rng)
        before = len(taken)
        got = cell(x, state)
        assert len(taken) == before + 1, what
        assert_identical(got, validated(monkeypatch, lambda: cell(x, state)), what)
        return _compiled._plan(cell, batch)

    first = check(3, "first call")
    assert check(3, "same again") is first
    for batch in (1, 2, 5, 3):  # a few batch sizes side by side
        check(batch, f"batch {batch}")
    for layer in cell.cells:  # new weights
        randomize(layer, rng)
    before = check(3, "new weights")
    assert before is not first
    with _options.override(xproj="fused"):  # (batch 3 is hoisted by default)
        assert check(3, "other options") is not before
    before = check(3, "the options back")
    threads = fastrnn.get_num_threads()
    fastrnn.set_num_threads(threads + 1)
    try:
        assert check(3, "another thread count") is not before
    finally:
        fastrnn.set_num_threads(0)


def test_one_step_calls_from_threads_share_a_plan(rng):
    """One cell called at once from several threads (its plan is shared and immutable)."""
    cell, _ = make_pair(CONFIGS["lstm_proj_clip_all"], 6, np.float32, rng)
    jobs = [(rng.standard_normal((2, 6)).astype(np.float32), random_state(cell, 2, np.float32, rng))
            for _ in range(8)]
    expected = [cell(x, state) for x, state in jobs]
    barrier = threading.Barrier(4)
    failures = []

    def worker(k):
        barrier.wait()
        for _ in range(200):
            for i in range(k, len(jobs), 4):
                got = cell(*jobs[i])
                if not all(np.array_equal(a, b) for a, b in zip(flatten(got), flatten(expected[i]))):
                    failures.append(i)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures


def test_objects_that_are_not_built_in_cells_never_reach_a_plan(rng):
    """The shortcuts look for a plan on built-in cells only: anything else -- not a cell at all,
    a duck-typed cell with __slots__, a user's cell with a ``_plans`` attribute of its own --
    gets the validated path (its errors, or its own step)."""
    x1 = np.zeros((2, 1, 3), np.float32)
    state = np.zeros((2, 4), np.float32)
    with pytest.raises(TypeError, match="^cell"):
        fastrnn.dynamic_rnn(object(), x1, initial_state=state)
    with pytest.raises(TypeError, match="^cell"):
        fastrnn.dynamic_rnn(object(), x1)

    class Slotted:  # any object with state_size, output_size and __call__ is a cell
        __slots__ = ()
        state_size = 4
        output_size = 4

        def zero_state(self, batch, dtype):
            return np.zeros((batch, 4), dtype)

        def __call__(self, x, h):
            return h + 1, h + 1

    class Mine(Slotted):
        __slots__ = ("_plans",)

        def __init__(self):
            self._plans = {2: "not a plan"}

    for cell in (Slotted(), Mine()):
        out, final = fastrnn.dynamic_rnn(cell, x1, initial_state=state)
        np.testing.assert_array_equal(final, state + 1)
        out, final = fastrnn.dynamic_rnn(cell, x1)
        np.testing.assert_array_equal(final, state + 1)

    cell, _ = make_pair(CONFIGS["basic_lstm"], 3, np.float32, rng)
    cell.__dict__["_plans"] = {2: "not a plan"}  # a plan store in a bad state: made again
    x = rng.standard_normal((2, 3)).astype(np.float32)
    st = random_state(cell, 2, np.float32, rng)
    assert_identical(cell(x, st), validated_call(cell, x, st))


def validated_call(cell, x, state):
    """``cell(x, state)`` on the validated path (no monkeypatch fixture needed)."""
    with pytest.MonkeyPatch.context() as m:
        return validated(m, lambda: cell(x, state))


def test_a_plan_checks_what_it_is_given(rng):
    cell, _ = make_pair(CONFIGS["basic_lstm"], 3, np.float32, rng)
    x = rng.standard_normal((2, 3)).astype(np.float32)
    c, h = random_state(cell, 2, np.float32, rng)
    plan = _compiled._plan(cell, 2)
    assert plan.step(x, LSTMStateTuple(c, h)) is not None
    assert plan.step(x, tuple.__new__(LSTMStateTuple, (c,))) is None  # a malformed state tuple
    assert plan.step(x, tuple.__new__(LSTMStateTuple, (c, h, h))) is None
    empty = _kernels.CallPlan.__new__(_kernels.CallPlan)  # never initialized: runs nothing
    assert empty.step(x, LSTMStateTuple(c, h)) is None
    assert empty.sequence(x[:, None], False) is None
    assert not empty.fresh(cell)


def test_a_cell_with_plans_goes_with_its_last_reference(rng):
    """A plan keeps no reference to its cell: no cycle keeps the cell (and its packed weights)
    alive until the garbage collector runs."""
    import gc
    import weakref
    cell, _ = make_pair(CONFIGS["multi"], 3, np.float32, rng)
    x = rng.standard_normal((2, 3)).astype(np.float32)
    cell(x, random_state(cell, 2, np.float32, rng))
    fastrnn.dynamic_rnn(cell, x[:, None])
    assert cell.__dict__.get("_plans")
    ref = weakref.ref(cell)
    gc.disable()
    try:
        del cell
        assert ref() is None
    finally:
        gc.enable()
