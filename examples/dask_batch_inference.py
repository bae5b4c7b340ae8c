"""Scoring a batch too large for one call on a Dask cluster: ``fastrnn.dask``.

Mirrors "tf.nn.dynamic_rnn in depth" at cluster scale: a batch of ragged sequences,
chunked along the batch, runs as one independent fastrnn call per block on the
cluster's workers; the outputs and the final state come back as lazy dask arrays in
the cell's own structure, equal to one in-process ``fastrnn.dynamic_rnn`` call.

    python examples/dask_batch_inference.py                      # a LocalCluster of 2 worker processes
    python examples/dask_batch_inference.py tcp://scheduler:8786 # a running cluster's scheduler
"""
from __future__ import annotations

import sys
from typing import Any, List

import dask
import dask.array as da
import numpy as np
from distributed import Client, LocalCluster, get_task_stream

import fastrnn as fr
import fastrnn.dask as frd

# Dask's functions carry no annotations: called through Any, so that `mypy --strict examples/` holds
compute: Any = dask.compute  # type: ignore[attr-defined, unused-ignore]
dask_random: Any = da.random


def score(client: Client) -> None:
    batch, time, depth = 4096, 50, 32
    # The data is made on the workers, chunked along the batch: 8 blocks of 512 sequences.
    x = dask_random.default_rng(0).standard_normal((batch, time, depth), chunks=(512, time, depth),
                                                  dtype=np.float32)
    lengths = dask_random.default_rng(1).integers(0, time + 1, batch, chunks=512)
    cell = fr.MultiRNNCell([fr.LSTMCell(64, use_peepholes=True, seed=0), fr.GRUCell(32, seed=1)])

    outputs, state = frd.dynamic_rnn(cell, x, sequence_length=lengths)  # lazy: nothing has run yet
    print(f"outputs {outputs.shape} in {outputs.numblocks[0]} blocks; state: "
          f"{type(state[0]).__name__}(c {state[0].c.shape}, h {state[0].h.shape}), {state[1].shape}")

    # Bring back only what is needed (the outputs stay on the workers but for 8 rows); computed
    # together, the final state and the outputs come from the same tasks: each block runs once.
    with get_task_stream(client) as stream:
        top, first_rows = compute(state[1], outputs[:8])
    workers = {t["worker"] for t in stream.data if "fastrnn-dask-rnn" in str(t["key"])}
    print(f"the blocks ran on {len(workers)} worker(s){' -- both workers' if len(workers) == 2 else ''}")

    # A row's last valid output is its top layer's final state; rows of length 0 keep the zero state.
    len_first = lengths[:8].compute()
    for b, n in enumerate(len_first):
        np.testing.assert_allclose(top[b], first_rows[b, n - 1] if n else 0, rtol=1e-6, atol=1e-7)

    # The same numbers as one in-process call on the whole batch.
    x_np, len_np = compute(x, lengths)
    want_out, want_state = fr.dynamic_rnn(cell, x_np, sequence_length=len_np)
    np.testing.assert_allclose(top, want_state[1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(first_rows, want_out[:8], rtol=1e-5, atol=1e-6)
    print(f"equal to one in-process call (final state {top.shape}, outputs of rows 0-7 with lengths "
          f"{len_first.tolist()})")


def main(argv: List[str]) -> None:
    client_of: Any = Client
    if len(argv) > 1:  # a running cluster: its scheduler's address
        with client_of(argv[1]) as client:
            score(client)
        return
    cluster_of: Any = LocalCluster
    with cluster_of(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            client_of(cluster) as client:
        score(client)


if __name__ == "__main__":
    main(sys.argv)
