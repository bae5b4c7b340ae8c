"""The package's boundaries hold: the oracle never reaches compiled code, modules import alone,
the Python/C boundary is typed, and user subclasses dispatch as documented."""
from __future__ import annotations

import ast
import importlib
import inspect
import subprocess
import sys

import numpy as np
import pytest

import fastrnn
import fastrnn.reference as ref
from fastrnn import _kernels

from helpers import assert_close


@pytest.mark.parametrize("driver", ["dynamic", "bidirectional", "static", "step"])
def test_the_reference_never_reaches_the_kernels(kernel_calls, driver, rng):
    """fastrnn.reference runs the NumPy step even for the public (compiled) cells, and its own
    cells never run compiled, whatever driver or call."""
    x = rng.standard_normal((2, 3, 4))
    for cell in [fastrnn.GRUCell(3), fastrnn.LSTMCell(4, num_proj=2, use_peepholes=True),
                 fastrnn.MultiRNNCell([fastrnn.BasicRNNCell(3), fastrnn.BasicLSTMCell(2)]),
                 ref.MultiRNNCell([fastrnn.GRUCell(3), ref.GRUCell(2, reset_after=True)])]:
        if driver == "dynamic":
            ref.dynamic_rnn(cell, x)
        elif driver == "bidirectional":
            ref.bidirectional_dynamic_rnn(cell, cell, x, sequence_length=[3, 1])
        elif driver == "static":
            ref.static_rnn(cell, list(x.transpose(1, 0, 2)))
        else:
            ref.numpy_step(cell, x[:, 0], cell.zero_state(2, np.float64))
    ref.MultiRNNCell([fastrnn.GRUCell(3)])(x[:, 0], (np.zeros((2, 3)),))  # the oracle's stack, public layer
    assert kernel_calls == []


def test_the_reference_agrees_with_the_compiled_path_on_the_same_public_cell(rng):
    """The same public cell through both drivers: the oracle's NumPy step and the kernels."""
    cell = fastrnn.MultiRNNCell([fastrnn.LSTMCell(5, use_peepholes=True, num_proj=3), fastrnn.GRUCell(4)])
    x = rng.standard_normal((3, 6, 2))
    lens = [6, 0, 4]
    assert_close(fastrnn.dynamic_rnn(cell, x, lens), ref.dynamic_rnn(cell, x, lens), np.float64, "same cell")


def test_the_reference_runs_without_the_compiled_extension():
    """With fastrnn._kernels unimportable, the whole reference API still runs -- public cells
    included -- so it cannot depend on compiled code; the product's own path says why it fails."""
    code = """
import sys
sys.modules["fastrnn._kernels"] = None   # any import of it raises ImportError
import numpy as np, fastrnn, fastrnn.reference as ref
x = np.random.default_rng(0).standard_normal((3, 4, 2))
for cell in (fastrnn.GRUCell(3), fastrnn.LSTMCell(3, num_proj=2),
             fastrnn.MultiRNNCell([fastrnn.BasicRNNCell(2), fastrnn.BasicLSTMCell(3)]), ref.GRUCell(4)):
    ref.dynamic_rnn(cell, x, sequence_length=[4, 0, 2])
    ref.bidirectional_dynamic_rnn(cell, cell, x)
try:
    fastrnn.dynamic_rnn(fastrnn.GRUCell(3), x)
except ImportError as e:
    assert "compiled extension is not available" in str(e), e
else:
    raise AssertionError("ran without the extension")
print("ok")
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr


ORACLE_MODULES = ["fastrnn.reference", "fastrnn._cellbase", "fastrnn._validate", "fastrnn._drivers",
                  "fastrnn._stream", "fastrnn._structure", "fastrnn._activations"]
PRODUCT_ONLY = ("_kernels", "_compiled", "_cells", "_rnn", "_engine", "_options", "_threads")


@pytest.mark.parametrize("module", ORACLE_MODULES)
def test_the_oracle_imports_nothing_of_the_product(module):
    """A reviewer can trust the oracle by reading its imports: none of its modules imports the
    compiled extension or the product's modules."""
    tree = ast.parse(inspect.getsource(importlib.import_module(module)))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            names = [node.module or ""] + [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        assert not any(n.split(".")[-1] in PRODUCT_ONLY for n in names), (module, names)


@pytest.mark.parametrize("module", ORACLE_MODULES + [
    "fastrnn._options", "fastrnn._compiled", "fastrnn._cells", "fastrnn._rnn", "fastrnn._engine", "fastrnn._threads",
    "fastrnn.interop", "fastrnn.nn", "fastrnn.nn.rnn_cell", "fastrnn.contrib", "fastrnn.contrib.rnn", "fastrnn"])
def test_every_module_imports_first(module):
    """No import cycles: each module can be the first one imported in a fresh interpreter."""
    res = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr


# ---- the typed Python/C boundary -----------------------------------------------------------

LAYER_FIELDS = dict(cell=_kernels.CELL_GRU, dtype=_kernels.FLOAT64, activation=_kernels.ACTIVATIONS["tanh"],
                    depth=2, units=3, proj=3, kernel=np.zeros((5, 6)), bias=np.zeros(6),
                    cand_kernel=np.zeros((5, 3)), cand_bias=np.zeros(3), cand_recurrent_bias=None,
                    w_i_diag=None, w_f_diag=None, w_o_diag=None, proj_kernel=None, forget_bias=None,
                    cell_clip=None, proj_clip=None)


def test_the_layer_description_is_typed():
    """Every field of the C layer named once: a missing or misspelled field is an error, and so is
    a weight that the layer's kind does not have -- never a silent default."""
    layer = _kernels.Layer(**LAYER_FIELDS)
    assert (layer.cell, layer.units, layer.depth) == (_kernels.CELL_GRU, 3, 2)
    missing = dict(LAYER_FIELDS)
    del missing["cand_recurrent_bias"]
    with pytest.raises(TypeError, match="cand_recurrent_bias"):
        _kernels.Layer(**missing)
    with pytest.raises(TypeError, match="cand_recurent_bias"):
        _kernels.Layer(**LAYER_FIELDS, cand_recurent_bias=np.zeros(3))
    with pytest.raises(TypeError):
        _kernels.Layer(*LAYER_FIELDS.values())  # keyword-only
    for change, match in [(dict(cand_kernel=None), "cand_kernel: required for a GRU layer"),
                          (dict(w_i_diag=np.zeros(3)), "w_i_diag: only for LSTM layers"),
                          (dict(forget_bias=1.0), "only for LSTM layers"),
                          (dict(cell=7), "cell: expected CELL_RNN, CELL_LSTM or CELL_GRU, got 7"),
                          (dict(activation=9), "activation: expected one of"),
                          (dict(proj=2), r"proj: expected units \(3\)"),
                          (dict(kernel=np.zeros((5, 5))), "kernel: expected 30 elements, got 25"),
                          (dict(bias=np.zeros(6, np.float32)), "bias: expected float64")]:
        with pytest.raises((TypeError, ValueError), match=match):
            _kernels.Layer(**{**LAYER_FIELDS, **change})
    lstm = dict(LAYER_FIELDS, cell=_kernels.CELL_LSTM, kernel=np.zeros((5, 12)), bias=np.zeros(12),
                cand_kernel=None, cand_bias=None, forget_bias=1.0)
    _kernels.Layer(**lstm)
    with pytest.raises(ValueError, match="all three peepholes or none"):
        _kernels.Layer(**dict(lstm, w_i_diag=np.zeros(3)))
    with pytest.raises(ValueError, match="forget_bias: required for an LSTM layer"):
        _kernels.Layer(**dict(lstm, forget_bias=None))


def test_the_enums_and_options_come_from_the_header():
    assert _kernels.cell_gates(_kernels.CELL_RNN) == 1
    assert _kernels.cell_gates(_kernels.CELL_LSTM) == 4
    assert _kernels.cell_gates(_kernels.CELL_GRU) == 2
    with pytest.raises(ValueError, match="unknown cell kind"):
        _kernels.cell_gates(9)
    assert set(_kernels.ACTIVATIONS) == {"tanh", "sigmoid", "relu", "linear"}
    with pytest.raises(ValueError, match="isa: expected one of 'auto', 'generic', 'avx2', 'avx512', got 'AVX512'"):
        _kernels.Options(isa="AVX512", xproj="auto", schedule="auto", gemm="packed", nthreads=1, tile_rows=0,
                         precision="native", bf16_path="auto")
    with pytest.raises(ValueError, match="schedule: expected one of"):
        _kernels.Options(isa="auto", xproj="auto", schedule="row", gemm="packed", nthreads=1, tile_rows=0,
                         precision="native", bf16_path="auto")
    with pytest.raises(TypeError):
        _kernels.Options(isa="auto", xproj="auto", schedule="rows", gemm="packed", nthreads=1, tile_rows=0,
                         precision="native")  # bf16_path missing
    with pytest.raises(ValueError, match="gemm: bfloat16 runs on the packed GEMM only"):
        _kernels.Options(isa="auto", xproj="auto", schedule="rows", gemm="blas", nthreads=1, tile_rows=0,
                         precision="bfloat16", bf16_path="auto")
    with pytest.raises(ValueError, match="nthreads: expected a positive integer"):
        _kernels.Options(isa="auto", xproj="auto", schedule="rows", gemm="packed", nthreads=0, tile_rows=0,
                         precision="native", bf16_path="auto")


# ---- user subclasses ------------------------------------------------------------------------

class MyLSTM(fastrnn.BasicLSTMCell):
    """A user's subclass that keeps the built-in step: it still runs compiled."""

    def build(self, input_depth, dtype=None):
        super().build(input_depth, dtype)
        self.built_with = input_depth


class MyLoggingLSTM(fastrnn.BasicLSTMCell):
    """A user's subclass that overrides the step: it runs through its own ``__call__``."""

    calls = 0

    def _step(self, x, state):
        type(self).calls += 1
        return super()._step(x, state)


def test_subclasses_take_the_compiled_path_unless_they_override_the_step(kernel_calls, rng):
    x = rng.standard_normal((3, 5, 4))
    mine = MyLSTM(6, seed=1)
    plain = fastrnn.BasicLSTMCell(6, seed=1)
    got = fastrnn.dynamic_rnn(mine, x)
    assert kernel_calls == [_kernels.CELL_LSTM] and mine.built_with == 4
    assert_close(got, fastrnn.dynamic_rnn(plain, x), np.float64, "subclass")
    kernel_calls.clear()
    MyLoggingLSTM.calls = 0
    got = fastrnn.dynamic_rnn(MyLoggingLSTM(6, seed=1), x)
    assert MyLoggingLSTM.calls == 5  # one step per time step, through the user's _step ...
    assert kernel_calls == [_kernels.CELL_LSTM] * 5  # ... whose super() step still runs compiled
    assert_close(got, fastrnn.dynamic_rnn(plain, x), np.float64, "overriding subclass")
    kernel_calls.clear()
    MyLoggingLSTM.calls = 0
    ref.dynamic_rnn(MyLoggingLSTM(6, seed=1), x)  # the oracle calls the user's step too ...
    assert MyLoggingLSTM.calls == 5
    kernel_calls.clear()
    ref.dynamic_rnn(MyLSTM(6, seed=1), x)  # ... but a subclass that keeps the step runs in NumPy there
    assert kernel_calls == []
