"""fastrnn.bench's streaming runners (bench/test_stream_bench.py times them) run and stream."""
from __future__ import annotations

import numpy as np
import pytest

import fastrnn
from fastrnn import bench


def h_of(result):
    """The output of a runner's last step (PyTorch's LSTMCell gives (h, c))."""
    out = result[0] if isinstance(result, tuple) else result
    return np.array(out.numpy() if hasattr(out, "numpy") else out, dtype=np.float64)


@pytest.mark.parametrize("impl", list(bench.STEP_PEERS))
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_every_step_runner_runs(impl, cell):
    case = bench.Case(f"tiny_{cell}", cell, 1, 1, 8)
    run = bench.STEP_PEERS[impl](case, steps=1 if impl != "fastrnn_stream_run20" else 20)
    if run is None:
        pytest.skip(f"{impl} is not installed")
    first, second = h_of(run()), h_of(run())
    assert first.shape[-1] == 8 and np.isfinite(second).all()
    assert not np.array_equal(first, second), "the state is not fed back"


def test_the_stream_runners_compute_the_sequence():
    """20 steps of the same input, one at a time or in one chunk: dynamic_rnn over 20 copies of it."""
    case = bench.STEP_CASES["step_gru_h128"]
    x = case.inputs()
    want, _ = fastrnn.dynamic_rnn(fastrnn.GRUCell(case.units, seed=0), np.repeat(x, 20, axis=1))
    np.testing.assert_allclose(bench.fastrnn_stream_runner(case, steps=20)(), want[:, -1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bench.fastrnn_stream_chunks_runner(case, steps=20)(), want, rtol=1e-5, atol=1e-6)
