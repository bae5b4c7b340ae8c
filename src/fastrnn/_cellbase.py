"""What a cell *is*, shared by the product and the oracle: configuration, weights, state layout.

The built-in cells of :mod:`fastrnn` (compiled step) and of :mod:`fastrnn.reference`
(textbook NumPy step) are subclasses of the classes here.  This module holds
everything the two must agree on and nothing else: the constructor arguments and
their validation, the TF1 weight names, shapes and default initializers, the state
structure (``state_size``, ``zero_state``, how an LSTM state splits into ``(h, c)``
and a stack's state into layers) and pickling.  No arithmetic on inputs happens
here: each side supplies ``_step(x, state)`` (one validated time step).

Pickling and ``copy.deepcopy`` keep the configuration and the weights, never the
product's caches (``_cache``: packed weights and kernel descriptions, which are
specific to the CPU that made them and are rebuilt on first use).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _validate as _v
from ._activations import Activation
from ._activations import get as _get_activation
from ._structure import LSTMStateTuple, map_structure

__all__ = ["RNNCell", "LayerCell", "BasicRNNCellBase", "GRUCellBase", "LSTMCellBase", "BasicLSTMCellBase",
           "FullLSTMCellBase", "MultiRNNCellBase", "Initializer"]

Initializer = Callable[[Tuple[int, ...], np.dtype], np.ndarray]


class RNNCell:
    """Base class of recurrent cells (``tf.nn.rnn_cell.RNNCell``).

    A cell maps ``(inputs [batch, depth], state) -> (output [batch, output_size], new_state)``.
    Subclass it (or write any class with ``state_size``, ``output_size``,
    ``zero_state`` and ``__call__``) to run your own cell through the drivers.
    """

    @property
    def state_size(self) -> Any:
        """int, or a (nested) tuple of ints: the widths of the state arrays."""
        raise NotImplementedError

    @property
    def output_size(self) -> int:
        """Width of the output."""
        raise NotImplementedError

    def zero_state(self, batch_size: int, dtype: Any = np.float32) -> Any:
        """Zeros in the structure of ``state_size``, each ``[batch_size, size]``.

        Parameters
        ----------
        batch_size : int
            Number of rows (0 allowed).
        dtype : float32 or float64
        """
        if isinstance(batch_size, (bool, np.bool_)) or not isinstance(batch_size, (int, np.integer)):
            raise TypeError(f"batch_size: expected a non-negative integer, got {batch_size!r}")
        if batch_size < 0:
            raise ValueError(f"batch_size: expected a non-negative integer, got {batch_size}")
        d = _v.float_dtype(dtype)
        return map_structure(lambda size: np.zeros((int(batch_size), size), d), self.state_size)

    # The drivers use this zero_state's result as it is (fresh C-contiguous zeros in
    # the structure of state_size); a subclass that overrides it is checked instead.
    zero_state.exact_zeros = True  # type: ignore[attr-defined]

    def __call__(self, inputs: Any, state: Any, scope: Any = None) -> Tuple[np.ndarray, Any]:
        raise NotImplementedError


class _BuiltinCell(RNNCell):
    """A cell of this package: validated one-step calls, built on first use, pickled
    without the product's caches."""

    _cache: Any = None  # the product's derived data (see fastrnn._compiled); never pickled

    @property
    def built(self) -> bool:
        raise NotImplementedError

    def _ensure_built(self, depth: int, dtype: np.dtype, name: str = "inputs") -> None:
        raise NotImplementedError

    def _step(self, x: np.ndarray, state: Any, precision: Optional[str] = None) -> Tuple[np.ndarray, Any]:
        """One time step on validated arguments: ``x`` C-contiguous ``[batch, depth]`` in the
        weights' dtype, ``state`` a fresh copy in the cell's structure, ``precision`` None or
        ``"bfloat16"`` (then passed by keyword; a subclass's own ``_step`` never gets it)."""
        raise NotImplementedError

    def __call__(self, inputs: Any, state: Any, scope: Any = None, *,
                 precision: Optional[str] = None) -> Tuple[np.ndarray, Any]:
        """Run one time step.

        Parameters
        ----------
        inputs : array_like
            ``[batch, depth]``, converted to the cell's dtype (its weights', or the ``dtype``
            it was constructed with) as TensorFlow converts what is fed to a placeholder: any
            bool, integer or float values.  A cell without a dtype yet takes float32 or
            float64 inputs and is built for their depth and dtype.
        state : nested array_like
            In the structure of ``state_size``, each ``[batch, size]``; converted to the
            inputs' dtype.
        scope
            Accepted for TensorFlow compatibility; no effect.
        precision : None or "bfloat16", keyword-only
            As for :func:`fastrnn.dynamic_rnn`.

        Returns
        -------
        output : ndarray ``[batch, output_size]``
        new_state : nested ndarrays
        """
        if precision is None:
            done = self._exact_call(inputs, state)
            if done is not None:
                return done
        x, st, prec = _v.step_call(self, inputs, state, precision)
        check_precision(self, prec)
        return self._step(x, st) if prec is None else self._step(x, st, precision=prec)

    def _feed_dtype(self) -> Optional[np.dtype]:
        """The dtype a one-step call converts its inputs to: the weights' (or the one given at
        construction), None while the cell has none."""
        raise NotImplementedError

    def _exact_call(self, inputs: Any, state: Any) -> Optional[Tuple[np.ndarray, Any]]:
        """The product's shortcut for a call whose arguments need no checking or conversion
        (fastrnn._compiled.exact_step); None: validate and run as usual (always, here)."""
        return None

    def __getstate__(self) -> Dict[str, Any]:
        # the weights only: what the kernels packed from them is rebuilt where the cell lands
        # (maybe another CPU and instruction set)
        state = dict(self.__dict__)
        state.pop("_cache", None)
        state.pop("_plans", None)  # fastrnn._compiled's one-step plans
        return state

    def __setstate__(self, state: Dict[str, Any]) -> None:
        # pickle protocol 5 may hand the weights over as views of out-of-band buffers at any
        # address, read-only (dask.distributed does): own aligned, writable copies of them
        weights = state.get("_weights")
        if weights is not None:
            state["_weights"] = {k: np.require(v, requirements=["C", "A", "W", "O"]) for k, v in weights.items()}
        self.__dict__.update(state)


def _glorot_uniform(rng: np.random.Generator, shape: Tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    # TF's glorot_uniform_initializer: U(-l, l), l = sqrt(6 / (fan_in + fan_out));
    # a 1-D shape [n] has fan_in = fan_out = n.
    fan_in, fan_out = (shape[0], shape[-1])
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape).astype(dtype)


class LayerCell(_BuiltinCell):
    """A single-layer built-in cell holding TF1-named weights.

    ``kind`` is the cell family the kernels know (``"rnn"``, ``"lstm"``, ``"gru"``).
    """

    kind = ""
    _scope = "rnn_cell"
    _kernel_name = "kernel"

    def __init__(self, num_units: int, activation: Union[None, str, Activation] = None, reuse: Any = None,
                 name: Optional[str] = None, dtype: Any = None, seed: Optional[int] = None) -> None:
        self._num_units = _v.positive_int(num_units, "num_units")
        self._activation = _get_activation(activation)
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name: expected a string, got {type(name).__name__}")
        self._name = name or self._scope
        self._dtype = None if dtype is None else _v.float_dtype(dtype)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
            raise TypeError(f"seed: expected an integer or None, got {seed!r}")
        self._seed = seed
        # A new dict whenever the weights change (never mutated in place): the product's
        # caches hold the dict they were derived from and compare it by identity.
        self._weights: Optional[Dict[str, np.ndarray]] = None
        self._depth: Optional[int] = None

    # -- structure ---------------------------------------------------------
    @property
    def name(self) -> str:
        """The cell's variable scope (``basic_lstm_cell`` ... unless ``name`` was given)."""
        return self._name

    @property
    def num_units(self) -> int:
        return self._num_units

    @property
    def activation(self) -> Activation:
        return self._activation

    @property
    def state_size(self) -> Any:
        return self._num_units

    @property
    def output_size(self) -> int:
        return self._num_units

    @property
    def _recurrent_width(self) -> int:
        """Rows of the kernel that multiply the recurrent state."""
        return self._num_units

    def _weight_specs(self, depth: int) -> List[Tuple[str, Tuple[int, ...], str]]:
        """``(name, shape, initializer)`` of every weight, in TF's creation order."""
        raise NotImplementedError

    def weight_names(self) -> List[str]:
        """The TF1 names of this cell's weights below its scope (``kernel``, ``bias``, ...)."""
        return [name for name, _, _ in self._weight_specs(1)]

    def _initializer_for(self, name: str, init: str) -> Optional[Initializer]:
        return None

    # -- weights -----------------------------------------------------------
    @property
    def built(self) -> bool:
        return self._weights is not None

    @property
    def input_depth(self) -> Optional[int]:
        """The input depth the weights were built for (None before build)."""
        return self._depth

    @property
    def dtype(self) -> Optional[np.dtype]:
        """The weights' dtype (None before build, unless given at construction)."""
        return self._weights[self._kernel_name].dtype if self._weights else self._dtype

    def _feed_dtype(self) -> Optional[np.dtype]:
        return self.dtype

    def build(self, input_depth: int, dtype: Any = None) -> None:
        """Create the weights with TF1's default initializers.

        Kernels are Glorot-uniform, biases zero (GRU gate bias one), drawn from
        ``np.random.default_rng(seed)`` with the cell's ``seed``.

        Parameters
        ----------
        input_depth : int
            Width of the inputs.
        dtype : float32 or float64, optional
            Defaults to the ``dtype`` given at construction, else float32.
        """
        depth = _v.positive_int(input_depth, "input_depth")
        d = _v.float_dtype(dtype if dtype is not None else (self._dtype or np.float32))
        if self.built:
            self._check_built(depth, d, "input_depth")
            return
        rng = np.random.default_rng(self._seed)
        weights = {}
        for name, shape, init in self._weight_specs(depth):
            custom = self._initializer_for(name, init)
            if custom is not None:
                value = np.asarray(custom(shape, d))
                if value.shape != shape:
                    raise ValueError(f"initializer for {name!r}: expected shape {shape}, got {value.shape}")
            elif init == "glorot":
                value = _glorot_uniform(rng, shape, d)
            else:
                value = np.full(shape, 1.0 if init == "ones" else 0.0)
            weights[name] = np.array(value, dtype=d, order="C")
        self._weights, self._depth = weights, depth

    def _check_built(self, depth: int, dtype: np.dtype, name: str) -> None:
        if depth != self._depth:
            raise ValueError(f"{name}: depth {depth} does not match the input depth {self._depth} "
                             f"that {type(self).__name__} {self._name!r} was built for")
        if dtype != self.dtype:
            raise TypeError(f"{name}: dtype {dtype} does not match the {self.dtype} weights of "
                            f"{type(self).__name__} {self._name!r}; pass dtype={self.dtype} or use a new cell")

    def _ensure_built(self, depth: int, dtype: np.dtype, name: str = "inputs") -> None:
        if self.built:
            self._check_built(depth, dtype, name)
        else:
            self.build(depth, dtype)

    @property
    def weights(self) -> Dict[str, np.ndarray]:
        """Copies of the weights by TF1 variable name below the cell's scope ({} before build)."""
        return {k: v.copy() for k, v in (self._weights or {}).items()}

    def built_weights(self) -> Dict[str, np.ndarray]:
        """The weights themselves (not copies; never write to them), once built."""
        if self._weights is None:
            raise ValueError(f"{type(self).__name__} {self._name!r} is not built yet; call it, build() it or "
                             "set_weights() first")
        return self._weights

    def set_weights(self, mapping: Mapping) -> None:
        """Assign weights by TF1 variable name (``kernel``, ``bias``, ...).

        An unbuilt cell needs every weight and is built from the kernel's shape and
        dtype; a built cell accepts any subset.  Values are copied (and cast to the
        cell's dtype); shapes must match exactly.
        """
        if not isinstance(mapping, Mapping):
            raise TypeError(f"set_weights: expected a mapping of name -> array, got {type(mapping).__name__}")
        names = self.weight_names()
        unknown = sorted(set(mapping) - set(names), key=str)
        if unknown:
            raise ValueError(f"set_weights: unknown weight name(s) {unknown} for {type(self).__name__} "
                             f"{self._name!r}; expected names {names}")
        arrays = {k: _v.float_array(v, f"set_weights[{k!r}]") for k, v in mapping.items()}
        if self._weights is not None and self._depth is not None:  # built
            depth, dtype = self._depth, self.dtype
        else:
            missing = [n for n in names if n not in arrays]
            if missing:
                raise ValueError(f"set_weights: {type(self).__name__} {self._name!r} is not built yet, so every "
                                 f"weight is needed; missing {missing}")
            kernel = arrays[self._kernel_name]
            if kernel.ndim != 2 or kernel.shape[0] <= self._recurrent_width:
                raise ValueError(f"set_weights[{self._kernel_name!r}]: expected shape "
                                 f"(depth + {self._recurrent_width}, ...) with depth >= 1, got {kernel.shape}")
            depth, dtype = kernel.shape[0] - self._recurrent_width, kernel.dtype
        specs = {n: shape for n, shape, _ in self._weight_specs(depth)}
        for k, a in arrays.items():
            if a.shape != specs[k]:
                raise ValueError(f"set_weights[{k!r}]: expected shape {specs[k]}, got {a.shape}")
        new = dict(self._weights or {})
        new.update({k: np.array(a, dtype=dtype, order="C") for k, a in arrays.items()})
        self._weights, self._depth = new, depth

    # -- state layout ------------------------------------------------------
    def _split_state(self, state: Any) -> Tuple[np.ndarray, Optional[np.ndarray]]:
        """``(h, c)``: the recurrent state and, for LSTMs, the cell state."""
        return state, None

    def _join_state(self, h: np.ndarray, c: Optional[np.ndarray]) -> Any:
        return h

    def __repr__(self) -> str:
        return f"{type(self).__name__}(num_units={self._num_units}, name={self._name!r})"


class BasicRNNCellBase(LayerCell):
    """The most basic RNN cell: ``h' = act([x, h] @ kernel + bias)``.

    Parameters
    ----------
    num_units : int
    activation : None, str or callable
        Default tanh; also ``"relu"``, ``"sigmoid"``, ``"linear"`` or a callable.
    reuse
        Accepted for TensorFlow compatibility; no effect.
    name : str, optional
        Variable scope (default ``"basic_rnn_cell"``).
    dtype : float32 or float64, optional
        Weights' dtype if built before first use.
    seed : int, optional
        Seed of the default initializers.

    Weights: ``kernel [depth + num_units, num_units]``, ``bias [num_units]``.
    """

    kind = "rnn"
    _scope = "basic_rnn_cell"

    def _weight_specs(self, depth: int) -> List[Tuple[str, Tuple[int, ...], str]]:
        n = self._num_units
        return [("kernel", (depth + n, n), "glorot"), ("bias", (n,), "zeros")]


class GRUCellBase(LayerCell):
    """Gated Recurrent Unit cell (Cho et al. 2014), as ``tf.nn.rnn_cell.GRUCell``.

    ``r, u = sigmoid([x, h] @ gates/kernel + gates/bias)``;
    ``h' = u * h + (1 - u) * act([x, r * h] @ candidate/kernel + candidate/bias)``.

    With ``reset_after=True`` it is the Keras-2 / PyTorch / cuDNN variant, which
    applies the reset gate *after* the recurrent product and so needs a separate
    recurrent candidate bias.  Writing ``Wc = candidate/kernel`` (rows: the
    ``depth`` input rows ``Wc_x``, then the ``num_units`` recurrent rows ``Wc_h``)::

        r, u = sigmoid([x, h] @ gates/kernel + gates/bias)
        c    = act(x @ Wc_x + candidate/bias + r * (h @ Wc_h + candidate/recurrent_bias))
        h'   = u * h + (1 - u) * c

    ``u`` is Keras's ``z`` and PyTorch's ``z`` (``h' = (1 - z) * n + z * h``).
    The gate biases of Keras/PyTorch (input + recurrent) only ever appear summed,
    so ``gates/bias`` holds their sum.

    Parameters
    ----------
    num_units : int
    activation : None, str or callable
        Default tanh.
    reuse
        No effect (TensorFlow compatibility).
    kernel_initializer, bias_initializer : callable(shape, dtype), optional
        Replace the default Glorot-uniform kernels / biases (gates 1.0, candidate 0.0).
    name : str, optional
        Variable scope (default ``"gru_cell"``).
    dtype, seed
        As for :class:`BasicRNNCell`.
    reset_after : bool
        False (default): TF1's GRU.  True: the reset-after variant above.

    Weights: ``gates/kernel [depth + num_units, 2 * num_units]`` (columns r, u),
    ``gates/bias [2 * num_units]``, ``candidate/kernel [depth + num_units, num_units]``,
    ``candidate/bias [num_units]``, and with ``reset_after=True`` also
    ``candidate/recurrent_bias [num_units]`` (initialized to zeros).
    """

    kind = "gru"
    _scope = "gru_cell"
    _kernel_name = "gates/kernel"

    def __init__(self, num_units: int, activation: Union[None, str, Activation] = None, reuse: Any = None,
                 kernel_initializer: Optional[Initializer] = None, bias_initializer: Optional[Initializer] = None,
                 name: Optional[str] = None, dtype: Any = None, seed: Optional[int] = None,
                 reset_after: bool = False) -> None:
        super().__init__(num_units, activation, reuse, name, dtype, seed)
        self._kernel_initializer = _v.optional_callable(kernel_initializer, "kernel_initializer")
        self._bias_initializer = _v.optional_callable(bias_initializer, "bias_initializer")
        self._reset_after = _v.flag(reset_after, "reset_after")

    @property
    def reset_after(self) -> bool:
        """True for the Keras-2 / PyTorch variant (reset gate after the recurrent product)."""
        return self._reset_after

    def _weight_specs(self, depth: int) -> List[Tuple[str, Tuple[int, ...], str]]:
        n = self._num_units
        specs = [("gates/kernel", (depth + n, 2 * n), "glorot"), ("gates/bias", (2 * n,), "ones"),
                 ("candidate/kernel", (depth + n, n), "glorot"), ("candidate/bias", (n,), "zeros")]
        if self._reset_after:
            specs.append(("candidate/recurrent_bias", (n,), "zeros"))
        return specs

    def _initializer_for(self, name: str, init: str) -> Optional[Initializer]:
        return self._kernel_initializer if name.endswith("kernel") else self._bias_initializer


class LSTMCellBase(LayerCell):
    """The configuration of TF1's BasicLSTMCell and LSTMCell (one implementation)."""

    kind = "lstm"

    def __init__(self, num_units: int, use_peepholes: bool = False, cell_clip: Optional[float] = None,
                 initializer: Optional[Initializer] = None, num_proj: Optional[int] = None,
                 proj_clip: Optional[float] = None, forget_bias: float = 1.0, state_is_tuple: bool = True,
                 activation: Union[None, str, Activation] = None, reuse: Any = None, name: Optional[str] = None,
                 dtype: Any = None, seed: Optional[int] = None) -> None:
        super().__init__(num_units, activation, reuse, name, dtype, seed)
        self._use_peepholes = _v.flag(use_peepholes, "use_peepholes")
        self._cell_clip = _v.optional_float(cell_clip, "cell_clip", positive=True)
        self._initializer = _v.optional_callable(initializer, "initializer")
        self._num_proj = None if num_proj is None else _v.positive_int(num_proj, "num_proj")
        self._proj_clip = _v.optional_float(proj_clip, "proj_clip", positive=True)
        if self._proj_clip is not None and self._num_proj is None:
            raise ValueError("proj_clip: only meaningful with num_proj (the projection it clips)")
        forget = _v.optional_float(forget_bias, "forget_bias")
        if forget is None:
            raise TypeError("forget_bias: expected a number, got None")
        self._forget_bias = forget
        self._state_is_tuple = _v.flag(state_is_tuple, "state_is_tuple")

    @property
    def use_peepholes(self) -> bool:
        return self._use_peepholes

    @property
    def cell_clip(self) -> Optional[float]:
        return self._cell_clip

    @property
    def num_proj(self) -> Optional[int]:
        return self._num_proj

    @property
    def proj_clip(self) -> Optional[float]:
        return self._proj_clip

    @property
    def forget_bias(self) -> float:
        return self._forget_bias

    @property
    def state_is_tuple(self) -> bool:
        return self._state_is_tuple

    @property
    def _proj(self) -> int:
        return self._num_proj or self._num_units

    @property
    def state_size(self) -> Any:
        n, p = self._num_units, self._proj
        return LSTMStateTuple(n, p) if self._state_is_tuple else n + p

    @property
    def output_size(self) -> int:
        return self._proj

    @property
    def _recurrent_width(self) -> int:
        return self._proj

    def _weight_specs(self, depth: int) -> List[Tuple[str, Tuple[int, ...], str]]:
        n, p = self._num_units, self._proj
        specs = [("kernel", (depth + p, 4 * n), "glorot"), ("bias", (4 * n,), "zeros")]
        if self._use_peepholes:
            specs += [(name, (n,), "glorot") for name in ("w_f_diag", "w_i_diag", "w_o_diag")]
        if self._num_proj is not None:
            specs.append(("projection/kernel", (n, p), "glorot"))
        return specs

    def _initializer_for(self, name: str, init: str) -> Optional[Initializer]:
        return self._initializer if init == "glorot" else None

    def _split_state(self, state: Any) -> Tuple[np.ndarray, Optional[np.ndarray]]:
        if self._state_is_tuple:
            return state.h, state.c
        n = self._num_units
        return state[:, n:], state[:, :n]

    def _join_state(self, h: np.ndarray, c: Optional[np.ndarray]) -> Any:
        return LSTMStateTuple(c, h) if self._state_is_tuple else np.concatenate([c, h], axis=1)


class BasicLSTMCellBase(LSTMCellBase):
    """Basic LSTM cell (``tf.nn.rnn_cell.BasicLSTMCell``), no peepholes or projection.

    ``i, j, f, o = split([x, h] @ kernel + bias, 4)``;
    ``c' = c * sigmoid(f + forget_bias) + sigmoid(i) * act(j)``; ``h' = act(c') * sigmoid(o)``.

    Parameters
    ----------
    num_units : int
    forget_bias : float
        Added to the forget gate (default 1.0).
    state_is_tuple : bool
        True: state is ``LSTMStateTuple(c, h)``; False: ``concat([c, h], 1)``.
    activation : None, str or callable
        Default tanh.
    reuse, name, dtype, seed
        As for :class:`BasicRNNCell` (scope ``"basic_lstm_cell"``).

    Weights: ``kernel [depth + num_units, 4 * num_units]`` (gate columns i, j, f, o),
    ``bias [4 * num_units]``.
    """

    _scope = "basic_lstm_cell"

    def __init__(self, num_units: int, forget_bias: float = 1.0, state_is_tuple: bool = True,
                 activation: Union[None, str, Activation] = None, reuse: Any = None, name: Optional[str] = None,
                 dtype: Any = None, seed: Optional[int] = None) -> None:
        super().__init__(num_units, forget_bias=forget_bias, state_is_tuple=state_is_tuple,
                         activation=activation, reuse=reuse, name=name, dtype=dtype, seed=seed)


class FullLSTMCellBase(LSTMCellBase):
    """LSTM cell with optional peepholes, cell clipping and projection (``tf.nn.rnn_cell.LSTMCell``).

    Parameters
    ----------
    num_units : int
    use_peepholes : bool
        Diagonal peepholes ``w_f_diag``, ``w_i_diag`` (on c) and ``w_o_diag`` (on c').
    cell_clip : float, optional
        Clip c' to ``[-cell_clip, cell_clip]``.
    initializer : callable(shape, dtype), optional
        For the kernel, peepholes and projection (default Glorot uniform).
    num_proj : int, optional
        Project the output with ``projection/kernel [num_units, num_proj]``.
    proj_clip : float, optional
        Clip the projected output.
    num_unit_shards, num_proj_shards
        Deprecated in TF; must be None.
    forget_bias, state_is_tuple, activation, reuse, name, dtype, seed
        As for :class:`BasicLSTMCell` (scope ``"lstm_cell"``).
    """

    _scope = "lstm_cell"

    def __init__(self, num_units: int, use_peepholes: bool = False, cell_clip: Optional[float] = None,
                 initializer: Optional[Initializer] = None, num_proj: Optional[int] = None,
                 proj_clip: Optional[float] = None, num_unit_shards: Any = None, num_proj_shards: Any = None,
                 forget_bias: float = 1.0, state_is_tuple: bool = True,
                 activation: Union[None, str, Activation] = None, reuse: Any = None, name: Optional[str] = None,
                 dtype: Any = None, seed: Optional[int] = None) -> None:
        if num_unit_shards is not None or num_proj_shards is not None:
            raise ValueError("num_unit_shards / num_proj_shards: sharded variables are not supported "
                             "(deprecated in TensorFlow); pass None")
        super().__init__(num_units, use_peepholes, cell_clip, initializer, num_proj, proj_clip, forget_bias,
                         state_is_tuple, activation, reuse, name, dtype, seed)


class MultiRNNCellBase(_BuiltinCell):
    """Stack of cells run in sequence (``tf.nn.rnn_cell.MultiRNNCell``).

    The output is the last cell's; the state has one entry per layer (a tuple, or
    with ``state_is_tuple=False`` the layers' flat states concatenated).  Weights
    are named ``cell_<i>/<inner scope>/<name>``.  The same cell object may not
    appear twice (TF refuses it too: the layers would share one set of weights).
    """

    def __init__(self, cells: Sequence[Any], state_is_tuple: bool = True) -> None:
        if isinstance(cells, (str, bytes)) or not isinstance(cells, Sequence) or len(cells) == 0:
            raise ValueError(f"cells: expected a non-empty list of RNN cells, got {cells!r}")
        seen: Dict[int, int] = {}
        for i, cell in enumerate(cells):
            _v.check_cell(cell, f"cells[{i}]")
            if id(cell) in seen:
                raise ValueError(
                    f"cells[{i}]: the same cell object as cells[{seen[id(cell)]}]; the layers would share one "
                    f"set of weights (TensorFlow refuses this too). Create one cell per layer, e.g. "
                    f"MultiRNNCell([BasicLSTMCell(n) for _ in range({len(cells)})]) instead of [cell] * {len(cells)}")
            seen[id(cell)] = i
        self._cells = list(cells)
        self._state_is_tuple = _v.flag(state_is_tuple, "state_is_tuple")
        if not self._state_is_tuple:
            nested = [i for i, c in enumerate(self._cells) if not isinstance(c.state_size, (int, np.integer))]
            if nested:
                raise ValueError(f"state_is_tuple=False needs cells with flat states, but cells{nested} have "
                                 "tuple states; build them with state_is_tuple=False too")

    @property
    def cells(self) -> List[Any]:
        return list(self._cells)

    @property
    def state_is_tuple(self) -> bool:
        return self._state_is_tuple

    @property
    def name(self) -> str:
        return "multi_rnn_cell"

    @property
    def state_size(self) -> Any:
        sizes = tuple(c.state_size for c in self._cells)
        return sizes if self._state_is_tuple else int(sum(sizes))

    @property
    def output_size(self) -> int:
        return self._cells[-1].output_size  # type: ignore[no-any-return]

    @property
    def built(self) -> bool:
        return all(getattr(c, "built", True) for c in self._cells)

    def build(self, input_depth: int, dtype: Any = None) -> None:
        """Build every layer: layer 0 for ``input_depth``, layer i for layer i-1's output."""
        d = _v.float_dtype(dtype if dtype is not None else np.float32)
        self._ensure_built(_v.positive_int(input_depth, "input_depth"), d, "input_depth")

    def _feed_dtype(self) -> Optional[np.dtype]:
        first = getattr(self._cells[0], "_feed_dtype", None)  # the layer the inputs are fed to
        return first() if first is not None else None  # type: ignore[no-any-return]

    def _ensure_built(self, depth: int, dtype: np.dtype, name: str = "inputs") -> None:
        for i, cell in enumerate(self._cells):
            _v.ensure_built(cell, depth, dtype, name if i == 0 else f"cells[{i}] input (cells[{i - 1}] output)")
            depth = cell.output_size

    def _prefixes(self) -> List[str]:
        return [f"cell_{i}/{getattr(c, 'name', type(c).__name__)}/" for i, c in enumerate(self._cells)]

    @property
    def weights(self) -> Dict[str, np.ndarray]:
        """Copies of every layer's weights, named ``cell_<i>/<scope>/<name>``."""
        return {p + k: v for p, c in zip(self._prefixes(), self._cells) for k, v in getattr(c, "weights", {}).items()}

    def set_weights(self, mapping: Mapping) -> None:
        """Assign weights named ``cell_<i>/<scope>/<name>`` to the layers."""
        if not isinstance(mapping, Mapping):
            raise TypeError(f"set_weights: expected a mapping of name -> array, got {type(mapping).__name__}")
        prefixes = self._prefixes()
        unknown = [k for k in mapping if not any(isinstance(k, str) and k.startswith(p) for p in prefixes)]
        if unknown:
            raise ValueError(f"set_weights: unknown weight name(s) {unknown}; expected names starting with "
                             f"{prefixes}")
        for p, cell in zip(prefixes, self._cells):
            part = {k[len(p):]: v for k, v in mapping.items() if k.startswith(p)}
            if part:
                cell.set_weights(part)

    def _layer_states(self, state: Any) -> List[Any]:
        if self._state_is_tuple:
            return list(state)
        edges = np.cumsum([0] + [c.state_size for c in self._cells])
        return [state[:, a:b] for a, b in zip(edges[:-1], edges[1:])]

    def _join_layer_states(self, states: List[Any]) -> Any:
        return tuple(states) if self._state_is_tuple else np.concatenate(states, axis=1)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._cells!r}, state_is_tuple={self._state_is_tuple})"


# The modules whose cells' steps are this package's own: the product's and the oracle's.
BUILTIN_MODULES = ("fastrnn._cells", "fastrnn.reference")


def check_precision(cell: Any, precision: Optional[str], name: str = "cell") -> None:
    """Reduced precision is the built-in cells' arithmetic: refuse it, before anything runs, for a
    cell (or a layer of a stack) that runs its own step."""
    if precision is None:
        return
    layers = cell._cells if isinstance(cell, MultiRNNCellBase) else []
    builtin = isinstance(cell, (LayerCell, MultiRNNCellBase)) and is_builtin_step(cell, BUILTIN_MODULES)
    _v.check_precision_cell(cell, builtin, precision, name)
    for i, layer in enumerate(layers):
        check_precision(layer, precision, f"{name}.cells[{i}]")


def is_builtin_step(cell: Any, modules: Sequence[str]) -> bool:
    """Whether ``cell``'s class runs one of this package's own steps: its ``__call__`` is
    ``_BuiltinCell``'s and its ``_step`` comes from one of ``modules``.  A user's subclass
    that overrides either is run through its own ``__call__`` instead."""
    cls = type(cell)
    call = getattr(cls, "__call__", None)
    step = getattr(cls, "_step", None)
    return call is _BuiltinCell.__call__ and getattr(step, "__module__", None) in modules
