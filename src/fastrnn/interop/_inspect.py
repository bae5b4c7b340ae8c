"""``python -m fastrnn inspect PATH``: the RNNs in a TF1 artifact, as :func:`find_tf_cells` finds them."""
from __future__ import annotations

import argparse
import sys
from typing import Any, List, Optional

from ._discover import find_tf_cells
from ._tf import EMA_DEFAULT


def main(argv: Optional[List[str]] = None, out: Any = None) -> int:
    """Print the table of RNNs found in PATH.

    Returns 0 when at least one RNN was found, 1 when none was, 2 when the
    file could not be read (the reason on stderr).
    """
    out = out or sys.stdout
    parser = argparse.ArgumentParser(
        prog="python -m fastrnn inspect",
        description="List the RNNs in a TensorFlow 1.x checkpoint, SavedModel directory or frozen graph (.pb), "
                    "with the fastrnn cells that reproduce them (class, units, input depth, peepholes, num_proj "
                    "read off the variables; forget_bias, clips and activation at TF's defaults).")
    parser.add_argument("path", help="checkpoint prefix (or .index / directory with a 'checkpoint' file), "
                                     "SavedModel directory, or frozen GraphDef file")
    parser.add_argument("--ema", nargs="?", const=EMA_DEFAULT, default=None, metavar="NAME",
                        help="restore the ExponentialMovingAverage shadows (optionally the EMA's name)")
    args = parser.parse_args(argv)
    try:
        cells = find_tf_cells(args.path, ema=args.ema or False)
    except (ValueError, TypeError) as e:
        print(f"python -m fastrnn inspect: error: {e}", file=sys.stderr)
        return 2
    print(cells.describe(), file=out)
    return 0 if cells else 1
