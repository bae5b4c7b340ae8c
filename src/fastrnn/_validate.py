"""Validation at the Python boundary -- the one place arguments are checked.

Every public entry point (reference and compiled alike) passes its arguments
through here before any computation, so bad input gets a ``ValueError`` or
``TypeError`` that names the argument and says what was expected and what was
given.  What comes out is safe to hand to the C kernels: C-contiguous float32
or float64 arrays of checked shapes, int64 lengths within ``[0, time]``, and a
state that is a fresh copy in the cell's structure (so nothing the caller owns
is ever written to or aliased).

Conversions follow TensorFlow's feed rule (a value fed to a placeholder is converted
to the placeholder's dtype), in one place, :func:`fed`: with an explicit dtype (a
driver's ``dtype=``, a built cell's weights in a one-step call, a ``Stream``'s dtype)
any real-valued array -- bool, integer, float16/32/64 -- is converted to it; without
one, what is fed must already be float32 or float64, and the error says to pass
``dtype``.  Complex, object and string arrays are never converted.
"""
from __future__ import annotations

import numbers
from typing import Any, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from ._structure import flatten, is_sequence, pack_as

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

# The kernels hand batch * time to BLAS as a C int (csrc/fr_kernels.c checks it
# too, but only after the inputs were copied); refusing it here costs nothing
# and keeps a zero-stride np.broadcast_to view from being materialized first.
MAX_ROWS = 2**31 - 1


def _shape(x: Any) -> str:
    return str(tuple(np.shape(x)))


def positive_int(value: Any, name: str) -> int:
    """An int > 0 (Python or NumPy integer; bool is rejected)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected a positive integer, got {value!r} ({type(value).__name__})")
    if value <= 0:
        raise ValueError(f"{name}: expected a positive integer, got {value}")
    return int(value)


def non_negative_int(value: Any, name: str) -> int:
    """An int >= 0 (Python or NumPy integer; bool is rejected)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected a non-negative integer, got {value!r} ({type(value).__name__})")
    if value < 0:
        raise ValueError(f"{name}: expected a non-negative integer, got {value}")
    return int(value)


def flag(value: Any, name: str) -> bool:
    """A bool (``True``/``False``, NumPy bools, or the integers 0 and 1)."""
    if isinstance(value, (bool, np.bool_)) or (isinstance(value, numbers.Integral) and value in (0, 1)):
        return bool(value)
    raise TypeError(f"{name}: expected True or False, got {value!r} ({type(value).__name__})")


def optional_callable(value: Any, name: str) -> Any:
    """None or a callable."""
    if value is not None and not callable(value):
        raise TypeError(f"{name}: expected a callable or None, got {value!r} ({type(value).__name__})")
    return value


def output_size(cell: Any, name: str = "cell.output_size") -> int:
    """A cell's ``output_size`` as an int (what the generic loop allocates outputs with)."""
    size = cell.output_size
    if isinstance(size, (bool, np.bool_)) or not isinstance(size, numbers.Integral):
        raise TypeError(f"{name}: expected an int, got {size!r}")
    return int(size)


def cell_output(out: Any, batch: int, size: int, name: str = "cell output") -> np.ndarray:
    """What a cell's ``__call__`` returned as its output: a float ``[batch, size]`` array."""
    arr = float_array(out, name)
    if arr.shape != (batch, size):
        raise ValueError(f"{name}: expected shape ({batch}, {size}), got {arr.shape}")
    return arr


def optional_float(value: Any, name: str, positive: bool = False) -> Optional[float]:
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a number or None, got {value!r} ({type(value).__name__})")
    value = float(value)
    if np.isnan(value) or (positive and value < 0):
        raise ValueError(f"{name}: expected a {'non-negative ' if positive else ''}number, got {value}")
    return value


def float_dtype(dtype: Any, name: str = "dtype") -> np.dtype:
    """``dtype`` as float32 or float64 (accepts NumPy dtypes, types and names)."""
    try:
        d = np.dtype(getattr(dtype, "as_numpy_dtype", dtype))
    except TypeError:
        raise TypeError(f"{name}: expected float32 or float64, got {dtype!r}") from None
    if d not in FLOAT_DTYPES:
        raise TypeError(f"{name}: expected float32 or float64, got {d}")
    return d


def as_array(x: Any, name: str) -> np.ndarray:
    """``np.asarray(x)``, with a clear error for None, a non-array object and ragged lists."""
    if x is None:
        raise TypeError(f"{name}: expected an array of numbers, got None")
    try:
        arr = np.asarray(x)
    except ValueError as e:  # ragged nested lists
        raise ValueError(f"{name}: cannot be converted to an array ({e})") from None
    if arr.dtype.kind == "O" and arr.ndim == 0:  # a dict, a cell, any object that is not numbers
        raise TypeError(f"{name}: expected an array of numbers, got {type(x).__name__}")
    return arr


_KINDS = {"i": "integer", "u": "unsigned integer", "b": "boolean", "c": "complex", "O": "object",
          "U": "string", "S": "bytes"}
REAL_KINDS = "biuf"  # what the feed rule converts: bool, (unsigned) integer, float of any width


def _what(dtype: np.dtype) -> str:
    return str(dtype) if dtype.kind == "f" else f"{_KINDS.get(dtype.kind, str(dtype))} ({dtype})"


# Without an explicit dtype, what to do about a bool, integer or float16 array.
PASS_DTYPE = ("; pass dtype=np.float32 (or np.float64) to convert it, as TensorFlow converts what is fed to a "
              "float placeholder")


def fed(arr: np.ndarray, name: str, dtype: Optional[np.dtype], hint: str = PASS_DTYPE) -> np.ndarray:
    """TensorFlow's feed rule for an array fed to a run (checked, not yet converted).

    With an explicit ``dtype`` any real-valued array (bool, integer, float16/32/64) will be
    converted to it; without one (None) it must be float32 or float64 already, and ``hint``
    says what to do otherwise.  Complex, object, string and bytes arrays are refused either way.
    """
    kind = arr.dtype.kind
    if dtype is not None:
        if kind not in REAL_KINDS:
            raise TypeError(f"{name}: expected real values (bool, integer or float) to convert to {dtype}, "
                            f"got {_what(arr.dtype)}")
        return arr
    if arr.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name}: expected float32 or float64 values, got {_what(arr.dtype)}"
                        f"{hint if kind in REAL_KINDS else ''}")
    return arr


def float_array(x: Any, name: str) -> np.ndarray:
    """``x`` as an ndarray of float32/float64 (no copy when it already is one): what is not fed
    to a run (weights, what a user's cell returns) is never converted from another kind."""
    return fed(as_array(x, name), name, None, "; convert it with np.asarray(x, dtype=np.float32)")


def is_c_array(x: np.ndarray, dtype: Any) -> bool:
    """Whether ``x`` is already a C-contiguous, aligned array of ``dtype`` (what the kernels read)."""
    flags = x.flags
    return bool(x.dtype == dtype and flags.c_contiguous and flags.aligned)


def c_array(x: np.ndarray, dtype: Any) -> np.ndarray:
    """``x`` as a C-contiguous, aligned array of ``dtype``: copied only when it is not one
    already (Fortran order, strides, another dtype, or data at an address that is not a
    multiple of the item size -- e.g. ``np.frombuffer(buf, offset=1)``)."""
    if is_c_array(x, dtype):  # the usual case, without np.require's argument parsing
        return x  # (a few microseconds per array and call)
    return np.require(x, dtype=dtype, requirements=["C", "A"])


def explicit_dtype(dtype: Any) -> Optional[np.dtype]:
    """A driver's ``dtype`` argument: None, or float32/float64."""
    return None if dtype is None else float_dtype(dtype)


def sequence_length(lengths: Any, batch: int, time: int) -> Optional[np.ndarray]:
    """``sequence_length`` as a fresh int64 vector with values in ``[0, time]``."""
    if lengths is None:
        return None
    arr = np.asarray(lengths)
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise ValueError(f"sequence_length: expected integers, got non-integral values {arr.tolist()}")
    elif arr.dtype.kind not in "iu":
        raise TypeError(f"sequence_length: expected an integer vector, got dtype {arr.dtype}")
    if arr.ndim != 1:
        raise ValueError(f"sequence_length: expected a 1-D vector of {batch} lengths, got shape {arr.shape}")
    if arr.shape[0] != batch:
        raise ValueError(f"sequence_length: expected {batch} lengths (one per batch row), got {arr.shape[0]}")
    if arr.size:
        lo, hi = arr.min(), arr.max()
        if lo < 0:
            raise ValueError(f"sequence_length: lengths must be >= 0, got {lo} at row {int(np.argmin(arr))}")
        if hi > time:
            raise ValueError(
                f"sequence_length: lengths must be <= the time axis ({time}), got {hi} at row {int(np.argmax(arr))}")
    return np.array(arr, dtype=np.int64, order="C")


def _has_arrays(value: Any) -> bool:
    return any(isinstance(leaf, np.ndarray) for leaf in flatten(value))


def _leaves(value: Any, state_size: Any) -> Optional[list]:
    """The leaves of ``value`` if it nests like ``state_size`` (tuples and lists alike), else None.

    At a leaf of ``state_size`` a nested list of numbers is one array (not a
    structure), and a one-item list or tuple holding an array is unwrapped.
    """
    if is_sequence(state_size):
        if not is_sequence(value) or len(value) != len(state_size):
            return None
        out: list = []
        for v, s in zip(value, state_size):
            sub = _leaves(v, s)
            if sub is None:
                return None
            out += sub
        return out
    if is_sequence(value) and _has_arrays(value):
        inner = flatten(value)
        return inner if len(inner) == 1 else None
    return [value]


def _describe(value: Any) -> str:
    """A short picture of a (nested) state: its structure, with shapes at the leaves."""
    if is_sequence(value) and _has_arrays(value):
        items = ", ".join(_describe(v) for v in value)
        if isinstance(value, list):
            return f"[{items}]"
        if hasattr(value, "_fields"):
            return f"{type(value).__name__}({items})"
        return f"({items}{',' if len(value) == 1 else ''})"
    if isinstance(value, np.ndarray):
        return f"array{value.shape}"
    if is_sequence(value):
        try:
            return f"{type(value).__name__} of shape {np.shape(value)}"
        except ValueError:  # ragged
            pass
    return type(value).__name__


def state(value: Any, state_size: Any, batch: int, dtype: np.dtype, name: str, explicit: bool = False) -> Any:
    """A copy of ``value`` laid out like ``state_size``, each leaf ``[batch, size]`` in ``dtype``.

    The nesting must be ``state_size``'s (tuples, lists and namedtuples are
    interchangeable; the result is repacked into the cell's own structure, e.g.
    ``LSTMStateTuple``).  Only matching the structure, not the leaf count, keeps
    a two-layer LSTM state from being read in the wrong order.  Each leaf is fed to
    the run's ``dtype`` (:func:`fed`): float32/float64 leaves always, any real-valued
    leaf when the run's dtype is ``explicit``.
    """
    sizes = flatten(state_size)
    leaves = _leaves(value, state_size)
    if leaves is None:
        raise ValueError(
            f"{name}: expected a state with the structure of state_size={state_size!r} "
            f"({len(sizes)} array{'s' if len(sizes) != 1 else ''}), got {_describe(value)}")
    out = []
    for i, (leaf, size) in enumerate(zip(leaves, sizes)):
        where = name if len(sizes) == 1 else f"{name}[{i}] (leaf {i} of state_size={state_size!r})"
        arr = fed(as_array(leaf, where), where, dtype if explicit else None)
        if arr.ndim != 2 or arr.shape[0] != batch or arr.shape[1] != size:
            raise ValueError(f"{where}: expected shape ({batch}, {size}), got {arr.shape}")
        out.append(np.array(arr, dtype=dtype, order="C"))
    return pack_as(state_size, out)


def step_inputs(inputs: Any, depth: Optional[int], name: str = "inputs", dtype: Optional[np.dtype] = None,
                hint: str = PASS_DTYPE) -> np.ndarray:
    """One time step's inputs: a ``[batch, depth]`` array, fed to ``dtype`` (:func:`fed`;
    not yet converted)."""
    x = fed(as_array(inputs, name), name, dtype, hint)
    if x.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D array [batch, depth], got shape {x.shape}")
    if x.shape[1] == 0:
        raise ValueError(f"{name}: expected depth >= 1 (the last axis), got shape {x.shape}")
    if depth is not None and x.shape[1] != depth:
        raise ValueError(f"{name}: expected depth {depth} (the cell was built for it), got {x.shape[1]}")
    return x


class Run(NamedTuple):
    """A validated request to run a cell over a sequence.

    ``x`` is C-contiguous in ``dtype`` and in the caller's major order; the
    state is a fresh copy; ``lengths`` is None or int64 in ``[0, time]``.
    """

    x: np.ndarray
    lengths: Optional[np.ndarray]
    state: Any
    dtype: np.dtype
    time_major: bool
    batch: int
    time: int
    precision: Optional[str] = None  # None (the dtype's own arithmetic) or "bfloat16"


PRECISIONS = ("bfloat16",)


def precision(value: Any, dtype: np.dtype, name: str = "precision") -> Optional[str]:
    """``None`` (exact float32/float64 arithmetic) or ``"bfloat16"`` (float32 arrays only)."""
    if value is None:
        return None
    if not isinstance(value, str) or value not in PRECISIONS:
        raise ValueError(f"{name}: expected None or 'bfloat16', got {value!r}")
    if dtype != np.float32:
        raise ValueError(f"{name}: 'bfloat16' computes from float32 arrays (float32 in and out), but this call "
                         f"computes in {dtype}; pass dtype=np.float32 (or float32 inputs), or precision=None")
    return value


def check_precision_cell(cell: Any, builtin: bool, value: Optional[str], name: str = "cell") -> None:
    """Reduced precision is the built-in cells' arithmetic: another cell cannot honour it."""
    if value is not None and not builtin:
        raise ValueError(f"precision={value!r}: {name} ({type(cell).__name__}) runs its own step, which only "
                         "the built-in cells (and MultiRNNCells of them) can run in reduced precision; "
                         "pass precision=None")


def ensure_built(cell: Any, depth: int, dtype: np.dtype, name: str = "inputs") -> None:
    """Build a built-in cell for ``depth``/``dtype``, or check that it was built for them."""
    build = getattr(cell, "_ensure_built", None)
    if build is not None:
        build(depth, dtype, name)


def _exact_zero_state(cell: Any) -> bool:
    """Whether ``cell.zero_state`` is ``RNNCell``'s own (marked ``exact_zeros``): fresh
    C-contiguous zeros of the requested dtype in exactly the structure of ``state_size`` --
    everything :func:`state` would check and copy -- so that its result is used as it is
    (a few microseconds per call).  A cell that overrides it gets its result checked."""
    return getattr(getattr(type(cell), "zero_state", None), "exact_zeros", False) is True


def sequence_inputs(inputs: Any, dtype: Optional[np.dtype], time_major: bool, name: str = "inputs") -> np.ndarray:
    """A sequence's inputs, ``[batch, time, depth]`` (``[time, batch, depth]`` if ``time_major``):
    fed to ``dtype`` (:func:`fed`; None: float32/float64 as they are), C-contiguous."""
    x = fed(as_array(inputs, name), name, dtype)
    layout = "[time, batch, depth]" if time_major else "[batch, time, depth]"
    if x.ndim != 3:
        raise ValueError(f"{name}: expected a 3-D array {layout}, got shape {x.shape}")
    if x.shape[2] == 0:
        raise ValueError(f"{name}: expected depth >= 1 (the last axis of {layout}), got shape {x.shape}")
    if x.shape[0] * x.shape[1] > MAX_ROWS:  # before a copy could materialize a broadcast view
        raise ValueError(f"{name}: expected at most {MAX_ROWS} rows (batch * time), got shape {x.shape}")
    return c_array(x, x.dtype if dtype is None else dtype)


def initial(cell: Any, initial_state: Any, batch: int, dtype: np.dtype, explicit: bool, name: str) -> Any:
    """The state a run starts from: a fresh copy of ``initial_state`` fed to ``dtype``, or the
    cell's zero state (checked only when the cell overrides ``zero_state``)."""
    if initial_state is not None:
        return state(initial_state, cell.state_size, batch, dtype, name, explicit)
    st = cell.zero_state(batch, dtype)
    return st if _exact_zero_state(cell) else state(st, cell.state_size, batch, dtype, "cell.zero_state()")


def prepare(cell: Any, inputs: Any, lengths: Any, initial_state: Any, dtype: Any,
            time_major: bool, name: str = "inputs", state_name: str = "initial_state",
            reduced: Any = None, cell_name: str = "cell") -> Run:
    """Validate the arguments of a dynamic driver (``reduced``: its ``precision``).  The run
    computes in ``dtype`` when given (inputs and state converted to it, TF's feed rule), else
    in the inputs' own float32/float64 dtype."""
    check_cell(cell, cell_name)
    time_major = flag(time_major, "time_major")
    explicit = explicit_dtype(dtype)
    x = sequence_inputs(inputs, explicit, time_major, name)
    d = x.dtype
    prec = precision(reduced, d)
    time, batch = (x.shape[0], x.shape[1]) if time_major else (x.shape[1], x.shape[0])
    lens = sequence_length(lengths, batch, time)
    ensure_built(cell, x.shape[2], d, name)
    st = initial(cell, initial_state, batch, d, explicit is not None, state_name)
    return Run(x, lens, st, d, time_major, batch, time, prec)


def step_call(cell: Any, inputs: Any, state_value: Any, reduced: Any) -> Tuple[np.ndarray, Any, Optional[str]]:
    """Validate a built-in cell's one-step call ``cell(inputs, state, precision=reduced)``:
    ``(x, state, precision)``, ``x`` C-contiguous and the state a fresh copy, both in the
    cell's dtype, the cell built for them.

    A one-step call has no ``dtype`` argument: the cell's own dtype (its weights', or the
    ``dtype`` it was constructed with) is the explicit dtype of TF's feed rule.  A cell
    without one yet takes float32/float64 inputs as they are and is built in their dtype.
    """
    target = cell._feed_dtype()
    x = step_inputs(inputs, None, "inputs", target,
                    "; a one-step call converts its inputs to the cell's dtype, which this cell does not have "
                    "yet: build it first (cell.build(depth, np.float32)), construct it with dtype=np.float32, "
                    "or convert them with np.asarray(x, dtype=np.float32)")
    d = x.dtype if target is None else target
    prec = precision(reduced, d)
    ensure_built(cell, x.shape[1], d)
    st = state(state_value, cell.state_size, x.shape[0], d, "state", explicit=target is not None)
    return c_array(x, d), st, prec


def static_inputs(inputs: Any, name: str = "inputs", dtype: Any = None) -> np.ndarray:
    """The list of per-step ``[batch, depth]`` inputs of a static driver, stacked time-major
    (each step fed as :func:`fed` says: converted later when ``dtype`` is given)."""
    if isinstance(inputs, np.ndarray) or not isinstance(inputs, Sequence) or isinstance(inputs, str):
        raise TypeError(f"{name}: expected a list of [batch, depth] arrays (one per time step), "
                        f"got {type(inputs).__name__}")
    if len(inputs) == 0:
        raise ValueError(f"{name}: expected a non-empty list of [batch, depth] arrays, got an empty list")
    explicit = explicit_dtype(dtype)
    steps = [step_inputs(x, None, f"{name}[{t}]", explicit) for t, x in enumerate(inputs)]
    first = steps[0].shape
    for t, x in enumerate(steps):
        if x.shape != first:
            raise ValueError(f"{name}[{t}]: every step must have the shape of {name}[0] {first}, got {x.shape}")
    return np.stack(steps)


def check_cell(cell: Any, name: str) -> None:
    """``cell`` is an RNN cell object (not a class, not None)."""
    if isinstance(cell, type):
        raise TypeError(f"{name}: expected an RNN cell object, got the class {cell.__name__} itself; "
                        f"create one first, e.g. {cell.__name__}(num_units)")
    missing = [a for a in ("state_size", "output_size", "zero_state") if not hasattr(cell, a)]
    if missing or not callable(cell):
        raise TypeError(f"{name}: expected an RNN cell (state_size, output_size, zero_state, __call__), "
                        f"got {type(cell).__name__} without {missing or ['__call__']}")
