"""Thread control of the compiled kernels (a persistent pool shared by all calls)."""
from __future__ import annotations

import numbers


def set_num_threads(n: int) -> None:
    """Set how many threads one kernel call may use.

    Parameters
    ----------
    n : int
        ``n >= 1`` threads, or ``0`` for the default: the environment variable
        ``FASTRNN_NUM_THREADS`` if set, else every online CPU.

    Notes
    -----
    The threads are a persistent pool shared by all calls.  A call made while
    another Python thread's call holds the pool runs on its own thread alone, so
    concurrent callers never oversubscribe the cores.
    """
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"n: expected a non-negative integer, got {n!r}")
    if n < 0:
        raise ValueError(f"n: expected a non-negative integer, got {n}")
    from . import _compiled
    _compiled._require_kernels().set_num_threads(int(n))


def get_num_threads() -> int:
    """The number of threads one kernel call may use (see :func:`set_num_threads`)."""
    from . import _compiled
    return int(_compiled._require_kernels().get_num_threads())
