"""Summarise a pytest-benchmark JSON: per case, fastrnn's speedup over the fastest peer and its
share of the FLOP limit (the case's flops at the machine's sgemm/dgemm rate, measured here).

    python bench/report.py bench/results.json [--markdown]
"""
from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict

import numpy as np

from fastrnn.bench import CASES

PEERS = ("torch", "torch_packed", "onnxruntime")


def gemm_rate(dtype: str, n: int = 2048, repeat: int = 5) -> tuple:
    """The machine's GEMM rate: the best GFLOP/s of SciPy's BLAS and (when installed) PyTorch's
    matmul on a large square product, 2 threads as in the benchmarks; returns (rate, by whom)."""
    from scipy.linalg import blas
    rng = np.random.default_rng(0)
    a = np.asfortranarray(rng.standard_normal((n, n)).astype(dtype))
    gemm = blas.sgemm if dtype == "float32" else blas.dgemm
    gemm(1.0, a, a)
    rates = {"scipy": 2 * n ** 3 / min(_timed(lambda: gemm(1.0, a, a)) for _ in range(repeat)) / 1e9}
    try:
        import torch
    except ImportError:
        pass
    else:
        torch.set_num_threads(2)
        t = torch.from_numpy(np.ascontiguousarray(a))
        t @ t
        rates["torch"] = 2 * n ** 3 / min(_timed(lambda: t @ t) for _ in range(repeat)) / 1e9
    best = max(rates, key=rates.get)
    return rates[best], best


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("json")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    with open(args.json) as f:
        data = json.load(f)
    med = defaultdict(dict)
    for b in data["benchmarks"]:
        med[b["extra_info"]["case"]][b["extra_info"]["impl"]] = b["stats"]["median"]
    measured = {d: gemm_rate(d) for d in ("float32", "float64")}
    rates = {d: r for d, (r, _) in measured.items()}
    print(f"machine GEMM rate (best of SciPy BLAS / PyTorch, 2048^3, 2 threads): "
          f"sgemm {rates['float32']:.0f} GFLOP/s ({measured['float32'][1]}), "
          f"dgemm {rates['float64']:.0f} GFLOP/s ({measured['float64'][1]})\n")
    head = ["case", "fastrnn ms", "best peer", "peer ms", "speedup", "reference ms", "% of FLOP limit"]
    rows = []
    for name, case in CASES.items():
        m = med.get(name, {})
        if "fastrnn" not in m:
            continue
        peers = {p: m[p] for p in PEERS if p in m}
        best = min(peers, key=peers.get) if peers else None
        fast = m["fastrnn"]
        limit = case.flops() / (rates[case.dtype] * 1e9)
        rows.append([name, f"{fast * 1e3:.3f}", best or "-", f"{peers[best] * 1e3:.3f}" if best else "-",
                     f"{peers[best] / fast:.2f}x" if best else "-",
                     f"{m['reference'] * 1e3:.1f}" if "reference" in m else "-", f"{100 * limit / fast:.0f}%"])
    if args.markdown:
        print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
        for r in rows:
            print("| " + " | ".join(r) + " |")
    else:
        widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
        for r in [head] + rows:
            print("  ".join(str(x).rjust(w) for x, w in zip(r, widths)))


if __name__ == "__main__":
    main()
