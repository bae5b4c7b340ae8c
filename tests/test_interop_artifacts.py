"""Every TF1 artifact without TensorFlow: training checkpoints, SavedModels, frozen graphs, discovery.

The artifacts in fixtures/artifacts/ were written by real TensorFlow
(tools/make_tf_artifacts.py); each <case>.npz holds the inputs and the outputs
TensorFlow computed from that very artifact (a training checkpoint restored
the TF1 way, the SavedModel loaded back, the frozen graph imported and run).
Discovery also runs over every checkpoint of fixtures/checkpoints/
(tools/make_tf_checkpoints.py).
"""
from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import fastrnn
from fastrnn import interop
from fastrnn.__main__ import main as fastrnn_main
from fastrnn.interop import _inspect

from helpers import assert_close, build_cell

FIXTURES = Path(__file__).parent / "fixtures"
ARTIFACTS = FIXTURES / "artifacts"
CKPTS = FIXTURES / "checkpoints"
ADAM = ARTIFACTS / "train_adam_ema"
SLOTS = ARTIFACTS / "train_slots"
SAVED = ARTIFACTS / "saved_model_peephole"
STACK_PB = ARTIFACTS / "frozen_stack.pb"
STATIC_PB = ARTIFACTS / "frozen_static.pb"


def load_npz(path):
    with np.load(path, allow_pickle=False) as z:
        data = {k: z[k] for k in z.files}
    data["meta"] = json.loads(str(data["meta"]))
    return data


def leaves(data, key):
    return [data[f"{key}/{i}"] for i in range(sum(k.startswith(key + "/") for k in data))]


def run(mod, cell, data, lengths=True):
    """(outputs, flat state) of a cell or (fw, bw) pair over the case's inputs."""
    seq = data["sequence_length"] if lengths else None
    if isinstance(cell, tuple):
        (ofw, obw), (sfw, sbw) = mod.bidirectional_dynamic_rnn(*cell, data["inputs"], sequence_length=seq)
        return np.concatenate([ofw, obw], axis=-1), [sfw, sbw]
    return mod.dynamic_rnn(cell, data["inputs"], sequence_length=seq)


def copy_tree(src, dst):
    """Copy an artifact (a checkpoint's files, a .pb, or a SavedModel directory) into dst; return its path."""
    if src.is_dir():
        shutil.copytree(src, dst / src.name)
        return dst / src.name
    if src.suffix == ".pb":
        shutil.copy(src, dst / src.name)
        return dst / src.name
    for f in src.parent.glob(src.name + ".*"):
        if f.suffix != ".npz":
            shutil.copy(f, dst / f.name)
    return dst / src.name


# -- training checkpoints: slots ignored, moving averages on request ----------------------------
def test_training_checkpoint_holds_slots_and_averages():
    names = interop.load_tf_checkpoint(ADAM)
    data = load_npz(ADAM.with_suffix(".npz"))
    assert sorted(names) == sorted(k[4:] for k in data if k.startswith("var/"))
    for n, v in names.items():
        np.testing.assert_array_equal(v, data["var/" + n], err_msg=n)
    k = "encoder/rnn/multi_rnn_cell/cell_0/lstm_cell/kernel"
    assert {k + "/Adam", k + "/Adam_1", k + "/ExponentialMovingAverage", "beta1_power", "global_step"} <= set(names)
    slots = set(interop.load_tf_checkpoint(SLOTS))
    for suffix in ("Momentum", "RMSProp", "RMSProp_1", "Adagrad", "Ftrl", "Ftrl_1"):
        assert any(n.endswith("/" + suffix) for n in slots), suffix


@pytest.mark.parametrize("module", ["fastrnn", "reference"])
@pytest.mark.parametrize("ema", [False, True, "ExponentialMovingAverage"])
def test_adam_checkpoint_restores_weights_or_averages(module, ema):
    mod = fastrnn if module == "fastrnn" else fastrnn.reference
    data = load_npz(ADAM.with_suffix(".npz"))
    cell = interop.restore_tf(build_cell(mod, data["meta"]["cell"]), ADAM, scope="encoder/rnn", ema=ema)
    out, state = run(mod, cell, data)
    key = "ema_" if ema else ""
    assert_close(out, data[key + "out"], np.float32, f"ema={ema} outputs")
    assert_close(state, leaves(data, key + "state"), np.float32, f"ema={ema} state")
    # the two goldens differ: the test can tell weights from averages
    assert np.abs(data["out"] - data["ema_out"]).max() > 0.05


@pytest.mark.parametrize("name", ["momentum/rnn", "rmsprop/rnn", "adagrad/rnn", "ftrl/rnn"])
def test_each_optimizer_slot_is_ignored(name):
    data = load_npz(SLOTS.with_suffix(".npz"))
    cell = interop.restore_tf(build_cell(fastrnn, data["meta"]["discover"][name]), SLOTS, scope=name)
    out, state = run(fastrnn, cell, data)
    assert_close(out, data[f"out/{name}"], np.float64, name)
    assert_close(state, leaves(data, f"state/{name}"), np.float64, name)


def lstm_peep():
    return fastrnn.LSTMCell(5, use_peepholes=True)


@pytest.mark.parametrize("make, scope, match", [
    (lambda: fastrnn.MultiRNNCell([lstm_peep(), fastrnn.GRUCell(3)]), "rnn",
     r"no variable\(s\) \['rnn/multi_rnn_cell"),                                          # wrong scope
    (lambda: fastrnn.MultiRNNCell([lstm_peep()]), "encoder/rnn",
     r"cell_1/gru_cell/candidate/bias'.*does not use"),                                   # a layer short
    (lambda: fastrnn.MultiRNNCell([fastrnn.LSTMCell(5), fastrnn.GRUCell(3)]), "encoder/rnn",
     r"w_f_diag'.*does not use"),                                                         # no peepholes
    (lambda: fastrnn.MultiRNNCell([lstm_peep(), fastrnn.GRUCell(4)]), "encoder/rnn",
     r"expected shape"),                                                                  # wrong size
    (lambda: fastrnn.MultiRNNCell([lstm_peep(), fastrnn.BasicRNNCell(3)]), "encoder/rnn",
     r"no variable\(s\) \['encoder/rnn/multi_rnn_cell/cell_1/basic_rnn_cell/kernel"),     # wrong class
    (lambda: fastrnn.MultiRNNCell([lstm_peep(), fastrnn.GRUCell(3, reset_after=True)]), "encoder/rnn",
     r"recurrent_bias"),                                                                  # wrong GRU variant
])
def test_training_checkpoint_still_refuses_real_mismatches(make, scope, match):
    cell = make()
    with pytest.raises(ValueError, match=match) as info:
        interop.restore_tf(cell, ADAM, scope=scope)
    assert "/Adam'" not in str(info.value)  # the message lists weights, not the optimizer's slots
    if "expected shape" not in match:  # names are checked before anything is assigned
        assert not any(c.built for c in cell.cells)


def test_missing_moving_average_names_the_weight(tmp_path):
    with pytest.raises(ValueError, match=r"no moving average 'rnn/basic_lstm_cell/kernel/ExponentialMovingAverage' "
                                         r"of weight 'rnn/basic_lstm_cell/kernel'"):
        interop.restore_tf(fastrnn.BasicLSTMCell(5), CKPTS / "basic_lstm", ema=True)
    with pytest.raises(ValueError, match=r"'encoder/rnn/multi_rnn_cell/cell_0/lstm_cell/kernel/ema'.*ExponentialMov"):
        interop.restore_tf(build_cell(fastrnn, load_npz(ADAM.with_suffix(".npz"))["meta"]["cell"]), ADAM,
                           scope="encoder/rnn", ema="ema")
    with pytest.raises(TypeError, match="ema"):
        interop.restore_tf(fastrnn.BasicLSTMCell(5), CKPTS / "basic_lstm", ema=1)
    # one average missing among many: named, and the cell is left untouched
    values = interop.load_tf_checkpoint(ADAM)
    del values["encoder/rnn/multi_rnn_cell/cell_1/gru_cell/gates/bias/ExponentialMovingAverage"]
    cell = fastrnn.MultiRNNCell([lstm_peep(), fastrnn.GRUCell(3)])
    with pytest.raises(ValueError, match=r"of weight 'encoder/rnn/multi_rnn_cell/cell_1/gru_cell/gates/bias'"):
        interop.restore_tf(cell, values, scope="encoder/rnn", ema=True)
    assert not cell.built


def test_slots_of_a_custom_named_optimizer_and_mapping_names():
    """Anything below a weight's name is auxiliary, whatever the optimizer was called."""
    rng = np.random.default_rng(0)
    k, b = rng.standard_normal((7, 16)), rng.standard_normal(16)
    mapping = {"rnn/basic_lstm_cell/kernel:0": k, "rnn/basic_lstm_cell/bias:0": b,
               "rnn/basic_lstm_cell/kernel/my_adam:0": k * 0, "rnn/basic_lstm_cell/bias/my_adam_1": b * 0,
               "rnn/basic_lstm_cell/Const_1": np.float32(1)}  # a frozen graph's per-step constant
    cell = interop.restore_tf(fastrnn.BasicLSTMCell(4), mapping)
    np.testing.assert_array_equal(cell.weights["kernel"], k)
    mapping["rnn/basic_lstm_cell/projection/kernel"] = rng.standard_normal((4, 2))
    with pytest.raises(ValueError, match="projection/kernel"):
        interop.restore_tf(fastrnn.BasicLSTMCell(4), mapping)


def test_more_ways_to_name_a_checkpoint(tmp_path):
    prefix = copy_tree(CKPTS / "basic_lstm", tmp_path)
    assert interop.checkpoint_prefix(str(prefix) + ".meta") == str(prefix)
    # a state file written on another machine names an absolute path that does not exist here
    (tmp_path / "checkpoint").write_text('model_checkpoint_path: "/elsewhere/train/basic_lstm"\n'
                                         'all_model_checkpoint_paths: "/elsewhere/train/basic_lstm"\n')
    for form in (tmp_path, tmp_path / "checkpoint"):
        assert interop.checkpoint_prefix(form) == str(prefix)
    interop.restore_tf(fastrnn.BasicLSTMCell(5), tmp_path)
    # a file that is neither a GraphDef nor a V2 checkpoint (e.g. a V1 checkpoint) says both
    v1 = tmp_path / "model.ckpt"
    v1.write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError, match=r"model.ckpt' is not a valid TensorFlow GraphDef.*nor is it a "
                                         r"TensorFlow V2 checkpoint"):
        interop.restore_tf(fastrnn.BasicLSTMCell(5), v1)


def test_scopes_and_tf2_keys():
    rng = np.random.default_rng(3)
    mapping = {f"{d}/gru_cell/{w}": rng.standard_normal(shape) for d in ("fw", "bw")
               for w, shape in (("gates/kernel", (5, 4)), ("gates/bias", (4,)), ("candidate/kernel", (5, 2)),
                                ("candidate/bias", (2,)))}
    pair = interop.restore_tf((fastrnn.GRUCell(2), fastrnn.GRUCell(2)), mapping, scope="")
    np.testing.assert_array_equal(pair[1].weights["gates/bias"], mapping["bw/gru_cell/gates/bias"])
    assert isinstance(interop.find_tf_cells(mapping)[""], tuple)
    nested = {"model/" + k: v for k, v in mapping.items()}
    interop.restore_tf((fastrnn.GRUCell(2), fastrnn.GRUCell(2)), nested, scope="model/")
    with pytest.raises(TypeError, match="scope"):
        interop.restore_tf(fastrnn.GRUCell(2), mapping, scope=1)
    half = {k: v.astype(np.float16) for k, v in mapping.items()}
    cell = interop.find_tf_cells(half)[""][0]
    assert cell.weights["gates/kernel"].dtype == np.float32
    np.testing.assert_array_equal(cell.weights["gates/kernel"], half["fw/gru_cell/gates/kernel"].astype(np.float32))
    with pytest.raises(ValueError, match=r"set_weights\['gates/bias'\]"):
        interop.restore_tf(fastrnn.GRUCell(2), {**mapping, "fw/gru_cell/gates/bias": [[1.0], [2.0, 3.0]]},
                           scope="fw")
    tf2 = {"layer_with_weights-0/cell/kernel/.ATTRIBUTES/VARIABLE_VALUE": np.zeros((5, 4))}
    with pytest.raises(ValueError, match="TF2 object-based checkpoint"):
        interop.restore_tf(fastrnn.GRUCell(2), tf2)
    assert "TF2 object-based checkpoint" in interop.find_tf_cells(tf2).describe()


# -- SavedModel directories ------------------------------------------------------------------
def test_saved_model_reads_its_variables():
    data = load_npz(SAVED.with_suffix(".npz"))
    direct = interop.load_tf_checkpoint(SAVED / "variables" / "variables")
    assert "encoder/rnn/lstm_cell/w_f_diag" in direct
    for form in (SAVED, str(SAVED), SAVED / "saved_model.pb", SAVED / "variables"):
        assert interop.checkpoint_prefix(form) == str(SAVED / "variables" / "variables")
        values = interop.load_tf_checkpoint(form)
        assert sorted(values) == sorted(direct)
        cell = interop.restore_tf(build_cell(fastrnn, data["meta"]["cell"]), form, scope="encoder/rnn")
        out, state = run(fastrnn, cell, data)
        assert_close(out, data["out"], np.float32, str(form))
        assert_close(state, leaves(data, "state"), np.float32, str(form))


@pytest.mark.parametrize("damage, match", [
    ("no_variables", r"saved_model_peephole' is a SavedModel directory without 'variables/variables.index'"),
    ("truncated_index", r"variables/variables.index' is not a valid TensorFlow V2 checkpoint"),
    ("flipped_data", r"variables/variables.data-00000-of-00001' is corrupted: checksum mismatch"),
    ("empty_dir", r"saved_model_peephole' is a directory with neither a 'checkpoint' file nor a SavedModel"),
])
def test_damaged_saved_model_is_a_clear_error(tmp_path, damage, match):
    path = copy_tree(SAVED, tmp_path)
    index, data = path / "variables" / "variables.index", path / "variables" / "variables.data-00000-of-00001"
    if damage == "no_variables":
        shutil.rmtree(path / "variables")
    elif damage == "truncated_index":
        index.write_bytes(index.read_bytes()[:-20])
    elif damage == "flipped_data":
        raw = bytearray(data.read_bytes())
        raw[17] ^= 0x01
        data.write_bytes(bytes(raw))
    else:
        shutil.rmtree(path)
        path.mkdir()
    cell = fastrnn.LSTMCell(6, use_peepholes=True, num_proj=4)
    for call in (lambda: interop.load_tf_checkpoint(path), lambda: interop.restore_tf(cell, path, "encoder/rnn"),
                 lambda: interop.find_tf_cells(path)):
        with pytest.raises(ValueError, match=match):
            call()
    assert not cell.built


# -- frozen GraphDefs ------------------------------------------------------------------------
def test_load_tf_graph_reads_float_constants():
    consts = interop.load_tf_graph(STATIC_PB)
    data = load_npz(STATIC_PB.with_suffix(".npz"))
    for key in ("aux/broadcast", "aux/double", "aux/double_broadcast", "aux/scalar"):
        expected = data["const/" + key]
        assert consts[key].dtype == expected.dtype and consts[key].shape == expected.shape, key
        np.testing.assert_array_equal(consts[key], expected, err_msg=key)
        assert consts[key].flags.writeable
    assert "aux/int" not in consts  # int32: not a float
    assert consts["decoder/basic_lstm_cell/kernel"].shape == (7, 16)
    assert consts["bidirectional_rnn/fw/lstm_cell/w_f_diag"].dtype == np.float32


@pytest.mark.parametrize("as_mapping", [False, True])
def test_frozen_graphs_reproduce_tensorflow(as_mapping):
    stack, static = load_npz(STACK_PB.with_suffix(".npz")), load_npz(STATIC_PB.with_suffix(".npz"))
    src_stack = interop.load_tf_graph(STACK_PB) if as_mapping else STACK_PB
    src_static = interop.load_tf_graph(STATIC_PB) if as_mapping else str(STATIC_PB)
    cell = interop.restore_tf(build_cell(fastrnn, stack["meta"]["cell"]), src_stack)
    out, state = run(fastrnn, cell, stack)
    assert_close(out, stack["out"], np.float32, "frozen stack outputs")
    assert_close(state, leaves(stack, "state"), np.float32, "frozen stack state")
    # static_rnn's per-step constants (decoder/basic_lstm_cell/Const_1, ...) are not weights
    decoder = interop.restore_tf(fastrnn.BasicLSTMCell(4), src_static, scope="decoder")
    out, state = run(fastrnn, decoder, static, lengths=False)
    assert_close(out, static["out_decoder"], np.float32, "decoder outputs")
    assert_close(state, leaves(static, "state_decoder"), np.float32, "decoder state")
    pair = interop.restore_tf((fastrnn.LSTMCell(4, use_peepholes=True), fastrnn.GRUCell(3)), src_static)
    out, (sfw, sbw) = run(fastrnn, pair, static)
    assert_close(out, static["out_bidi"], np.float32, "bidirectional outputs")
    assert_close([sfw, sbw], [leaves(static, "state_fw"), leaves(static, "state_bw")], np.float32, "bidi states")


@pytest.mark.parametrize("make, scope, match", [
    (lambda: (fastrnn.LSTMCell(4), fastrnn.GRUCell(3)), None, r"w_f_diag.*does not use"),
    (lambda: fastrnn.LSTMCell(4), "decoder", r"no variable\(s\) \['decoder/lstm_cell/kernel'"),
    (lambda: fastrnn.BasicLSTMCell(5), "decoder", r"expected shape"),
    (lambda: fastrnn.BasicLSTMCell(4), "rnn", r"no variable\(s\) \['rnn/basic_lstm_cell/kernel'"),
])
def test_frozen_graph_still_refuses_real_mismatches(make, scope, match):
    with pytest.raises(ValueError, match=match):
        interop.restore_tf(make(), STATIC_PB, scope=scope)


# A GraphDef written by hand, from the .proto field numbers, to pin down each encoding.
def varint(n):
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def fld(number, payload):
    """A length-delimited field (wire type 2)."""
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def num(number, value):
    return varint(number << 3) + varint(value)


def tensor(dtype, shape, *parts):
    dims = b"".join(fld(2, num(1, d)) for d in shape)
    return num(1, dtype) + fld(2, dims) + b"".join(parts)


def const(name, tensor_proto, op=b"Const"):
    attr = fld(5, fld(1, b"value") + fld(2, fld(8, tensor_proto)))
    return fld(1, fld(1, name.encode()) + fld(2, op) + attr)


VERSIONS = fld(4, num(1, 27))


def write(tmp_path, *nodes, versions=VERSIONS):
    path = tmp_path / "graph.pb"
    path.write_bytes(b"".join(nodes) + versions)
    return path


def test_graphdef_encodings(tmp_path):
    f32 = lambda *v: struct.pack(f"<{len(v)}f", *v)  # noqa: E731
    unpacked = b"".join(varint(5 << 3 | 5) + f32(v) for v in (1.5, -2.0))
    path = write(tmp_path,
                 const("content", tensor(1, [2, 2], fld(4, f32(1, 2, 3, 4)))),
                 const("packed", tensor(1, [3], fld(5, f32(0.5, 1.5, 2.5)))),
                 const("unpacked", tensor(1, [2], unpacked)),
                 const("one_value", tensor(1, [2, 3], fld(5, f32(7.0)))),
                 const("last_repeats", tensor(1, [4], fld(5, f32(1, 2)))),
                 const("no_values", tensor(1, [3])),
                 const("scalar", tensor(1, [], fld(5, f32(-3.0)))),
                 const("double_packed", tensor(2, [2], fld(6, struct.pack("<2d", 0.25, 1e300)))),
                 const("double_unpacked", tensor(2, [1], varint(6 << 3 | 1) + struct.pack("<d", -0.125)))
                 + const("ints", tensor(3, [2], fld(7, varint(1) + varint(2))))
                 + const("not_const", tensor(1, [1], fld(5, f32(1))), op=b"Identity"))
    got = interop.load_tf_graph(path)
    expected = {"content": np.array([[1, 2], [3, 4]], np.float32), "packed": np.array([0.5, 1.5, 2.5], np.float32),
                "unpacked": np.array([1.5, -2.0], np.float32), "one_value": np.full((2, 3), 7, np.float32),
                "last_repeats": np.array([1, 2, 2, 2], np.float32), "no_values": np.zeros(3, np.float32),
                "scalar": np.array(-3.0, np.float32), "double_packed": np.array([0.25, 1e300]),
                "double_unpacked": np.array([-0.125])}
    assert sorted(got) == sorted(expected)
    for k, v in expected.items():
        assert got[k].dtype == v.dtype and got[k].shape == v.shape, k
        np.testing.assert_array_equal(got[k], v, err_msg=k)


@pytest.mark.parametrize("nodes, versions, match", [
    ([const("x", tensor(1, [2], fld(4, b"\0" * 12)))], VERSIONS, r"node 'x': tensor_content of 12 bytes"),
    ([const("x", tensor(1, [1], fld(5, b"\0" * 8)))], VERSIONS, r"node 'x': 2 values for shape \[1\]"),
    ([const("x", tensor(1, [2], fld(5, b"\0" * 6)))], VERSIONS, r"not a multiple of 4"),
    ([const("x", tensor(1, [1 << 40], fld(5, b"\0" * 4)))], VERSIONS, r"implausibly large"),
    ([const("x", tensor(1, [], fld(5, b"\0" * 4))), const("x", tensor(1, []))], VERSIONS, r"two nodes named 'x'"),
    ([const("x", tensor(1, []))], b"", r"no 'versions' field"),
    ([fld(1, fld(2, b"Const"))], VERSIONS, r"a node without a name"),
    ([fld(1, fld(1, b"\xff\xfe"))], VERSIONS, r"NodeDef.name is not UTF-8"),
    ([num(1, 5)], VERSIONS, r"GraphDef field 1 has wire type 0"),
    ([b"\x0b"], VERSIONS, r"wire type 3"),
])
def test_malformed_graphdef_is_a_clear_error(tmp_path, nodes, versions, match):
    path = write(tmp_path, *nodes, versions=versions)
    with pytest.raises(ValueError, match=r"graph.pb' is not a valid TensorFlow GraphDef .*" + match):
        interop.load_tf_graph(path)


def test_graph_file_errors(tmp_path):
    with pytest.raises(ValueError, match=r"cannot read TensorFlow graph .*missing.pb"):
        interop.load_tf_graph(tmp_path / "missing.pb")
    with pytest.raises(ValueError, match=r"cannot read TensorFlow graph .*missing.pb"):
        interop.restore_tf(fastrnn.BasicLSTMCell(4), tmp_path / "missing.pb")
    (tmp_path / "empty.pb").write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty.pb' is not a valid TensorFlow GraphDef.*empty"):
        interop.load_tf_graph(tmp_path / "empty.pb")
    (tmp_path / "text.pbtxt").write_text('node {\n  name: "x"\n  op: "Const"\n}\n')
    with pytest.raises(ValueError, match=r"text.pbtxt' is not a valid TensorFlow GraphDef"):
        interop.restore_tf(fastrnn.BasicLSTMCell(4), tmp_path / "text.pbtxt")
    with pytest.raises(ValueError, match=r"saved_model.pb' is a SavedModel's graph.*directory"):
        interop.load_tf_graph(SAVED / "saved_model.pb")
    # a checkpoint's files are not graphs: restore_tf takes them as the checkpoint
    interop.restore_tf(fastrnn.BasicLSTMCell(5), str(CKPTS / "basic_lstm") + ".index")


def test_every_truncation_of_a_frozen_graph_is_refused(tmp_path):
    """Cut anywhere -- inside a node or exactly between two -- the file is refused, naming it."""
    good = STACK_PB.read_bytes()
    path = tmp_path / "cut.pb"
    boundaries, pos = [], 0
    while pos < len(good):  # the top-level fields' ends: a cut there leaves well-formed nodes
        key, pos = good[pos], pos + 1
        size = shift = 0
        while True:
            b, pos = good[pos], pos + 1
            size |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
        assert key in (0x0A, 0x12, 0x22), key  # node (1), library (2), versions (4): length-delimited
        pos += size
        boundaries.append(pos)
    rng = np.random.default_rng(14)
    cuts = sorted(set(boundaries[:-1]) | set(rng.integers(0, len(good), 60).tolist()) | {0, 1, len(good) - 1})
    for cut in cuts:
        path.write_bytes(good[:cut])
        with pytest.raises(ValueError, match="cut.pb"):
            interop.load_tf_graph(path)
        with pytest.raises(ValueError, match="cut.pb"):
            interop.find_tf_cells(path)


def test_random_byte_flips_never_crash_or_hang(tmp_path):
    """A flipped byte is refused naming the file, or (inside values, which nothing checks) read; nothing else."""
    good = STATIC_PB.read_bytes()
    expected = interop.load_tf_graph(STATIC_PB)
    path = tmp_path / "flipped.pb"
    rng = np.random.default_rng(1414)
    refused = 0
    start = time.perf_counter()
    for _ in range(250):
        data = bytearray(good)
        for offset in rng.integers(0, len(good), rng.integers(1, 4)):
            data[offset] ^= int(rng.integers(1, 256))
        path.write_bytes(bytes(data))
        try:
            got = interop.load_tf_graph(path)
        except ValueError as e:
            assert "flipped.pb" in str(e)
            refused += 1
            continue
        assert all(isinstance(v, np.ndarray) and v.dtype.kind == "f" for v in got.values())
        assert len(got) <= len(expected) + 3
    assert refused > 25  # most flips hit framing, names or the values' sizes
    assert time.perf_counter() - start < 30


# -- discovery --------------------------------------------------------------------------------
def expected_layers(meta_spec, direction=""):
    """[(role, spec)] as TFCells.layers lists them, from a fixture's cell spec (or [fw, bw])."""
    if isinstance(meta_spec, list):
        return expected_layers(meta_spec[0], "fw") + expected_layers(meta_spec[1], "bw")
    if meta_spec["type"] == "MultiRNNCell":
        return [(f"{direction} cell_{i}".strip(), s) for i, s in enumerate(meta_spec["cells"])]
    return [(direction, meta_spec)]


def check_discovered(found, scope, meta_spec, dtype):
    got = found.layers[scope]
    want = expected_layers(meta_spec)
    assert [r for r, _ in got] == [r for r, _ in want], scope
    for (role, layer), (_, s) in zip(got, want):
        assert layer.cell_class == s["type"] and layer.num_units == s["num_units"], (scope, role)
        assert layer.options == {k: v for k, v in s["kwargs"].items() if k in ("use_peepholes", "num_proj")}
        assert layer.dtype == dtype
        assert layer.assumed.get("activation") == "tanh"
    cell = found[scope]
    parts = list(cell) if isinstance(cell, tuple) else [cell]
    assert all(p.built for p in parts)
    if isinstance(meta_spec, dict) and meta_spec["type"] == "MultiRNNCell":
        assert isinstance(cell, fastrnn.MultiRNNCell)


def checkpoint_cases():
    return sorted(p.stem for p in CKPTS.glob("*.index"))


@pytest.mark.parametrize("case", checkpoint_cases())
def test_discovery_over_every_checkpoint_fixture(case):
    data = load_npz(CKPTS / f"{case}.npz")
    meta = data["meta"]
    found = interop.find_tf_cells(CKPTS / case)
    spec = meta["cell"] if meta["driver"] == "dynamic_rnn" else [meta["cell_fw"], meta["cell_bw"]]
    assert list(found) == [meta["scope"]]
    check_discovered(found, meta["scope"], spec, meta["dtype"])
    out, state = run(fastrnn, found[meta["scope"]], data)
    if meta["driver"] == "dynamic_rnn":
        assert_close(out, data["out"], meta["dtype"], f"{case} outputs")
        assert_close(state, leaves(data, "state"), meta["dtype"], f"{case} state")
    else:
        assert_close(out, np.concatenate([data["out_fw"], data["out_bw"]], -1), meta["dtype"], f"{case} outputs")
        assert_close(state, [leaves(data, "state_fw"), leaves(data, "state_bw")], meta["dtype"], f"{case} states")
    assert sorted(found.ignored) == sorted(meta["extra"])  # dense head, global_step: nothing else left over


ARTIFACT_SOURCES = {"train_adam_ema": ADAM, "train_slots": SLOTS, "saved_model_peephole": SAVED,
                    "frozen_stack": STACK_PB, "frozen_static": STATIC_PB}


@pytest.mark.parametrize("case", sorted(ARTIFACT_SOURCES))
def test_discovery_over_every_artifact(case):
    source = ARTIFACT_SOURCES[case]
    data = load_npz(ARTIFACTS / f"{case}.npz")
    meta = data["meta"]
    found = interop.find_tf_cells(source)
    assert sorted(found) == sorted(meta["discover"]) and not found.skipped
    for scope, spec in meta["discover"].items():
        check_discovered(found, scope, spec, meta["dtype"])
        if case == "train_slots":
            out_key, state_key = f"out/{scope}", f"state/{scope}"
        elif case == "frozen_static":
            out_key, state_key = ("out_bidi", None) if scope == "bidirectional_rnn" else ("out_decoder", None)
        else:
            out_key, state_key = "out", "state"
        out, state = run(fastrnn, found[scope], data, lengths=scope != "decoder")
        assert_close(out, data[out_key], meta["dtype"], f"{case} {scope} outputs")
        if state_key:
            assert_close(state, leaves(data, state_key), meta["dtype"], f"{case} {scope} state")
    if case == "frozen_static":
        assert {"decoder/basic_lstm_cell/Const_1", "aux/broadcast"} <= set(found.ignored)


def test_discovery_with_moving_averages_and_what_it_reports():
    data = load_npz(ADAM.with_suffix(".npz"))
    found = interop.find_tf_cells(ADAM, ema=True)
    out, state = run(fastrnn, found["encoder/rnn"], data)
    assert_close(out, data["ema_out"], np.float32, "ema outputs")
    raw = interop.find_tf_cells(ADAM)
    assert {"global_step", "beta1_power", "head/kernel",
            "encoder/rnn/multi_rnn_cell/cell_1/gru_cell/gates/kernel/Adam"} <= set(raw.ignored)
    assert not any(n.endswith("lstm_cell/kernel") for n in raw.ignored)
    layer = raw.layers["encoder/rnn"][0][1]
    assert layer.scope == "encoder/rnn/multi_rnn_cell/cell_0/lstm_cell" and layer.input_depth == 3
    assert layer.assumed == {"forget_bias": 1.0, "cell_clip": None, "activation": "tanh", "state_is_tuple": True}
    assert raw.layers["encoder/rnn"][1][1].input_depth == 5  # the GRU reads the LSTM's outputs
    assert raw.constructors["encoder/rnn"] == ("fr.MultiRNNCell([fr.LSTMCell(5, use_peepholes=True), "
                                               "fr.GRUCell(3)])")
    text = repr(raw)
    assert text == raw.describe()
    for piece in ("'encoder/rnn'", "fr.LSTMCell(5, use_peepholes=True)", "forget_bias=1.0",
                  "optimizer slot(s) / moving average(s)", "Adam_1", "global_step"):
        assert piece in text, piece


def test_discovery_reports_what_is_not_a_cell():
    rng = np.random.default_rng(5)
    w = lambda *shape: rng.standard_normal(shape)  # noqa: E731
    mapping = {
        # a Keras LSTM layer's weights (kernel [d, 4n], recurrent_kernel, bias): not a TF1 cell
        "lstm/lstm_cell/kernel": w(3, 8), "lstm/lstm_cell/recurrent_kernel": w(2, 8), "lstm/lstm_cell/bias": w(8),
        # a stack with a gap (no cell_1)
        "gap/multi_rnn_cell/cell_0/gru_cell/gates/kernel": w(5, 4), "gap/multi_rnn_cell/cell_0/gru_cell/gates/bias":
            w(4), "gap/multi_rnn_cell/cell_0/gru_cell/candidate/kernel": w(5, 2),
        "gap/multi_rnn_cell/cell_0/gru_cell/candidate/bias": w(2),
        "gap/multi_rnn_cell/cell_2/basic_rnn_cell/kernel": w(4, 2),
        "gap/multi_rnn_cell/cell_2/basic_rnn_cell/bias": w(2),
        # a kernel whose columns are no multiple of 4
        "odd/basic_lstm_cell/kernel": w(4, 6), "odd/basic_lstm_cell/bias": w(6),
        # a good cell at the graph's root, and a missing bias next to it
        "basic_rnn_cell/kernel": w(5, 2), "basic_rnn_cell/bias": w(2),
        "nobias/lstm_cell/kernel": w(5, 8),
    }
    found = interop.find_tf_cells(mapping)
    assert list(found) == [""] and isinstance(found[""], fastrnn.BasicRNNCell)
    np.testing.assert_array_equal(found[""].weights["kernel"], mapping["basic_rnn_cell/kernel"])
    assert found[""].weights["kernel"].dtype == np.float64
    assert "from_keras" in found.skipped["lstm"]
    assert "cell_[0, 2]" in found.skipped["gap/multi_rnn_cell"]
    assert "not [depth + units, 4 * units]" in found.skipped["odd/basic_lstm_cell"]
    assert "no variable(s) ['nobias/lstm_cell/bias']" in found.skipped["nobias"]
    assert "skipped 'lstm'" in found.describe()
    assert interop.restore_tf(fastrnn.BasicRNNCell(2), mapping, scope="") is not None
    assert interop.find_tf_cells({}) == {} and "none found" in interop.find_tf_cells({}).describe()
    with pytest.raises(TypeError, match="source"):
        interop.find_tf_cells(42)
    with pytest.raises(TypeError, match="ema"):
        interop.find_tf_cells({}, ema=[1])


# -- python -m fastrnn inspect ------------------------------------------------------------------
def test_inspect_prints_the_table(capsys):
    assert fastrnn_main(["inspect", str(STATIC_PB)]) == 0
    out = capsys.readouterr().out
    for piece in ("frozen graph", "'bidirectional_rnn'", "fw", "bw", "fr.LSTMCell(4, use_peepholes=True)",
                  "fr.GRUCell(3)", "'decoder'", "fr.BasicLSTMCell(4)", "forget_bias=1.0",
                  "interop.restore_tf((fr.LSTMCell(4, use_peepholes=True), fr.GRUCell(3)), PATH"):
        assert piece in out, piece
    assert _inspect.main([str(ADAM), "--ema"]) == 0
    assert "'encoder/rnn'" in capsys.readouterr().out


def test_inspect_errors_and_nothing_found(tmp_path, capsys):
    assert _inspect.main([str(tmp_path / "nope.pb")]) == 2
    assert "cannot read TensorFlow graph" in capsys.readouterr().err
    assert _inspect.main([str(write(tmp_path, const("x", tensor(1, [], fld(5, b"\0" * 4)))))]) == 1
    assert "none found" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        _inspect.main([])


def test_inspect_subprocess():
    res = subprocess.run([sys.executable, "-m", "fastrnn", "inspect", str(SAVED)], capture_output=True, text=True,
                         timeout=120, cwd="/")
    assert res.returncode == 0, res.stderr
    assert "SavedModel" in res.stdout and "fr.LSTMCell(6, use_peepholes=True, num_proj=4)" in res.stdout
