"""Benchmark cases and the runners of fastrnn and its peers (PyTorch, ONNX Runtime).

One implementation, used by ``bench/`` (pytest-benchmark, the full comparison) and by
``python -m fastrnn`` (its short timing table).  A runner is a zero-argument callable
that does one forward pass over a case's batch; every runner is built once (weights,
sessions, packed inputs) outside the timed call, and every implementation runs on
``THREADS`` threads.  The step runners (``STEP_PEERS``, ``bench/test_stream_bench.py``)
stream one sequence a step at a time, the state fed back, on 1 thread.  A peer that is not installed has no runner (None); nothing here
imports PyTorch or ONNX Runtime until a runner for them is asked for.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional

import numpy as np

from ._probe import Machine, probe

__all__ = ["Case", "CASES", "THREADS", "PEERS", "fastrnn_runner", "reference_runner", "torch_runner",
           "onnxruntime_runner", "median_seconds", "Machine", "probe", "STEPS", "STEP_CASES", "STEP_PEERS",
           "fastrnn_stream_runner", "fastrnn_stream_chunks_runner", "fastrnn_cell_call_runner", "torch_step_runner",
           "onnxruntime_step_runner"]


@dataclass(frozen=True)
class Case:
    name: str
    cell: str            # "lstm", "gru", "rnn"
    batch: int
    time: int
    units: int
    dtype: str = "float32"
    layers: int = 1
    bidirectional: bool = False
    ragged: bool = False  # lengths uniform in [10, time]
    precision: Optional[str] = None  # "bfloat16": fastrnn's precision=, PyTorch's module in bfloat16

    @property
    def gates(self) -> int:
        return {"lstm": 4, "gru": 3, "rnn": 1}[self.cell]

    def inputs(self, seed: int = 0) -> np.ndarray:
        rng = np.random.default_rng(seed)
        return rng.standard_normal((self.batch, self.time, self.units)).astype(self.dtype)

    def lengths(self, seed: int = 1) -> Optional[np.ndarray]:
        if not self.ragged:
            return None
        return np.random.default_rng(seed).integers(10, self.time + 1, self.batch).astype(np.int32)

    def flops(self) -> float:
        """2 * sum(lengths) * (depth + units) * gates * units, per layer and direction."""
        lens = self.lengths()
        steps = float(lens.sum()) if lens is not None else float(self.batch * self.time)
        return 2.0 * steps * (2 * self.units) * self.gates * self.units * self.layers * (2 if self.bidirectional else 1)


CASES = {c.name: c for c in [
    Case("lstm_b1_h128", "lstm", 1, 100, 128),
    Case("lstm_b16_h256", "lstm", 16, 100, 256),
    Case("lstm_b64_h512", "lstm", 64, 50, 512),
    Case("lstm_b256_h512", "lstm", 256, 50, 512),
    Case("gru_b16_h256", "gru", 16, 100, 256),
    Case("rnn_b16_h256", "rnn", 16, 100, 256),
    Case("lstm_varlen_b64", "lstm", 64, 200, 256, ragged=True),
    Case("bilstm_b16_h256", "lstm", 16, 100, 256, bidirectional=True),
    Case("lstm2x_b16_h256", "lstm", 16, 100, 256, layers=2),
    Case("lstm_f64_b16", "lstm", 16, 100, 256, dtype="float64"),
    # precision="bfloat16" against PyTorch's module in bfloat16 (bfloat16 inputs); float32 arrays
    Case("lstm_b1_h128_bf16", "lstm", 1, 100, 128, precision="bfloat16"),
    Case("lstm_b16_h256_bf16", "lstm", 16, 100, 256, precision="bfloat16"),
    Case("lstm_b64_h512_bf16", "lstm", 64, 50, 512, precision="bfloat16"),
    Case("lstm_b256_h512_bf16", "lstm", 256, 50, 512, precision="bfloat16"),
    Case("gru_b16_h256_bf16", "gru", 16, 100, 256, precision="bfloat16"),
]}


THREADS = 2
Runner = Callable[[], Any]


def _fastrnn_cell(module: Any, case: Case, seed: int) -> Any:
    make = {"lstm": lambda: module.BasicLSTMCell(case.units, seed=seed),
            "gru": lambda: module.GRUCell(case.units, seed=seed),
            "rnn": lambda: module.BasicRNNCell(case.units, seed=seed)}[case.cell]
    if case.layers == 1:
        return make()
    return module.MultiRNNCell([make() for _ in range(case.layers)])


def fastrnn_runner(case: Case, module: Any = None) -> Runner:
    if module is None:
        import fastrnn as module
    x, lengths = case.inputs(), case.lengths()
    fw = _fastrnn_cell(module, case, 0)
    kw = {} if case.precision is None else {"precision": case.precision}
    if case.bidirectional:
        bw = _fastrnn_cell(module, case, 1)
        return lambda: module.bidirectional_dynamic_rnn(fw, bw, x, sequence_length=lengths, **kw)
    return lambda: module.dynamic_rnn(fw, x, sequence_length=lengths, **kw)


def reference_runner(case: Case) -> Optional[Runner]:
    import fastrnn.reference as ref
    if case.precision is not None:
        return None  # its bfloat16 emulation rounds in NumPy: no measure of anything
    return fastrnn_runner(case, ref)


def _torch(case: Case, threads: int) -> Any:
    """``(torch, case's torch dtype)`` with PyTorch on ``threads`` threads, or None when it is not installed."""
    try:
        import torch  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return None
    torch.set_num_threads(threads)
    if case.precision == "bfloat16":  # the module and its inputs in bfloat16, as PyTorch users run it
        return torch, torch.bfloat16
    return torch, (torch.float64 if case.dtype == "float64" else torch.float32)


def torch_runner(case: Case, packed: bool = False, threads: int = THREADS) -> Optional[Runner]:
    found = _torch(case, threads)
    if found is None:
        return None
    torch, dtype = found
    cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[case.cell]
    net = cls(case.units, case.units, num_layers=case.layers, bidirectional=case.bidirectional,
              batch_first=True).to(dtype).eval()
    x = torch.from_numpy(case.inputs()).to(dtype)
    lengths = case.lengths()
    if not packed:
        def run() -> Any:
            with torch.inference_mode():
                return net(x)
        return run
    if lengths is None:
        return None
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
    lens = torch.from_numpy(lengths.astype(np.int64))

    def run_packed() -> Any:
        with torch.inference_mode():
            out, state = net(pack_padded_sequence(x, lens, batch_first=True, enforce_sorted=False))
            return pad_packed_sequence(out, batch_first=True, total_length=case.time), state
    return run_packed


def _onnxruntime() -> Any:
    """The onnxruntime module, or None when it or onnx (which builds the graphs) is not installed."""
    try:
        import onnx  # type: ignore[import-not-found, unused-ignore]  # noqa: F401
        import onnxruntime as ort  # type: ignore[import-not-found, import-untyped, unused-ignore]
    except ImportError:
        return None
    return ort


def _onnx_rnn_node(case: Case, rng: np.random.Generator, layer: int, depth: int, dirs: int,
                   inputs: List[str], outputs: List[str]) -> Any:
    """``(node, initializers)``: one ONNX LSTM/GRU/RNN node of ``case``'s cell, its weights
    ``W{layer}``, ``R{layer}``, ``B{layer}`` random (``inputs``: the node's inputs after X, W, R, B)."""
    from onnx import helper, numpy_helper  # type: ignore[import-not-found, unused-ignore]
    g, n = case.gates, case.units
    w = (rng.uniform(-0.1, 0.1, (dirs, g * n, depth))).astype(case.dtype)
    r = (rng.uniform(-0.1, 0.1, (dirs, g * n, n))).astype(case.dtype)
    b = np.zeros((dirs, 2 * g * n), case.dtype)
    names = [f"W{layer}", f"R{layer}", f"B{layer}"]
    inits = [numpy_helper.from_array(a, nm) for a, nm in zip((w, r, b), names)]
    attrs: Dict[str, Any] = {"hidden_size": n, "direction": "bidirectional" if dirs == 2 else "forward"}
    op = {"lstm": "LSTM", "gru": "GRU", "rnn": "RNN"}[case.cell]
    if op == "GRU":
        attrs["linear_before_reset"] = 0  # TF1 semantics: reset gate before the product
    return helper.make_node(op, [inputs[0], *names, *inputs[1:]], outputs, **attrs), inits


def _onnx_session(ort: Any, graph: Any, threads: int) -> Any:
    from onnx import helper  # type: ignore[import-not-found, unused-ignore]
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)], ir_version=8)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def onnxruntime_runner(case: Case, threads: int = THREADS) -> Optional[Runner]:
    ort = _onnxruntime()
    if ort is None:
        return None
    from onnx import TensorProto, helper, numpy_helper  # type: ignore[import-not-found, unused-ignore]
    if case.dtype != "float32" or case.precision is not None:
        return None  # ONNX Runtime's CPU RNN kernels are float32 only ("does not support double yet")
    rng = np.random.default_rng(0)
    n, dirs = case.units, (2 if case.bidirectional else 1)
    elem = TensorProto.DOUBLE if case.dtype == "float64" else TensorProto.FLOAT
    nodes, inits = [], []
    prev = "X"
    for layer in range(case.layers):
        depth = n if layer == 0 else n * dirs
        y = f"Y{layer}"
        node, weights = _onnx_rnn_node(case, rng, layer, depth, dirs, [prev, "seq_lens"], [y, f"Yh{layer}"])
        nodes.append(node)
        inits += weights
        # Y is [time, dirs, batch, n] -> [time, batch, dirs * n], the next layer's input
        nodes.append(helper.make_node("Transpose", [y], [f"T{layer}"], perm=[0, 2, 1, 3]))
        inits.append(numpy_helper.from_array(np.array([0, 0, -1], np.int64), f"shape{layer}"))
        prev = "Y" if layer + 1 == case.layers else f"L{layer}"
        nodes.append(helper.make_node("Reshape", [f"T{layer}", f"shape{layer}"], [prev]))
    graph = helper.make_graph(
        nodes, f"{case.name}",
        [helper.make_tensor_value_info("X", elem, [case.time, case.batch, n]),
         helper.make_tensor_value_info("seq_lens", TensorProto.INT32, [case.batch])],
        [helper.make_tensor_value_info("Y", elem, [case.time, case.batch, dirs * n])], initializer=inits)
    sess = _onnx_session(ort, graph, threads)
    # ONNX RNN ops are time-major: the transpose of the caller's batch-major inputs is timed too,
    # as a user holding [batch, time, depth] data would pay for it.
    x = case.inputs()
    lengths = case.lengths()
    lens = lengths if lengths is not None else np.full(case.batch, case.time, np.int32)

    def run() -> Any:
        return sess.run(None, {"X": np.ascontiguousarray(x.transpose(1, 0, 2)), "seq_lens": lens})
    return run


PEERS = {
    "fastrnn": fastrnn_runner,
    "reference": reference_runner,
    "torch": torch_runner,
    "torch_packed": lambda case: torch_runner(case, packed=True),
    "onnxruntime": onnxruntime_runner,
}


# ---- streaming: one step at a time, the state fed back ------------------------------------------
# A step runner does STEPS consecutive steps of one live sequence per call (so that a peer's
# per-call setup, e.g. PyTorch's inference mode, is paid once per burst, as in a streaming loop);
# per-step times are the call's time / STEPS.  Each runner holds its own state: give each thread
# its own runner.  Depth = units; every implementation on 1 thread.

STEPS = 100
STEP_CASES = {c.name: c for c in [
    Case("step_lstm_h128", "lstm", 1, 1, 128),
    Case("step_lstm_h256", "lstm", 1, 1, 256),
    Case("step_gru_h128", "gru", 1, 1, 128),
    Case("step_gru_h256", "gru", 1, 1, 256),
]}


def fastrnn_stream_runner(case: Case, steps: int = STEPS, module: Any = None) -> Runner:
    """``fr.Stream.step(x, out=y)``, ``steps`` times."""
    if module is None:
        import fastrnn as module
    stream = module.Stream(_fastrnn_cell(module, case, 0), batch_size=case.batch, dtype=case.dtype)
    x = case.inputs()[:, 0]
    out = np.empty((case.batch, case.units), case.dtype)

    def run() -> Any:
        for _ in range(steps):
            stream.step(x, out=out)
        return out
    return run


def fastrnn_stream_chunks_runner(case: Case, steps: int = STEPS, chunk: int = 20) -> Runner:
    """``fr.Stream.run`` of ``chunk``-step chunks, ``steps`` steps in all: the same work as
    :func:`fastrnn_stream_runner` in ``steps / chunk`` calls (what batching steps saves)."""
    import fastrnn
    stream = fastrnn.Stream(_fastrnn_cell(fastrnn, case, 0), batch_size=case.batch, dtype=case.dtype)
    x = np.ascontiguousarray(np.repeat(case.inputs(), chunk, axis=1))

    def run() -> Any:
        for _ in range(steps // chunk):
            out = stream.run(x)
        return out
    return run


def fastrnn_cell_call_runner(case: Case, steps: int = STEPS) -> Runner:
    """A cell's one-step call ``cell(x, state)`` with the state fed back: what a Stream saves."""
    import fastrnn
    cell = _fastrnn_cell(fastrnn, case, 0)
    x = case.inputs()[:, 0]
    state = [cell.zero_state(case.batch, case.dtype)]

    def run() -> Any:
        for _ in range(steps):
            out, state[0] = cell(x, state[0])
        return out
    return run


def fastrnn_dynamic_rnn_step_runner(case: Case, steps: int = STEPS) -> Runner:
    """A one-step ``dynamic_rnn(cell, x[:, None], initial_state=state)`` with the state fed back:
    a TF1 program's token-by-token loop, ported as it is."""
    import fastrnn
    cell = _fastrnn_cell(fastrnn, case, 0)
    x = case.inputs()[:, :1].copy()
    state = [cell.zero_state(case.batch, case.dtype)]

    def run() -> Any:
        for _ in range(steps):
            out, state[0] = fastrnn.dynamic_rnn(cell, x, initial_state=state[0])
        return out
    return run


def torch_step_runner(case: Case, steps: int = STEPS, threads: int = 1) -> Optional[Runner]:
    """``nn.LSTMCell`` / ``GRUCell`` / ``RNNCell`` under ``torch.inference_mode()``, the state fed back."""
    found = _torch(case, threads)
    if found is None:
        return None
    torch, dtype = found
    cls = {"lstm": torch.nn.LSTMCell, "gru": torch.nn.GRUCell, "rnn": torch.nn.RNNCell}[case.cell]
    net = cls(case.units, case.units).to(dtype).eval()
    x = torch.from_numpy(case.inputs()[:, 0].copy())
    zeros = torch.zeros(case.batch, case.units, dtype=dtype)
    state: List[Any] = [(zeros, zeros) if case.cell == "lstm" else zeros]

    def run() -> Any:
        with torch.inference_mode():
            for _ in range(steps):
                state[0] = net(x, state[0])
        return state[0]
    return run


def onnxruntime_step_runner(case: Case, steps: int = STEPS, threads: int = 1) -> Optional[Runner]:
    """``session.run`` of a one-step LSTM/GRU/RNN graph (inputs X, initial_h[, initial_c]; outputs
    Y_h[, Y_c]), the state fed back."""
    ort = _onnxruntime()
    if ort is None or case.dtype != "float32":
        return None
    from onnx import TensorProto, helper  # type: ignore[import-not-found, unused-ignore]
    lstm = case.cell == "lstm"
    states = ["initial_h", "initial_c"] if lstm else ["initial_h"]
    outputs = ["Y_h", "Y_c"] if lstm else ["Y_h"]
    node, inits = _onnx_rnn_node(case, np.random.default_rng(0), 0, case.units, 1, ["X", "", *states],
                                 ["", *outputs])
    shape = [1, case.batch, case.units]
    graph = helper.make_graph(
        [node], case.name, [helper.make_tensor_value_info(n, TensorProto.FLOAT, shape) for n in ["X", *states]],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, shape) for n in outputs], initializer=inits)
    sess = _onnx_session(ort, graph, threads)
    feed = {n: np.zeros(shape, np.float32) for n in states}
    feed["X"] = case.inputs()[:, 0][None]

    def run() -> Any:
        for _ in range(steps):
            for name, value in zip(states, sess.run(outputs, feed)):
                feed[name] = value
        return feed["initial_h"]
    return run


STEP_PEERS = {
    "fastrnn_stream": fastrnn_stream_runner,
    "fastrnn_stream_run20": fastrnn_stream_chunks_runner,
    "fastrnn_cell_call": fastrnn_cell_call_runner,
    "fastrnn_dynamic_rnn_step": fastrnn_dynamic_rnn_step_runner,
    "torch": torch_step_runner,
    "onnxruntime": onnxruntime_step_runner,
}


def median_seconds(fn: Runner, repeat: int = 15, warmup: int = 2, budget_s: Optional[float] = None) -> float:
    """The median wall time of ``fn()`` over ``repeat`` runs after ``warmup`` runs (fewer runs,
    at least 3, when ``budget_s`` seconds are spent first)."""
    for _ in range(warmup):
        fn()
    times: List[float] = []
    start = time.perf_counter()
    while len(times) < repeat and (budget_s is None or len(times) < 3 or time.perf_counter() - start < budget_s):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)
