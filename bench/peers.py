"""Each implementation's runner for a case: a zero-argument callable, or None when not installed.

Every runner is built once (weights, sessions, packed inputs) outside the timed call; the timed
call is one forward pass over the case's batch, 2 threads for everyone.
"""
from __future__ import annotations

from typing import Any, Callable, Optional

import numpy as np

from cases import Case

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


def torch_runner(case: Case, packed: bool = False) -> Optional[Runner]:
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(THREADS)
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


def onnxruntime_runner(case: Case) -> Optional[Runner]:
    try:
        import onnxruntime as ort
        from onnx import TensorProto, helper, numpy_helper
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
        attrs = {"hidden_size": n, "direction": "bidirectional" if dirs == 2 else "forward"}
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
    opts.intra_op_num_threads = THREADS
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
