"""fastrnn vs its peers, one pytest-benchmark group per case (``--benchmark-group-by=group``).

    pip install '.[bench]' torch==2.13.0
    python -m pytest bench/ --benchmark-only --benchmark-json=bench/results.json
    python bench/report.py bench/results.json
"""
from __future__ import annotations

import time

import pytest

from fastrnn.bench import CASES, PEERS

IDLE_GAP_S = 1.0
SLOW_FOR_REFERENCE = {"lstm_b256_h512", "lstm_b64_h512", "lstm_varlen_b64"}


@pytest.mark.parametrize("impl", list(PEERS))
@pytest.mark.parametrize("case_name", list(CASES))
def test_forward(benchmark, case_name, impl):
    case = CASES[case_name]
    run = PEERS[impl](case)
    if run is None:
        pytest.skip(f"{impl} not installed or not applicable to {case_name}")
    benchmark.group = case_name
    benchmark.extra_info.update(case=case_name, impl=impl, flops=case.flops())
    run()  # warm up (first-call allocations, thread pools), then let every pool go idle:
    # PyTorch's OpenMP threads and ONNX Runtime's intra-op threads spin for a while after
    # their work and would otherwise steal the cores from whatever is measured next.
    time.sleep(IDLE_GAP_S)
    if impl == "reference" and case_name in SLOW_FOR_REFERENCE:
        benchmark.pedantic(run, rounds=3, warmup_rounds=1)
    else:
        benchmark.pedantic(run, rounds=15, warmup_rounds=2)
