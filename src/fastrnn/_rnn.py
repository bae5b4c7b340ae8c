"""The public drivers: the shared TF1 drivers bound to the compiled runner.

Built-in cells (and MultiRNNCells of them) run on the C kernels, layer by
layer over the whole sequence, backward directions reversed inside the kernel
(no copies); any other cell runs through the reference's generic loop.
"""
from __future__ import annotations

from typing import Any, Tuple

import numpy as np

from . import _compiled
from . import reference as _ref
from ._drivers import make_drivers
from ._validate import Run


def _run(cell: Any, run: Run, reverse: bool = False) -> Tuple[np.ndarray, Any]:
    layers = _compiled.layer_specs(cell)
    if layers is None:
        return _ref._run_generic(cell, run, reverse)
    return _compiled.run_sequence(cell, layers, run, reverse)


dynamic_rnn, static_rnn, bidirectional_dynamic_rnn, static_bidirectional_rnn = make_drivers(_run, "fastrnn")
