"""Benchmarks run from bench/: make its helper modules importable, refuse Debug/editable builds, and
give fastrnn the same thread count as every peer (fastrnn.bench.THREADS)."""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))


def pytest_configure(config):
    import fastrnn
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if os.path.abspath(fastrnn.__file__).startswith(os.path.join(here, "src")):
        raise SystemExit("bench/: fastrnn is imported from the source tree; benchmark an installed Release build")
    from fastrnn.bench import THREADS
    fastrnn.set_num_threads(THREADS)


def pytest_benchmark_update_machine_info(config, machine_info):
    """Every run records the machine probe (CPU, the kernels chosen, FMA peaks on THREADS cores at
    once): ``bench/report.py`` holds each case against it."""
    from fastrnn.bench import THREADS, probe
    machine_info["fastrnn_probe"] = probe(cores=THREADS).as_dict()
