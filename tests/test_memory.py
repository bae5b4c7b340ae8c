"""Memory stays flat over many calls; no call keeps a reference to what it was given.

``workload`` is also what ``tools/leak_check.py`` runs under valgrind in CI
(``.ci/run``): every driver, the one-step call, ``set_weights``/``weights``,
and calls that fail inside the Cython layer (so its error paths release
their buffers and workspace too).
"""
from __future__ import annotations

import gc
import os
import sys

import numpy as np
import pytest

import fastrnn
from fastrnn import _compiled, _kernels
from fastrnn._structure import flatten

from helpers import DRIVERS, drive


BATCH, TIME, DEPTH, UNITS = 16, 20, 8, 32


def make_cells(seed=0):
    cell = fastrnn.MultiRNNCell([fastrnn.LSTMCell(UNITS, use_peepholes=True, num_proj=UNITS // 2, seed=seed),
                                 fastrnn.GRUCell(UNITS, seed=seed + 1)])
    bw = fastrnn.BasicLSTMCell(UNITS, seed=seed + 2)
    cell.build(DEPTH, np.float32)
    bw.build(DEPTH, np.float32)
    return cell, bw


def workload(cell, bw, x, lens, state, calls=1):
    """``calls`` rounds of every public entry point, plus failing kernel calls."""
    rnn = fastrnn.BasicRNNCell(4, seed=1)
    rnn.build(DEPTH, np.float32)
    ((_, layer),) = _compiled.layers(rnn)
    h0 = np.zeros((BATCH, 4), np.float32)
    bad_lens = np.full(BATCH, TIME + 1, np.int64)
    for _ in range(calls):
        for driver in DRIVERS:
            drive(fastrnn, driver, x, cell, bw, lens, state)
        cell(x[:, 0], state)
        bw.set_weights(bw.weights)
        for args in ((x, bad_lens), (x[:, :-1], lens)):  # rejected by the kernel / by the Cython checks
            try:
                _kernels.layer_forward(layer, _compiled.kernel_options(), np.ascontiguousarray(args[0]), args[1],
                                       h0, None, False, False, BATCH, TIME)
            except ValueError:
                pass
            else:
                raise AssertionError("the kernel accepted bad arguments")


def inputs(rng, cell):
    x = rng.standard_normal((BATCH, TIME, DEPTH)).astype(np.float32)
    lens = rng.integers(0, TIME + 1, BATCH)
    state = tuple(fastrnn.LSTMStateTuple(*(rng.standard_normal(a.shape).astype(np.float32) for a in s))
                  if isinstance(s, tuple) else rng.standard_normal(s.shape).astype(np.float32)
                  for s in cell.zero_state(BATCH, np.float32))
    return x, lens, state


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc (Linux)")
@pytest.mark.skipif("libasan" in os.environ.get("LD_PRELOAD", ""),
                    reason="AddressSanitizer holds freed memory in its quarantine (up to 256 MiB), so RSS "
                           "grows by design; the release-build run of this test and the valgrind leak "
                           "check cover memory")
def test_memory_is_flat_over_1000_calls(rng):
    """RSS after 1,000 rounds (1,000 calls of each driver) minus RSS after a warm-up must stay below 4 MiB.

    Every round allocates (and must free) far more than that allows to leak:
    each driver's outputs are >= 10 KiB (16 x 20 x 16 float32 for the LSTM
    layer, 16 x 20 x 32 for the GRU), the input projection workspace >= 40 KiB
    (16 x 20 x 128 float32) -- so losing any one per-call output or workspace
    would add >= 10 MiB over 1,000 rounds.  The 4 MiB allowance absorbs
    allocator noise (glibc arenas, NumPy's small-block cache), measured here at
    well under 1 MiB.  Losing the small per-call arrays (final states, lengths)
    is caught by the reference-count test below and by valgrind in CI.
    """
    cell, bw = make_cells()
    x, lens, state = inputs(rng, cell)
    workload(cell, bw, x, lens, state, calls=50)  # warm-up: caches, allocator pools, lazy imports
    gc.collect()
    before = rss_bytes()
    workload(cell, bw, x, lens, state, calls=1000)
    gc.collect()
    grown = rss_bytes() - before
    assert grown < 4 * 2**20, f"RSS grew by {grown / 2**20:.2f} MiB over 1,000 calls"


def test_no_reference_is_kept_to_arguments_or_weights(rng):
    """Each call releases every buffer it acquired (inputs, lengths, states, weights, outputs)."""
    cell, bw = make_cells()
    x, lens, state = inputs(rng, cell)
    watched = [x, lens] + flatten(state) + [w for c in cell.cells + [bw] for w in c._weights.values()]
    workload(cell, bw, x, lens, state, calls=2)
    gc.collect()
    counts = [sys.getrefcount(a) for a in watched]
    workload(cell, bw, x, lens, state, calls=20)
    gc.collect()
    assert [sys.getrefcount(a) for a in watched] == counts


def test_returned_arrays_own_nothing_else(rng):
    """Outputs and final states are freed with the last reference to them (no hidden owner keeps them)."""
    import weakref
    cell, bw = make_cells()
    x, lens, state = inputs(rng, cell)
    refs = []
    for driver in DRIVERS:
        result = drive(fastrnn, driver, x, cell, bw, lens, state)
        refs += [weakref.ref(a.base if a.base is not None else a) for a in _arrays(result)]
        del result
    gc.collect()
    assert all(r() is None for r in refs), "a returned array is still referenced after the call"


def _arrays(obj):
    if isinstance(obj, (list, tuple)):
        return [a for v in obj for a in _arrays(v)]
    return [obj] if isinstance(obj, np.ndarray) else []


RSS_SCRIPT = """
import gc, json, os
import numpy as np, fastrnn
from fastrnn import _kernels

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

cell = fastrnn.BasicLSTMCell(128, seed=0)
# float32 drawn directly: a float64 temporary of the size of the outputs, freed, would raise glibc's
# mmap threshold and put the outputs on the heap, where freeing them does not lower RSS
x = np.random.default_rng(0).standard_normal((1, 100_000, 16), dtype=np.float32)
fastrnn.dynamic_rnn(cell, x[:, :100])  # warm-up: the packed weights, lazy imports, the pool
gc.collect()
base = rss()
outputs, state = fastrnn.dynamic_rnn(cell, x)
during = rss()
del outputs, state
gc.collect()
dropped = rss()
idle = _kernels.idle_workspace_bytes()
fastrnn.release_memory()
gc.collect()
print(json.dumps(dict(during=during - base, dropped=dropped - base, released=rss() - base, idle=idle,
                      idle_after=_kernels.idle_workspace_bytes())))
"""


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc (Linux)")
@pytest.mark.skipif("libasan" in os.environ.get("LD_PRELOAD", ""),
                    reason="AddressSanitizer holds freed memory in its quarantine, so RSS does not drop")
def test_a_long_call_leaves_no_workspace_behind():
    """Issue 13: a batch-1, 100,000-step LSTM call kept its whole workspace (+391 MiB at 256 units)
    after the outputs were gone.  Measured in a fresh interpreter, so that no other test's arrays
    or workspaces count: RSS once the outputs are dropped, then after release_memory()."""
    import json
    import subprocess
    res = subprocess.run([sys.executable, "-c", RSS_SCRIPT], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    mib = {k: v / 2**20 for k, v in json.loads(res.stdout).items()}
    # the call needs ~195 MiB of workspace (the hoisted input projection) and 49 MiB of outputs
    assert mib["during"] > 40, f"the outputs were not even counted: {mib}"
    assert mib["dropped"] < 16, f"RSS stays {mib['dropped']:.1f} MiB up after the outputs are gone: {mib}"
    assert mib["idle"] <= _kernels.WORKSPACE_CACHE_BYTES / 2**20
    assert mib["released"] < 16 and mib["idle_after"] == 0, mib

