"""The kernels never read workspace memory they did not write: every call with the workspace
filled with NaN bytes first (``_kernels.poison_workspaces``) gives the bits of the same call on a
clean one -- every cell and option, float32, float64 and bfloat16 on every path this machine
runs, hoisted and fused input projection, 1 and 3 threads, odd sizes (bfloat16 pads depths to
pairs), ragged and zero lengths, both directions, one-step calls and streams.

(A padded operand row left unwritten once gave NaN on bfloat16's hoisted path: 0 * NaN is NaN.)
"""
from __future__ import annotations

from typing import Any, Iterator

import numpy as np
import pytest

import fastrnn
from fastrnn import _kernels, _options

from helpers import CONFIGS, assert_identical, make_pair, random_state, with_units

SIZES = [(5, 7, 3, 7), (1, 5, 17, 64), (4, 3, 63, 33), (2, 4, 1, 1), (9, 6, 5, 20)]  # batch, time, depth, units
BF16 = _kernels.available_bf16_paths()


@pytest.fixture
def poisoned() -> Iterator[None]:
    _kernels.release_memory()  # no clean idle workspace to be handed out
    _kernels.poison_workspaces(True)
    try:
        yield
    finally:
        _kernels.poison_workspaces(False)


def calls(cell: Any, x: np.ndarray, lens: np.ndarray, state: Any, precision: Any) -> Any:
    kw = {} if precision is None else {"precision": precision}
    return (fastrnn.dynamic_rnn(cell, x, sequence_length=lens, initial_state=state, **kw),
            fastrnn.bidirectional_dynamic_rnn(cell, cell, x, sequence_length=lens, **kw),
            cell(x[:, 0], state, **kw))


@pytest.mark.parametrize("xproj", ["hoisted", "fused"])
@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("spec", ["rnn_tanh", "gru_tanh", "gru_reset_after", "basic_lstm", "lstm_proj_clip_all",
                                  "multi"])
def test_no_call_reads_what_it_did_not_write(spec, threads, xproj, rng):
    modes = [(np.float32, None), (np.float64, None)] + [(np.float32, ("bfloat16", p)) for p in BF16]
    for batch, time, depth, units in SIZES:
        for dtype, bf16 in modes:
            cell, _ = make_pair(with_units(CONFIGS[spec], units), depth, dtype, rng)
            x = rng.standard_normal((batch, time, depth)).astype(dtype)
            lens = rng.integers(0, time + 1, batch)
            state = random_state(cell, batch, dtype, rng)
            what = f"{spec} {dtype.__name__} {bf16} {(batch, time, depth, units)}"
            fastrnn.set_num_threads(threads)
            try:
                with _options.override(xproj=xproj, **({"bf16_path": bf16[1]} if bf16 else {})):
                    precision = bf16[0] if bf16 else None
                    clean = calls(cell, x, lens, state, precision)
                    _kernels.release_memory()
                    _kernels.poison_workspaces(True)
                    try:
                        dirty = calls(cell, x, lens, state, precision)
                    finally:
                        _kernels.poison_workspaces(False)
            finally:
                fastrnn.set_num_threads(0)
            assert_identical(dirty, clean, what)


def test_streams_read_only_what_they_wrote(rng, poisoned):
    for spec in ["basic_lstm", "gru_reset_after", "multi"]:
        cell, _ = make_pair(with_units(CONFIGS[spec], 9), 5, np.float32, rng)
        x = rng.standard_normal((3, 6, 5)).astype(np.float32)
        stream = fastrnn.Stream(cell, batch_size=3)
        steps = np.stack([stream.step(x[:, t]) for t in range(6)], axis=1)
        _kernels.poison_workspaces(False)
        assert_identical(steps, fastrnn.dynamic_rnn(cell, x)[0], spec)
        _kernels.poison_workspaces(True)
