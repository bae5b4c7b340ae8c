"""``python -m fastrnn``: the classic tutorial example, then a short timing table.

Runs the tutorial batch from "tf.nn.dynamic_rnn in depth" (batch 4, 2 steps,
depth 3, 5 units, sequence_length [2, 1, 2, 2]) through a BasicRNNCell, a
BasicLSTMCell and a two-layer LSTM [4, 5], prints what comes back and what it
means, then times the compiled path against the NumPy reference (and PyTorch and
ONNX Runtime when they are installed).
"""
from __future__ import annotations

import argparse
import sys
from typing import Any, List

import numpy as np

import fastrnn as fr
from fastrnn import bench

X_BATCH = np.array([
    # t = 0      t = 1
    [[0, 1, 2], [9, 8, 7]],  # instance 0
    [[3, 4, 5], [5, 1, 9]],  # instance 1 (length 1: its t = 1 is padding)
    [[6, 7, 8], [6, 5, 4]],  # instance 2
    [[9, 0, 1], [3, 2, 1]],  # instance 3
], dtype=np.float32)
SEQ_LENGTH = np.array([2, 1, 2, 2])


def _arr(a: np.ndarray) -> str:
    return np.array2string(a, precision=4, suppress_small=True, max_line_width=100)


def tutorial(out: Any = None) -> None:
    out = out or sys.stdout  # looked up per call, so redirected/captured stdout works
    p = lambda *a: print(*a, file=out)  # noqa: E731
    p("fastrnn tutorial: inputs X (batch 4, time 2, depth 3), sequence_length [2, 1, 2, 2]\n")
    cells = [("BasicRNNCell(5)", fr.BasicRNNCell(5, seed=42)),
             ("BasicLSTMCell(5)", fr.BasicLSTMCell(5, seed=42)),
             ("MultiRNNCell([BasicLSTMCell(4), BasicLSTMCell(5)])",
              fr.MultiRNNCell([fr.BasicLSTMCell(4, seed=1), fr.BasicLSTMCell(5, seed=2)]))]
    for title, cell in cells:
        outputs, state = fr.dynamic_rnn(cell, X_BATCH, sequence_length=SEQ_LENGTH, dtype=np.float32)
        p(f"== {title}")
        p(f"outputs: shape {outputs.shape} = (batch, time, output_size); every step's output")
        p(_arr(outputs))
        p("  row 1 at t = 1 is all zeros: past its length the output is zeroed")
        if isinstance(state, np.ndarray):
            p(f"state: shape {state.shape} = (batch, state_size); the last *valid* output of each row")
            p(_arr(state))
        elif isinstance(state, fr.LSTMStateTuple):
            p(f"state: LSTMStateTuple(c {state.c.shape}, h {state.h.shape}); h is the last valid output, "
              "c the memory that outputs never show")
            p("c =\n" + _arr(state.c) + "\nh =\n" + _arr(state.h))
        else:
            p(f"state: a tuple of {len(state)} layer states, each an LSTMStateTuple; the output is the last "
              "layer's h")
            for i, s in enumerate(state):
                p(f"  layer {i}: c {s.c.shape}, h {s.h.shape}")
        last = outputs[np.arange(4), SEQ_LENGTH - 1]
        final_h = state if isinstance(state, np.ndarray) else (state.h if hasattr(state, "h") else state[-1].h)
        same = np.array_equal(last, final_h)
        p(f"  outputs[b, len[b]-1] == final h for every row: {same}; "
          f"outputs[:, -1] == final h: {np.array_equal(outputs[:, -1], final_h)} (row 1 is padding there)\n")
    p("Next: examples/ in the source tree (static vs dynamic, bidirectional, chunked sequences, a regression")
    p("head, a TF1 checkpoint); fastrnn.interop loads TF1 checkpoints (no TensorFlow), PyTorch and Keras weights.")


def timing(args: argparse.Namespace, out: Any = None) -> None:
    """The short timing table: ``dynamic_rnn`` of one case on the compiled path, the NumPy
    reference and the peers that are installed, with the runners of :mod:`fastrnn.bench`
    (what ``bench/`` measures in full)."""
    out = out or sys.stdout
    case = bench.Case("main", args.cell, args.batch, args.time, args.units, dtype=args.dtype)
    reference = bench.reference_runner(case)
    assert reference is not None  # (None for bfloat16 cases only)
    candidates = [("fastrnn (compiled)", bench.fastrnn_runner(case)), ("fastrnn.reference (NumPy)", reference)]
    # (name, its thread pool, runner): a peer that is not installed, or cannot run this case, has no runner
    peers = [(f"PyTorch {_version('torch')}", "PyTorch intra-op", bench.torch_runner(case, threads=args.threads)),
             (f"ONNX Runtime {_version('onnxruntime')}", "ONNX Runtime",
              bench.onnxruntime_runner(case, threads=args.threads) if args.dtype == "float32" else None)]
    candidates += [(name, run) for name, _, run in peers if run is not None]
    print(f"\ntiming dynamic_rnn: {args.cell.upper()} batch {args.batch}, time {args.time}, "
          f"units {args.units} (depth = units), {args.dtype} -- median of up to {args.repeat} runs", file=out)
    print(f"  threads: {_limit_threads(args.threads, [pool for _, pool, run in peers if run is not None])}",
          file=out)
    live = sys.stderr.isatty()  # a progress line redrawn in place; one line per step in a log
    rows = []
    for i, (name, fn) in enumerate(candidates):
        print(f"  [{i + 1}/{len(candidates)}] timing {name} ...", end="\r" if live else "\n", file=sys.stderr,
              flush=True)
        rows.append((name, 1e3 * bench.median_seconds(fn, args.repeat, warmup=1, budget_s=3.0)))
    if live:
        print(" " * 60, end="\r", file=sys.stderr)
    base = rows[0][1]
    print(f"  {'implementation':<28}{'median ms':>12}{'vs fastrnn':>14}", file=out)
    for name, ms in rows:
        print(f"  {name:<28}{ms:>12.3f}{ms / base:>13.1f}x", file=out)
    (got, _), (want, _) = candidates[0][1](), candidates[1][1]()
    np.testing.assert_allclose(got, want, rtol=1e-4 if args.dtype == "float32" else 1e-9, atol=1e-5)
    print("  (compiled outputs checked against the reference; the full comparison: bench/ in the source tree)",
          file=out)


def _version(module: str) -> str:
    try:
        from importlib.metadata import version
        return version(module).split("+")[0]
    except Exception:  # not installed (its runner is None then)
        return ""


def _limit_threads(threads: int, peer_pools: List[str]) -> str:
    """Apply ``--threads`` to the thread pools there are, and say which.

    fastrnn's kernels use its own pool (``fastrnn.set_num_threads``); every
    product of the NumPy reference goes through NumPy's BLAS, whose pool
    threadpoolctl can limit at run time (OPENBLAS/OMP_NUM_THREADS only work
    before NumPy loads); the pools of the peers that run (``peer_pools``) are
    set by their runners.
    """
    fr.set_num_threads(threads)
    try:
        from threadpoolctl import threadpool_limits  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        blas = "not limited (install threadpoolctl, or set OPENBLAS_NUM_THREADS before starting Python)"
    else:
        threadpool_limits(threads)
        blas = str(threads)
    peers = [f"{name}: {threads}" for name in peer_pools]
    return ", ".join([f"{threads} (fastrnn: {fr.get_num_threads()}"] + peers + [f"NumPy BLAS: {blas})"])


def main(argv: Any = None) -> int:
    args_in = sys.argv[1:] if argv is None else list(argv)
    if args_in and args_in[0] == "inspect":  # python -m fastrnn inspect PATH: the RNNs in a TF1 artifact
        from .interop._inspect import main as inspect_main
        return inspect_main(args_in[1:])
    parser = argparse.ArgumentParser(prog="python -m fastrnn", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cell", choices=["lstm", "gru", "rnn"], default="lstm", help="cell to time (lstm)")
    parser.add_argument("--batch", type=int, default=16, help="batch rows to time (16)")
    parser.add_argument("--time", type=int, default=100, help="time steps to time (100)")
    parser.add_argument("--units", type=int, default=256, help="num_units, also the input depth (256)")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32", help="(float32)")
    parser.add_argument("--threads", type=int, default=2,
                        help="threads for the timing: fastrnn's kernels, PyTorch's intra-op pool and, with "
                             "threadpoolctl installed, the NumPy/SciPy BLAS pools (the reference) (2)")
    parser.add_argument("--repeat", type=int, default=20, help="timed runs per implementation (20)")
    parser.add_argument("--no-timing", action="store_true", help="only the tutorial example")
    parser.add_argument("--probe", action="store_true",
                        help="only the machine probe: the CPU, the kernels fastrnn runs on it, its FMA peaks "
                             "(float32/float64, per core and on --threads cores at once), bfloat16/AMX, L2 "
                             "(about 3 s)")
    parser.add_argument("--json", action="store_true", help="with --probe: print it as JSON")
    args = parser.parse_args(argv)
    if args.json and not args.probe:
        parser.error("--json goes with --probe")
    for name in ("batch", "time", "units", "threads", "repeat"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1")
    if args.probe:
        machine = bench.probe(cores=args.threads)
        if args.json:
            import json
            print(json.dumps(machine.as_dict(), indent=1))
        else:
            print("\n".join(machine.lines()))
        return 0
    tutorial()
    if not args.no_timing:
        previous = fr.get_num_threads() if fr._threads._requested else 0
        try:
            timing(args)
        finally:  # main() is also called in-process (tests, notebooks): leave the process as it was
            fr.set_num_threads(previous)
    return 0


if __name__ == "__main__":
    sys.exit(main())
