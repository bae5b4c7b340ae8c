"""Streaming, one step at a time: ``fr.Stream.step`` vs its peers, the state fed back.

    pip install '.[bench]' torch==2.13.0
    python -m pytest bench/test_stream_bench.py --benchmark-only --benchmark-group-by=group \\
        --benchmark-columns=median,iqr,rounds

Batch 1, depth = units, float32, every implementation on 1 thread: ``fr.Stream.step(x, out=y)``,
the same steps as ``Stream.run`` of 20-step chunks (what batching steps saves), a cell's one-step
call ``cell(x, state)`` and a one-step ``dynamic_rnn(cell, x, initial_state=state)`` (what the
Stream saves; both target <= 8 us for LSTM 128), PyTorch's ``nn.LSTMCell`` /
``nn.GRUCell`` under ``torch.inference_mode()``, and ONNX Runtime's ``session.run`` of a one-step
LSTM/GRU graph (X, initial_h, initial_c -> Y_h, Y_c).  Each timed call is a burst of
``fastrnn.bench.STEPS`` steps (the runners of :mod:`fastrnn.bench`); the median per step is in
``extra_info["median_us_per_step"]``.

The threads case: 1 or 2 Python threads, each with its own stream (its own PyTorch state, its own
ONNX Runtime feed) doing ``THREAD_STEPS`` steps; the kernels release the GIL, so two streams on
two cores should do close to twice the steps per second (``extra_info["steps_per_second"]``).
"""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Iterator

import pytest

import fastrnn
from fastrnn.bench import STEP_CASES, STEP_PEERS, STEPS

IDLE_GAP_S = 1.0  # let the previous peer's thread pools go idle (see test_rnn_bench.py)
THREAD_STEPS = 10  # bursts of STEPS steps per thread and timed call


@pytest.fixture
def one_thread_each() -> Iterator[None]:
    """fastrnn's kernels on 1 thread during the benchmark (peers set theirs), restored after."""
    previous = fastrnn.get_num_threads() if fastrnn._threads._requested else 0
    fastrnn.set_num_threads(1)
    try:
        yield
    finally:
        fastrnn.set_num_threads(previous)


def _runner(impl: str, case_name: str) -> Any:
    run = STEP_PEERS[impl](STEP_CASES[case_name])
    if run is None:
        pytest.skip(f"{impl} is not installed or cannot run {case_name}")
    return run


@pytest.mark.parametrize("impl", list(STEP_PEERS))
@pytest.mark.parametrize("case_name", list(STEP_CASES))
def test_step(benchmark: Any, case_name: str, impl: str, one_thread_each: None) -> None:
    run = _runner(impl, case_name)
    benchmark.group = f"stream {case_name}"
    run()
    time.sleep(IDLE_GAP_S)
    # 200 bursts (fastrnn: ~0.2 s) after 20 to warm up: on a VM whose speed drifts, 40 bursts
    # (30 ms) caught a slow moment of one case often enough to move its median by 30%
    benchmark.pedantic(run, rounds=200, warmup_rounds=20)
    benchmark.extra_info.update(case=case_name, impl=impl, steps_per_call=STEPS,
                                median_us_per_step=1e6 * benchmark.stats.stats.median / STEPS)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("impl", ["fastrnn_stream", "fastrnn_stream_run20", "torch", "onnxruntime"])
@pytest.mark.parametrize("case_name", ["step_lstm_h128", "step_gru_h256"])
def test_streams_of_their_own_in_threads(benchmark: Any, case_name: str, impl: str, threads: int,
                                         one_thread_each: None) -> None:
    runners = [_runner(impl, case_name) for _ in range(threads)]  # each thread its own stream and state
    benchmark.group = f"stream threads {case_name}"
    with ThreadPoolExecutor(threads) as pool:
        def run() -> None:
            list(pool.map(lambda r: [r() for _ in range(THREAD_STEPS)], runners))

        run()
        time.sleep(IDLE_GAP_S)
        benchmark.pedantic(run, rounds=30, warmup_rounds=3)
    steps = threads * THREAD_STEPS * STEPS
    benchmark.extra_info.update(case=case_name, impl=impl, threads=threads,
                                steps_per_second=steps / benchmark.stats.stats.median)
