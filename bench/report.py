"""Summarise a pytest-benchmark JSON: per case, fastrnn's speedup over the fastest peer, its share
of the machine's FMA peak, and whether the case meets its target.

    python bench/report.py bench/results.json [--markdown]

The peak is the machine probe's (``python -m fastrnn --probe``: 12 independent FMA chains in the
instruction set fastrnn runs, on THREADS cores at once), recorded by ``bench/conftest.py`` in the
same run; a JSON without it is held against a probe made now.  A case is met when fastrnn is at
least its target times faster than the fastest peer, or (float32/float64) runs at >= 90% of the
peak: the physical limit, beyond which no peer can be beaten by the target's margin.
bfloat16 cases (``*_bf16``) are held against PyTorch's bfloat16 module and report fastrnn's own
float32 time of the same case too.  Concurrent-caller cases (``bench/test_threads_bench.py``)
get a table of their throughput against one caller.
"""
from __future__ import annotations

import argparse
import json
from collections import defaultdict
from typing import Any, Dict, List

from fastrnn.bench import CASES, THREADS, Machine, probe

PEERS = ("torch", "torch_packed", "onnxruntime")  # for *_bf16 cases "torch" is its bfloat16 module
LIMIT_SHARE = 0.90
# Speedup over the fastest peer each case must reach (issue 11; bfloat16: issue 16, vs PyTorch bf16).
TARGETS = {"lstm_b1_h128": 2.0, "lstm_b16_h256": 1.2, "lstm_b64_h512": 1.2, "lstm_b256_h512": 1.2,
           "gru_b16_h256": 1.5, "rnn_b16_h256": 2.0, "lstm_varlen_b64": 2.0, "bilstm_b16_h256": 1.2,
           "lstm2x_b16_h256": 1.2, "lstm_f64_b16": 1.8,
           "lstm_b1_h128_bf16": 1.5, "lstm_b16_h256_bf16": 1.5, "lstm_b64_h512_bf16": 1.5,
           "lstm_b256_h512_bf16": 1.5, "gru_b16_h256_bf16": 1.5}


def machine_of(data: Dict[str, Any]) -> Machine:
    recorded = data.get("machine_info", {}).get("fastrnn_probe")
    if recorded:
        return Machine(**recorded)
    print("(no probe in this JSON: probing now)")
    return probe(cores=THREADS)


def table(head: List[str], rows: List[List[str]], markdown: bool) -> None:
    if markdown:
        print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
        for r in rows:
            print("| " + " | ".join(r) + " |")
    else:
        widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
        for r in [head] + rows:
            print("  ".join(str(x).rjust(w) for x, w in zip(r, widths)))
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("json")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    with open(args.json) as f:
        data = json.load(f)
    m = machine_of(data)
    cores = THREADS
    print(f"{m.cpu} ({m.vendor} family {m.family} model {m.model}); fastrnn's kernels: {m.isa}; "
          f"FMA peak on {cores} cores at once: float32 {m.peak(cores=cores, dtype='float32'):.0f} GFLOP/s, "
          f"float64 {m.peak(cores=cores, dtype='float64'):.0f} GFLOP/s (per core {m.peak_f32:.0f} / "
          f"{m.peak_f64:.0f}); AVX512-BF16 {'yes' if m.avx512_bf16 else 'no'}, "
          f"AMX {'yes' if m.amx else 'no'}; bfloat16 path at batch 16: {m.bf16_path_batch16}\n")

    med: Dict[str, Dict[str, float]] = defaultdict(dict)
    callers: Dict[str, Dict[int, float]] = defaultdict(dict)
    for b in data["benchmarks"]:
        info = b["extra_info"]
        if "impl" in info:
            med[info["case"]][info["impl"]] = b["stats"]["median"]
        elif "callers" in info:
            callers[info["case"]][info["callers"]] = info["calls_per_second"]

    head = ["case", "fastrnn ms", "best peer", "peer ms", "speedup", "target", "% of FMA peak", "met",
            "reference ms"]
    rows, met_all = [], True
    for name, case in CASES.items():
        t = med.get(name, {})
        if "fastrnn" not in t:
            continue
        peers = {p: t[p] for p in PEERS if p in t}
        best = min(peers, key=peers.get) if peers else None
        fast = t["fastrnn"]
        speedup = peers[best] / fast if best else None
        bf16 = case.precision == "bfloat16"
        share = None if bf16 else case.flops() / (m.peak(case.dtype, cores) * 1e9) / fast
        target = TARGETS.get(name)
        met = target is not None and ((speedup is not None and speedup >= target)
                                      or (share is not None and share >= LIMIT_SHARE))
        met_all &= met or target is None
        rows.append([name, f"{fast * 1e3:.3f}", best or "-", f"{peers[best] * 1e3:.3f}" if best else "-",
                     f"{speedup:.2f}x" if speedup else "-", f"{target:.1f}x" if target else "-",
                     f"{100 * share:.0f}%" if share is not None else "-",
                     "-" if target is None else ("yes" if met else "NO"),
                     f"{t['reference'] * 1e3:.1f}" if "reference" in t else "-"])
    if rows:
        table(head, rows, args.markdown)
        print(f"every case met: {'yes' if met_all else 'no'}\n")

    bf16_rows = []
    for name, case in CASES.items():
        if case.precision != "bfloat16" or "fastrnn" not in med.get(name, {}):
            continue
        fp32 = med.get(name[:-len("_bf16")], {}).get("fastrnn")
        fast = med[name]["fastrnn"]
        bf16_rows.append([name, f"{fast * 1e3:.3f}", f"{fp32 * 1e3:.3f}" if fp32 else "-",
                          f"{fp32 / fast:.2f}x" if fp32 else "-"])
    if bf16_rows:
        table(["case", "fastrnn bf16 ms", "fastrnn fp32 ms", "bf16 speedup over fp32"], bf16_rows, args.markdown)

    if callers:
        rows = [[case] + [f"{c[n]:.0f}/s ({c[n] / c[1]:.2f}x)" if n in c and 1 in c else "-" for n in (1, 2, 4)]
                for case, c in callers.items()]
        table(["concurrent callers: case", "1 caller", "2 callers", "4 callers"], rows, args.markdown)


if __name__ == "__main__":
    main()
