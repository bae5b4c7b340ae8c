"""Configuration is as loud as bad input: strict flags, validated environment, bounded memory."""
from __future__ import annotations

import gc
import subprocess
import sys

import numpy as np
import pytest

import fastrnn
import fastrnn.reference as ref
from fastrnn import _kernels

from helpers import IMPLS


@pytest.mark.parametrize("m", IMPLS)
@pytest.mark.parametrize("make,name", [
    (lambda m, v: m.LSTMCell(4, use_peepholes=v), "use_peepholes"),
    (lambda m, v: m.LSTMCell(4, state_is_tuple=v), "state_is_tuple"),
    (lambda m, v: m.BasicLSTMCell(4, state_is_tuple=v), "state_is_tuple"),
    (lambda m, v: m.GRUCell(4, reset_after=v), "reset_after"),
    (lambda m, v: m.MultiRNNCell([m.GRUCell(2)], state_is_tuple=v), "state_is_tuple"),
    (lambda m, v: m.dynamic_rnn(m.GRUCell(2), np.zeros((1, 2, 3)), time_major=v), "time_major"),
])
@pytest.mark.parametrize("value", ["no", "False", None, 2, 0.5, [True]])
def test_every_flag_is_strict(m, make, name, value):
    """A flag is True/False (or 0/1): "no" must not turn peepholes on, the same error for every flag."""
    with pytest.raises(TypeError, match=rf"^{name}: expected True or False, got "):
        make(m, value)


@pytest.mark.parametrize("m", IMPLS)
def test_flags_accept_bools_and_numpy_bools(m):
    assert m.LSTMCell(4, use_peepholes=np.True_).use_peepholes is True
    assert m.LSTMCell(4, use_peepholes=0).use_peepholes is False
    assert m.GRUCell(4, reset_after=1).reset_after is True


@pytest.mark.parametrize("m", IMPLS)
def test_a_cell_class_instead_of_a_cell(m):
    x = np.zeros((2, 3, 4), np.float32)
    with pytest.raises(TypeError, match=r"^cell: expected an RNN cell object, got the class GRUCell itself; "
                                        r"create one first, e.g. GRUCell\(num_units\)$"):
        m.dynamic_rnn(m.GRUCell, x)
    with pytest.raises(TypeError, match=r"^cells\[1\]: expected an RNN cell object, got the class BasicLSTMCell"):
        m.MultiRNNCell([m.GRUCell(2), m.BasicLSTMCell])


@pytest.mark.parametrize("m", IMPLS)
def test_the_same_cell_twice_in_a_stack_is_refused(m):
    cell = m.BasicLSTMCell(4)
    with pytest.raises(ValueError, match=r"^cells\[1\]: the same cell object as cells\[0\]; the layers would share "
                                         r"one set of weights .* MultiRNNCell\(\[BasicLSTMCell\(n\) for _ in "
                                         r"range\(2\)\]\) instead of \[cell\] \* 2$"):
        m.MultiRNNCell([cell] * 2)
    m.MultiRNNCell([cell, m.BasicLSTMCell(4)])  # two cells are fine


def _import_with(env):
    code = "import fastrnn, numpy as np; print(fastrnn.dynamic_rnn(fastrnn.GRUCell(2), np.ones((1, 2, 3)))[0].shape)"
    import os
    full = {k: v for k, v in os.environ.items() if not k.startswith("FASTRNN_")}
    full.update(env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full, timeout=120)


@pytest.mark.parametrize("env,message", [
    ({"FASTRNN_ISA": "AVX512"}, r"FASTRNN_ISA='AVX512': unknown value; expected one of generic, avx2, avx512"),
    ({"FASTRNN_ISA": "avx-512"}, r"FASTRNN_ISA='avx-512': unknown value"),
    ({"FASTRNN_XPROJ": "fast"}, r"FASTRNN_XPROJ='fast': unknown value; expected one of hoisted, fused"),
    ({"FASTRNN_SCHEDULE": "row"}, r"FASTRNN_SCHEDULE='row': unknown value; expected one of columns, rows"),
    ({"FASTRNN_NUM_THREADS": "abc"}, r"FASTRNN_NUM_THREADS='abc': expected a positive integer"),
    ({"FASTRNN_NUM_THREADS": "0"}, r"FASTRNN_NUM_THREADS='0': expected a positive integer"),
    ({"FASTRNN_NUM_THREADS": "-3"}, r"FASTRNN_NUM_THREADS='-3': expected a positive integer"),
    ({"FASTRNN_NUM_THREADS": "2.5"}, r"FASTRNN_NUM_THREADS='2.5': expected a positive integer"),
])
def test_a_bad_environment_is_an_error_at_import(env, message):
    res = _import_with(env)
    assert res.returncode != 0 and "ValueError" in res.stderr, res.stderr
    import re
    assert re.search(message, res.stderr), res.stderr


def test_an_instruction_set_the_cpu_lacks_is_an_error():
    missing = [i for i in ("avx2", "avx512") if i not in _kernels.available_isas()]
    if not missing:
        pytest.skip("this CPU runs every instruction set fastrnn is built for (avx2, avx512): none to refuse")
    res = _import_with({"FASTRNN_ISA": missing[0]})
    assert res.returncode != 0 and "cannot run it" in res.stderr, res.stderr


@pytest.mark.parametrize("env", [{"FASTRNN_ISA": "generic"}, {"FASTRNN_XPROJ": "hoisted"},
                                 {"FASTRNN_SCHEDULE": "rows", "FASTRNN_NUM_THREADS": "3"}, {}])
def test_a_good_environment_is_used(env):
    res = _import_with(env)
    assert res.returncode == 0 and res.stdout.strip() == "(1, 2, 2)", res.stderr


def test_idle_workspaces_are_bounded_and_released(rng):
    """A call's workspace is kept for the next call only when it is not much larger than the call
    needed and not too large; release_memory() frees every idle one."""
    fastrnn.release_memory()
    cell = fastrnn.BasicLSTMCell(64)
    small = rng.standard_normal((4, 10, 64)).astype(np.float32)
    fastrnn.dynamic_rnn(cell, small)
    kept = _kernels.idle_workspace_bytes()
    assert 0 < kept < 4 * 2**20
    # one huge hoisted call: its workspace (> WORKSPACE_CACHE_BYTES) is freed after it
    big = np.zeros((1, 40_000, 64), np.float32)
    fastrnn.dynamic_rnn(fastrnn.BasicLSTMCell(128), big)
    assert _kernels.idle_workspace_bytes() <= kept + 4 * 2**20
    assert _kernels.idle_workspace_bytes() < _kernels.WORKSPACE_CACHE_BYTES
    fastrnn.release_memory()
    assert _kernels.idle_workspace_bytes() == 0
    out, _ = fastrnn.dynamic_rnn(cell, small)  # still works after the release
    assert out.shape == (4, 10, 64)
    gc.collect()


def test_a_workspace_much_larger_than_needed_is_not_kept(rng):
    fastrnn.release_memory()
    cell = fastrnn.BasicLSTMCell(64)
    fastrnn.dynamic_rnn(cell, rng.standard_normal((2, 3000, 64)).astype(np.float32))  # hoisted: big xproj
    big = _kernels.idle_workspace_bytes()
    fastrnn.dynamic_rnn(cell, rng.standard_normal((2, 3, 64)).astype(np.float32))
    assert _kernels.idle_workspace_bytes() < big, "a workspace far larger than its call needed was kept"
    fastrnn.release_memory()


def test_scipy_is_optional():
    """No default path needs SciPy: the package imports and runs with it unimportable."""
    code = ("import sys; sys.modules['scipy'] = None\n"
            "import numpy as np, fastrnn\n"
            "print(fastrnn.dynamic_rnn(fastrnn.BasicLSTMCell(3), np.ones((2, 4, 5)))[0].shape)\n"
            "assert not any(m == 'scipy' or m.startswith('scipy.') for m in sys.modules if sys.modules[m])")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.strip() == "(2, 4, 3)", res.stderr
