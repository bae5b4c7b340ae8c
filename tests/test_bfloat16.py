"""precision="bfloat16": the API, and the reference's emulation of the kernels' rounding."""
from __future__ import annotations

import numpy as np
import pytest

import fastrnn
import fastrnn.reference as ref

from helpers import DRIVERS, IMPLS, drive


def bits(a):
    return np.asarray(a, np.float32).view(np.uint32)


# (float32 bits in, bfloat16 bits out): what vcvtneps2bf16 does (measured on an AVX512-BF16 CPU)
HARDWARE = [(0x7FC00000, 0x7FC0), (0xFFC00000, 0xFFC0), (0x7F800001, 0x7FC0), (0xFF800001, 0xFFC0),
            (0x7FA12345, 0x7FE1), (0x00000001, 0x0000), (0x807FFFFF, 0x8000), (0x00800000, 0x0080),
            (0x3F808000, 0x3F80), (0x3F818000, 0x3F82), (0x3F80FFFF, 0x3F81), (0x7F7FFFFF, 0x7F80),
            (0xFF800000, 0xFF80), (0x3F800000, 0x3F80), (0xBF7FFFFF, 0xBF80), (0x00000000, 0x0000),
            (0x80000000, 0x8000)]


def test_bfloat16_round_is_the_hardware_rounding():
    x = np.array([b for b, _ in HARDWARE], np.uint32).view(np.float32)
    got = bits(ref.bfloat16_round(x))
    want = np.array([w << 16 for _, w in HARDWARE], np.uint32)
    for g, w, b in zip(got, want, HARDWARE):
        assert g == w, f"{b[0]:#010x}: got {g >> 16:#06x}, want {w >> 16:#06x}"


def test_bfloat16_round_is_round_to_nearest_even_everywhere(rng):
    u = rng.integers(0, 2**32, 200_000, dtype=np.uint64).astype(np.uint32)
    x = u.view(np.float32)
    x = x[np.isfinite(x) & (np.abs(x) >= np.finfo(np.float32).tiny) & (np.abs(x) < 3e38)]
    r = ref.bfloat16_round(x).astype(np.float64)
    assert not (bits(r.astype(np.float32)) & 0xFFFF).any()  # a bfloat16 value
    step = np.abs(np.spacing(x.astype(np.float32)).astype(np.float64)) * 2**16  # one bfloat16 ulp
    err = np.abs(r - x)
    assert (err <= step / 2).all()  # nearest
    ties = err == step / 2
    assert not (bits(r[ties].astype(np.float32)) >> 16 & 1).any()  # ties to even


@pytest.mark.parametrize("m", IMPLS)
@pytest.mark.parametrize("driver", DRIVERS + ["step"])
def test_precision_is_validated(m, driver):
    x = np.zeros((2, 3, 4), np.float32)
    cell = m.BasicLSTMCell(3)

    def call(precision, dtype=None, xx=x):
        if driver == "step":
            return cell(xx[:, 0], cell.zero_state(2, xx.dtype), precision=precision)
        fn = getattr(m, {"dynamic": "dynamic_rnn", "time_major": "dynamic_rnn", "static": "static_rnn",
                         "bidirectional": "bidirectional_dynamic_rnn",
                         "static_bidirectional": "static_bidirectional_rnn"}[driver])
        kw = {"precision": precision, "dtype": dtype}
        if driver in ("static", "static_bidirectional"):
            args = (list(np.swapaxes(xx, 0, 1)),)
        else:
            args = (xx,)
        cells = (cell, cell) if "bidirectional" in driver else (cell,)
        return fn(*cells, *args, **kw)

    with pytest.raises(ValueError, match=r"^precision: expected None or 'bfloat16', got 'bf16'$"):
        call("bf16")
    with pytest.raises(ValueError, match=r"^precision: expected None or 'bfloat16', got 16$"):
        call(16)
    with pytest.raises(ValueError, match=r"^precision: 'bfloat16' computes from float32 arrays .* float64"):
        call("bfloat16", xx=x.astype(np.float64)) if driver == "step" else call("bfloat16", dtype=np.float64)


class Doubler(fastrnn.RNNCell):
    state_size = 3
    output_size = 3

    def __call__(self, x, state, scope=None):
        return state * 2, state * 2


@pytest.mark.parametrize("m", IMPLS)
def test_a_users_cell_cannot_run_in_bfloat16(m):
    x = np.zeros((2, 3, 4), np.float32)
    with pytest.raises(ValueError, match=r"precision='bfloat16': .* \(Doubler\) runs its own step"):
        m.dynamic_rnn(Doubler(), x, precision="bfloat16")
    with pytest.raises(ValueError, match=r"precision='bfloat16': .* \(Doubler\) runs its own step"):
        m.dynamic_rnn(m.MultiRNNCell([m.GRUCell(3), Doubler()]), x, precision="bfloat16")


def test_the_emulation_rounds_the_operands_and_sums_in_float32(rng):
    """The reference's bfloat16 step equals the float32 step on pre-rounded weights and inputs whenever the
    state is itself exactly representable (here: zero), and differs from plain float32 otherwise."""
    cell = ref.BasicRNNCell(8, activation="linear", seed=1)
    x = rng.standard_normal((3, 1, 5)).astype(np.float32)
    out_bf, _ = ref.dynamic_rnn(cell, x, precision="bfloat16")
    rounded = ref.BasicRNNCell(8, activation="linear")
    rounded.set_weights({"kernel": ref.bfloat16_round(cell.weights["kernel"]), "bias": cell.weights["bias"]})
    out_rounded, _ = ref.dynamic_rnn(rounded, ref.bfloat16_round(x))
    np.testing.assert_allclose(out_bf, out_rounded, rtol=1e-6, atol=1e-7)
    out_f32, _ = ref.dynamic_rnn(cell, x)
    assert not np.allclose(out_bf, out_f32, rtol=1e-4, atol=0)
    np.testing.assert_allclose(out_bf, out_f32, rtol=0.05, atol=0.02)
