"""The kernels' activations over a dense grid, on every instruction set this machine runs.

float32 uses branch-free polynomial exp/sigmoid/tanh (csrc/fr_vmath_impl.h); their error is
bounded here against float64 libm.  float64 uses Cephes-style functions, within the ulp bounds
libm meets for the same formulas.
"""
from __future__ import annotations

import numpy as np
import pytest

from fastrnn import _kernels

from conftest import ISAS


SIGMOID, TANH, SIG_ACT, RELU, LINEAR = -1, 0, 1, 2, 3


def test_dispatch_picks_the_best_isa_by_default():
    assert _kernels.resolve_isa("auto") == ISAS[-1]
    assert "generic" in ISAS


def grid32():
    dense = np.linspace(-30, 30, 3_000_001, dtype=np.float32)
    small = np.geomspace(1e-30, 1.0, 200_001).astype(np.float32)
    special = np.array([0.0, -0.0, 0.625, -0.625, 86.5, -86.5, 88.0, -88.0, 100, -100, 1e30, -1e30],
                       np.float32)
    return np.concatenate([dense, small, -small, special])


def apply(act, x):
    """The activation as the kernels of the instruction set forced now (the ``isa`` fixture)."""
    from fastrnn import _options
    y = np.array(x)
    _kernels.apply_activation(_options.current().isa, act, y)
    return y


def reference(act, x64):
    if act in (SIGMOID, SIG_ACT):
        return 1 / (1 + np.exp(-x64))
    if act == TANH:
        return np.tanh(x64)
    if act == RELU:
        return np.maximum(x64, 0)
    return x64


@pytest.mark.parametrize("act,bound", [(SIGMOID, 4e-7), (SIG_ACT, 4e-7), (TANH, 4e-7)])
def test_float32_error_bound(isa, act, bound):
    x = grid32()
    with np.errstate(over="ignore"):
        exact = reference(act, x.astype(np.float64))
    got = apply(act, x).astype(np.float64)
    tiny = np.abs(exact) < 1e-30  # below float32's normal range only an absolute bound makes sense
    rel = np.abs(got - exact)[~tiny] / np.abs(exact)[~tiny]
    worst = int(np.argmax(rel))
    assert rel.max() < bound, f"max relative error {rel.max():.3g} at x={x[~tiny][worst]!r}"
    assert np.abs(got - exact)[tiny].max() < 1e-30


@pytest.mark.parametrize("act", [SIGMOID, TANH, SIG_ACT, RELU, LINEAR])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_special_values(isa, act, dtype):
    x = np.array([np.nan, np.inf, -np.inf, 0.0], dtype)
    got = apply(act, x)
    assert np.isnan(got[0])
    expected = {SIGMOID: [1, 0, 0.5], SIG_ACT: [1, 0, 0.5], TANH: [1, -1, 0], RELU: [np.inf, 0, 0],
                LINEAR: [np.inf, -np.inf, 0]}[act]
    # float32 sigmoid(-inf) is exp's clamp, 1 / (1 + exp(88)) ~ 6e-39: within 1e-38 of the limit
    np.testing.assert_allclose(got[1:], expected, rtol=0, atol=1e-38)


# glibc documents tanh to 2 ulp; sigmoid composes libm exp with an add and a division (one rounding each).
@pytest.mark.parametrize("act,ulps", [(TANH, 2.0), (SIGMOID, 2.5)])
def test_float64_is_libm_accurate(isa, act, ulps):
    """float64 stays at libm accuracy, measured against an extended-precision evaluation."""
    x = np.concatenate([np.linspace(-40, 40, 400_001), np.geomspace(1e-300, 1, 10_001)])
    xl = x.astype(np.longdouble)
    exact = np.tanh(xl) if act == TANH else 1 / (1 + np.exp(-xl))
    err = np.abs(apply(act, x).astype(np.longdouble) - exact) / np.spacing(np.abs(exact).astype(np.float64))
    assert err.max() <= ulps, f"max error {float(err.max()):.2f} ulp at x={x[int(np.argmax(err))]!r}"
