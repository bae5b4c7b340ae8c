"""precision="bfloat16": the API, and the reference's emulation of the kernels' rounding."""
from __future__ import annotations

import numpy as np
import pytest

import fastrnn
import fastrnn.reference as ref

from fastrnn import _options

from helpers import (CONFIGS, DRIVERS, IMPLS, assert_bf16_close, assert_identical, drive, make_pair, random_state,
                     with_units)


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


# ---- the compiled paths against the reference's emulation ---------------------------------

@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_every_cell_and_driver_on_every_path(name, bf16_path, xproj, rng):
    """Every cell option, every driver and the one-step call, on each bfloat16 path this machine runs
    (forced), in both input-projection modes; odd sizes, ragged and zero lengths, random states."""
    for units, batch, depth in ((9, 7, 5), (37, 3, 19), (1, 1, 1)):
        cell, twin = make_pair(with_units(CONFIGS[name], units), depth, np.float32, rng)
        x = rng.standard_normal((batch, 6, depth)).astype(np.float32)
        lens = rng.integers(0, 7, batch)
        lens[0] = 6
        init = random_state(cell, batch, np.float32, rng)
        what = f"{name} {bf16_path} {xproj} units={units} batch={batch}"
        for driver in DRIVERS:
            got = drive(fastrnn, driver, x, cell, cell, lens, init, init, precision="bfloat16")
            exp = drive(ref, driver, x, twin, twin, lens, init, init, precision="bfloat16")
            assert_bf16_close(got, exp, f"{what} {driver}")
        assert_bf16_close(cell(x[:, 0], init, precision="bfloat16"), twin(x[:, 0], init, precision="bfloat16"),
                          f"{what} one step", share=0.98)


@pytest.mark.parametrize("name", ["basic_lstm", "gru_tanh", "lstm_proj_clip_all"])
def test_every_tile_and_schedule(name, bf16_path, tile_rows, rng):
    cell, twin = make_pair(with_units(CONFIGS[name], 21), 6, np.float32, rng)
    x = rng.standard_normal((13, 5, 6)).astype(np.float32)
    fastrnn.set_num_threads(3)
    try:
        for schedule in ("columns", "rows"):
            with _options.override(schedule=schedule):
                got = fastrnn.dynamic_rnn(cell, x, precision="bfloat16")
            assert_bf16_close(got, ref.dynamic_rnn(twin, x, precision="bfloat16"), f"{schedule} tile {tile_rows}")
    finally:
        fastrnn.set_num_threads(0)


# ---- the rounding itself, exactly --------------------------------------------------------

EPS = 2.0 ** -10  # 1 + EPS is a float32 that bfloat16 rounds to 1 (8 bits of significand)


def test_the_weights_and_every_operand_are_rounded(bf16_path):
    """A linear RNN with exact small numbers: bfloat16 must see 1 + 2^-10 as 1 in the weights, the
    inputs and the state read by the next step, and keep float32 everywhere else (bias, state)."""
    cell = fastrnn.BasicRNNCell(2, activation="linear")
    cell.set_weights({"kernel": np.array([[1 + EPS, 0], [0, 1], [1, 0], [0, 1]], np.float32),
                      "bias": np.array([EPS, 0], np.float32)})
    x = np.array([[[1 + EPS, 3], [1, 1 + EPS]]], np.float32)  # batch 1, 2 steps, depth 2
    h0 = np.array([[0.5, 1 + EPS]], np.float32)
    out, h = fastrnn.dynamic_rnn(cell, x, initial_state=h0, precision="bfloat16")
    # step 0: x.W = [1*1, 3], h.W = [0.5, 1] (h0's 1+EPS rounded), + bias [EPS, 0]
    np.testing.assert_array_equal(out[0, 0], np.array([1 + 0.5 + EPS, 3 + 1], np.float32))
    # step 1: h (float32 state [1.5+EPS, 4]) is read rounded: [1.5, 4]; x [1, 1+EPS] -> [1, 1]
    np.testing.assert_array_equal(out[0, 1], np.array([1 + 1.5 + EPS, 1 + 4], np.float32))
    np.testing.assert_array_equal(h, out[:, 1])  # the state itself is float32, not rounded
    exact, _ = fastrnn.dynamic_rnn(cell, x, initial_state=h0)
    assert not np.array_equal(exact, out)  # and without precision nothing is rounded


def test_gru_and_projection_operands_are_rounded(bf16_path, rng):
    """The TF1 GRU's candidate reads r*h rounded, a projected LSTM's projection reads m rounded: one step
    agrees with the emulation to float32 accuracy, and with float32 it does not."""
    for cell in (fastrnn.GRUCell(6, seed=3), fastrnn.LSTMCell(7, num_proj=3, seed=4)):
        x = rng.standard_normal((4, 5)).astype(np.float32)
        st = random_state(cell, 4, np.float32, rng)
        got = cell(x, st, precision="bfloat16")
        twin = ref.GRUCell(6) if isinstance(cell, fastrnn.GRUCell) else ref.LSTMCell(7, num_proj=3)
        twin.set_weights(cell.weights)
        assert_bf16_close(got, twin(x, st, precision="bfloat16"), type(cell).__name__, share=0.98)
        assert not np.allclose(got[0], twin(x, st)[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_bfloat16_results_do_not_depend_on_the_thread_count(bf16_path, threads, rng):
    cell = fastrnn.MultiRNNCell([fastrnn.BasicLSTMCell(40, seed=1), fastrnn.GRUCell(24, seed=2)])
    x = np.random.default_rng(5).standard_normal((11, 9, 8)).astype(np.float32)
    lens = np.random.default_rng(6).integers(0, 10, 11)
    fastrnn.set_num_threads(1)
    try:
        want = fastrnn.dynamic_rnn(cell, x, lens, precision="bfloat16")
        fastrnn.set_num_threads(threads)
        for schedule in ("auto", "columns", "rows"):
            with _options.override(schedule=schedule):
                assert_identical(fastrnn.dynamic_rnn(cell, x, lens, precision="bfloat16"), want, schedule)
    finally:
        fastrnn.set_num_threads(0)


# ---- accuracy against float32, and against PyTorch's bfloat16 -----------------------------

def relative_rms(a, b):
    return float(np.sqrt(np.mean((np.asarray(a, np.float64) - b) ** 2) / np.mean(np.asarray(b, np.float64) ** 2)))


ACCURACY = [("lstm", 128), ("lstm", 512), ("gru", 128), ("gru", 512)]


@pytest.mark.parametrize("kind,units", ACCURACY)
def test_accuracy_against_float32(kind, units):
    """Glorot-initialised cells, unit-normal inputs, 100 steps: the outputs' relative RMS error against
    the same cell in float32 is at most 1%, and within 1.25x of PyTorch's all-bfloat16 module against
    its own float32 on the same shapes (when PyTorch is installed)."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((16, 100, units)).astype(np.float32)
    cell = (fastrnn.BasicLSTMCell(units, forget_bias=0.0, seed=11) if kind == "lstm"
            else fastrnn.GRUCell(units, reset_after=True, seed=11))
    exact, _ = fastrnn.dynamic_rnn(cell, x)
    err = relative_rms(fastrnn.dynamic_rnn(cell, x, precision="bfloat16")[0], exact)
    assert err <= 0.01, f"{kind} {units}: relative RMS error {err:.4%} against float32"
    torch = pytest.importorskip("torch", reason="PyTorch's bfloat16 module is the yardstick (pip install torch)")
    from fastrnn import interop
    torch.manual_seed(0)
    net = (torch.nn.LSTM if kind == "lstm" else torch.nn.GRU)(units, units, batch_first=True).eval()
    with torch.inference_mode():
        tx = torch.from_numpy(x)
        t32 = net(tx)[0].numpy()
        t16 = net.to(torch.bfloat16)(tx.to(torch.bfloat16))[0].float().numpy()
    torch_err = relative_rms(t16, t32)
    net.float()
    ours = interop.from_torch(net)  # the same weights and semantics as PyTorch's module
    ours_err = relative_rms(fastrnn.dynamic_rnn(ours, x, precision="bfloat16")[0], fastrnn.dynamic_rnn(ours, x)[0])
    assert ours_err <= 0.01 and ours_err <= 1.25 * torch_err, \
        f"{kind} {units}: fastrnn {ours_err:.4%} vs PyTorch's bfloat16 {torch_err:.4%} (against float32)"
