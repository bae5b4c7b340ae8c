"""Thread control of the compiled kernels (a persistent pool shared by all calls)."""
from __future__ import annotations

import numbers

from . import _options

MAX_THREADS = 64  # what the kernels' pool uses at most (FR_MAX_THREADS)
_requested = 0     # 0: the default


def set_num_threads(n: int) -> None:
    """Set how many threads one kernel call may use.

    Parameters
    ----------
    n : int
        ``n >= 1`` threads, or ``0`` for the default: the environment variable
        ``FASTRNN_NUM_THREADS`` (read at import) if set, else every online CPU.

    Notes
    -----
    The threads are a persistent pool shared by all calls, and so are the cores:
    a call alone takes up to ``n`` of them; calls from several Python threads at
    once each take what the others leave, waiting for one when none is free, so
    concurrent callers never oversubscribe the machine.  The thread count never
    changes a result's bits.
    """
    global _requested
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"n: expected a non-negative integer, got {n!r}")
    if n < 0:
        raise ValueError(f"n: expected a non-negative integer, got {n}")
    _requested = int(n)
    _options.changed()


_online = 0  # the online CPUs, once known


def get_num_threads() -> int:
    """The number of threads one kernel call may use (see :func:`set_num_threads`)."""
    global _online
    n = _requested or _options.ENV_THREADS
    if not n:
        if not _online:  # asked once: every call reads the thread count
            from . import _compiled
            _online = int(_compiled.require_kernels().online_cpus())
        n = _online
    return min(int(n), MAX_THREADS)
