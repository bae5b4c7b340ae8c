"""How the compiled kernels run a call: instruction set, input projection, thread schedule, GEMM.

These choices change speed, never results beyond rounding (and the tests force each
one).  The kernels take them as an explicit options struct with every call
(``fr_options`` in csrc/fastrnn.h); nothing in the C library reads the environment.
The environment is read once, here, at import, for debugging and benchmarking:

=====================  =============================================  ==========
variable               values                                         default
=====================  =============================================  ==========
``FASTRNN_ISA``        ``generic``, ``avx2``, ``avx512``              the best the CPU has
``FASTRNN_XPROJ``      ``hoisted``, ``fused``                         by batch size
``FASTRNN_SCHEDULE``   ``columns``, ``rows``                          by size and CPU
``FASTRNN_BF16``       ``portable``, ``avx512_bf16``, ``amx``         the fastest the CPU has
``FASTRNN_NUM_THREADS`` a positive integer                            every online CPU
=====================  =============================================  ==========

A value outside these is a ``ValueError`` at import naming the variable, the value and
the accepted ones, and so is an instruction set or a bfloat16 path the CPU (or the
build) lacks: a typo must never silently run a slower path.  Tests override the options for a block with
:func:`override` (``gemm`` also selects SciPy's BLAS or the portable C GEMM there, as
cross-checks of the packed GEMM).
"""
from __future__ import annotations

import contextlib
import os
import threading
from dataclasses import dataclass, replace
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

__all__ = ["Options", "current", "override", "default", "ENVIRONMENT"]

CHOICES: Dict[str, Tuple[str, ...]] = {
    "isa": ("auto", "generic", "avx2", "avx512"),
    "xproj": ("auto", "hoisted", "fused"),
    "schedule": ("auto", "columns", "rows"),
    "gemm": ("packed", "blas", "portable"),
    "bf16_path": ("auto", "portable", "avx512_bf16", "amx"),
}
ENVIRONMENT = {"isa": "FASTRNN_ISA", "xproj": "FASTRNN_XPROJ", "schedule": "FASTRNN_SCHEDULE",
               "bf16_path": "FASTRNN_BF16"}
THREADS_VARIABLE = "FASTRNN_NUM_THREADS"


@dataclass(frozen=True)
class Options:
    """One set of choices (see the module docstring); ``"auto"`` lets the kernels choose."""

    isa: str = "auto"
    xproj: str = "auto"
    schedule: str = "auto"
    gemm: str = "packed"
    bf16_path: str = "auto"  # how precision="bfloat16" multiplies
    tile_rows: int = 0  # rows of the largest register tile (0: the instruction set's); tests force each

    def __post_init__(self) -> None:
        for name, accepted in CHOICES.items():
            value = getattr(self, name)
            if value not in accepted:
                raise ValueError(f"{name}: expected one of {', '.join(map(repr, accepted))}, got {value!r}")
        if isinstance(self.tile_rows, bool) or not isinstance(self.tile_rows, int) or not 0 <= self.tile_rows <= 8:
            raise ValueError(f"tile_rows: expected 0 (automatic) to 8, got {self.tile_rows!r}")


def _from_environment(environ: Any) -> Tuple[Options, Optional[int]]:
    values = {}
    for name, var in ENVIRONMENT.items():
        raw = environ.get(var)
        if raw is None or raw == "":
            continue
        accepted = [c for c in CHOICES[name] if c != "auto"]
        if raw not in accepted:
            raise ValueError(f"{var}={raw!r}: unknown value; expected one of {', '.join(accepted)} "
                             f"(or unset for the default)")
        values[name] = raw
    threads = None
    raw = environ.get(THREADS_VARIABLE)
    if raw is not None and raw != "":
        try:
            threads = int(raw, 10)
        except ValueError:
            threads = 0
        if threads < 1 or str(threads) != raw.strip():
            raise ValueError(f"{THREADS_VARIABLE}={raw!r}: expected a positive integer (or unset for every "
                             f"online CPU)")
    return Options(**values), threads


_DEFAULT, ENV_THREADS = _from_environment(os.environ)
_lock = threading.Lock()
_current = _DEFAULT
_listeners: List[Callable[[], None]] = []


def on_change(listener: Callable[[], None]) -> None:
    """Call ``listener()`` whenever the options or the thread count change (what was made for
    them -- the compiled one-step plans and stream steppers -- is made again)."""
    _listeners.append(listener)


def changed() -> None:
    """Tell the listeners the options or the thread count changed."""
    for listener in list(_listeners):
        listener()


def default() -> Options:
    """The options the process started with (the environment's, else all ``auto``)."""
    return _DEFAULT


def current() -> Options:
    """The options calls run with now."""
    return _current


@contextlib.contextmanager
def override(**changes: Any) -> Iterator[Options]:
    """Run the block with some options changed (process-wide; for tests and benchmarks), and
    restore the previous ones after it, whatever happens."""
    global _current
    with _lock:
        previous = _current
        _current = replace(previous, **changes)
        mine = _current
    changed()
    try:
        yield mine
    finally:
        with _lock:
            _current = previous
        changed()
