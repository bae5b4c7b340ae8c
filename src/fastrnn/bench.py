"""Benchmark cases and the runners of fastrnn and its peers (PyTorch, ONNX Runtime).

One implementation, used by ``bench/`` (pytest-benchmark, the full comparison) and by
``python -m fastrnn`` (its short timing table).  A runner is a zero-argument callable
that does one forward pass over a case's batch; every runner is built once (weights,
sessions, packed inputs) outside the timed call, and every implementation runs on
``THREADS`` threads.  A peer that is not installed has no runner (None); nothing here
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
           "onnxruntime_runner", "median_seconds", "Machine", "probe"]


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
    if case.bidirectional:
        bw = _fastrnn_cell(module, case, 1)
        return lambda: module.bidirectional_dynamic_rnn(fw, bw, x, sequence_length=lengths)
    return lambda: module.dynamic_rnn(fw, x, sequence_length=lengths)


def reference_runner(case: Case) -> Runner:
    import fastrnn.reference as ref
    return fastrnn_runner(case, ref)


def torch_runner(case: Case, packed: bool = False, threads: int = THREADS) -> Optional[Runner]:
    try:
        import torch  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return None
    torch.set_num_threads(threads)
    cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[case.cell]
    dtype = torch.float64 if case.dtype == "float64" else torch.float32
    net = cls(case.units, case.units, num_layers=case.layers, bidirectional=case.bidirectional,
              batch_first=True).to(dtype).eval()
    x = torch.from_numpy(case.inputs())
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


def onnxruntime_runner(case: Case, threads: int = THREADS) -> Optional[Runner]:
    try:
        import onnxruntime as ort  # type: ignore[import-not-found, import-untyped, unused-ignore]
        from onnx import TensorProto, helper, numpy_helper  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return None
    if case.dtype != "float32":
        return None  # ONNX Runtime's CPU RNN kernels are float32 only ("does not support double yet")
    rng = np.random.default_rng(0)
    op = {"lstm": "LSTM", "gru": "GRU", "rnn": "RNN"}[case.cell]
    g, n, dirs = case.gates, case.units, (2 if case.bidirectional else 1)
    elem = TensorProto.DOUBLE if case.dtype == "float64" else TensorProto.FLOAT
    nodes, inits = [], []
    prev = "X"
    for layer in range(case.layers):
        depth = n if layer == 0 else n * dirs
        w = (rng.uniform(-0.1, 0.1, (dirs, g * n, depth))).astype(case.dtype)
        r = (rng.uniform(-0.1, 0.1, (dirs, g * n, n))).astype(case.dtype)
        b = np.zeros((dirs, 2 * g * n), case.dtype)
        names = [f"W{layer}", f"R{layer}", f"B{layer}"]
        inits += [numpy_helper.from_array(a, nm) for a, nm in zip((w, r, b), names)]
        attrs: Dict[str, Any] = {"hidden_size": n, "direction": "bidirectional" if dirs == 2 else "forward"}
        if op == "GRU":
            attrs["linear_before_reset"] = 0  # TF1 semantics: reset gate before the product
        y = f"Y{layer}"
        nodes.append(helper.make_node(op, [prev, *names, "seq_lens"], [y, f"Yh{layer}"], **attrs))
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
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)], ir_version=8)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
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
