"""Leak check: fastrnn's workload under valgrind; fails on a definite leak from fastrnn's code.

    python tools/leak_check.py [--rounds N] [--valgrind-log PATH]

Runs ``tests/test_memory.py``'s ``workload`` (every driver, the one-step call,
``set_weights``, and calls the Cython layer rejects) N times in a child Python
under ``valgrind --leak-check=full`` with ``PYTHONMALLOC=malloc`` (so every
Python object is a real malloc block that valgrind can follow).  CPython itself
leaves some blocks unfreed at exit; those are not fastrnn's, so instead of a
suppression file that would go stale with every Python release, the loss
records are read and the check fails only when a *definitely lost* record has a
frame in fastrnn's extension or C kernels (``_kernels``, ``fr_*``, ``fastrnn``).
Any other definite loss whose block count grows with N would also show up as a
record with >= N blocks; those fail the check too unless they come from a
module's one-time initialisation (``PyInit_*``: SciPy's f2py modules leak a
few hundred small strings at import), so a per-call leak of Python objects
cannot hide behind CPython's frames.  valgrind's invalid reads, writes and
frees fail the check when their stack has a frame of fastrnn's; uses of
uninitialised values when they happen in fastrnn's own code (the top frames).
CPython 3.11 under valgrind reports uninitialised values in its own
refcounting, also while importing ``_kernels``; those are not fastrnn's.

valgrind does not decode AVX-512, so the kernels are forced to AVX2
(``FASTRNN_ISA=avx2``); the AVX-512 path is covered by the ASan run instead.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
OURS = re.compile(r"_kernels|\bfr_[a-z0-9_]+|/fastrnn/")


def workload(rounds: int) -> None:
    sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))
    import numpy as np
    from test_memory import inputs, make_cells, workload as run

    cell, bw = make_cells()
    x, lens, state = inputs(np.random.default_rng(0), cell)
    run(cell, bw, x, lens, state, calls=rounds)


def blocks(log: str):
    """valgrind's messages: runs of non-blank lines, without the ``==pid==`` prefix."""
    out, current = [], []
    for line in log.splitlines():
        body = re.sub(r"^==\d+== ?", "", line)
        if body.strip():
            current.append(body)
        elif current:
            out.append("\n".join(current))
            current = []
    if current:
        out.append("\n".join(current))
    return out


def problems(log: str, rounds: int):
    """The messages that fail the check (see the module docstring)."""
    bad = []
    for text in blocks(log):
        head = text.splitlines()[0]
        leak = re.search(r"bytes in ([\d,]+) blocks are definitely lost", head)
        if leak:
            per_call = int(leak.group(1).replace(",", "")) >= rounds and "PyInit_" not in text
            if OURS.search(text) or per_call:
                bad.append(text)
        elif re.match(r"(Invalid (read|write|free)|Mismatched free|Source and destination overlap)", head):
            if OURS.search(text):
                bad.append(text)
        elif re.match(r"(Conditional jump|Use of uninitialised|Syscall param)", head):
            if OURS.search("\n".join(text.splitlines()[1:4])):  # inside fastrnn's own code, not below it
                bad.append(text)
    return bad


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=50)
    ap.add_argument("--valgrind-log", default=None)
    ap.add_argument("--workload", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.workload:
        workload(args.rounds)
        return 0

    log_path = args.valgrind_log or tempfile.mkstemp(suffix=".valgrind.log")[1]
    env = dict(os.environ, PYTHONMALLOC="malloc", FASTRNN_ISA="avx2", OPENBLAS_NUM_THREADS="1")
    cmd = ["valgrind", "--leak-check=full", "--show-leak-kinds=definite", "--errors-for-leak-kinds=definite",
           "--num-callers=40", f"--log-file={log_path}", sys.executable, os.path.abspath(__file__),
           "--workload", "--rounds", str(args.rounds)]
    print(" ".join(cmd), flush=True)
    proc = subprocess.run(cmd, env=env)
    with open(log_path) as f:
        log = f.read()
    summary = [line for line in log.splitlines() if re.search(r"definitely lost:|indirectly lost:|ERROR SUMMARY", line)]
    print("\n".join(summary))
    if proc.returncode != 0 and "ERROR SUMMARY" not in log:
        print(f"valgrind run failed (exit {proc.returncode}); log: {log_path}", file=sys.stderr)
        return 1
    bad = problems(log, args.rounds)
    for text in bad:
        print(f"\n{text}", file=sys.stderr)
    ok = not bad
    print(f"leak check: {'clean' if ok else 'FAILED'} ({args.rounds} rounds; log {log_path})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
