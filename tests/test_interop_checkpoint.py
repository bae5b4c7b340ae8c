"""TF V2 checkpoints without TensorFlow: the reader, restore_tf, and bad files.

The checkpoints in fixtures/checkpoints/ were written by real TensorFlow
(tools/make_tf_checkpoints.py); each .npz next to one holds the inputs, the
outputs and states TF computed, and every variable's value.
"""
from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

import fastrnn
from fastrnn import interop
from fastrnn.interop import _checkpoint

from helpers import assert_close, build_cell


CKPTS = Path(__file__).parent / "fixtures" / "checkpoints"
CASES = ["basic_lstm", "basic_rnn_dense", "multi_lstm_peep_gru", "bidi_lstm_gru"]


def load_case(case):
    with np.load(CKPTS / f"{case}.npz", allow_pickle=False) as z:
        data = {k: z[k] for k in z.files}
    data["meta"] = json.loads(str(data["meta"]))
    return data


def states(data, key):
    return [data[f"{key}/{i}"] for i in range(sum(k.startswith(key + "/") for k in data))]


@pytest.mark.parametrize("case", CASES)
def test_reader_matches_tf_values(case):
    data = load_case(case)
    values = interop.load_tf_checkpoint(CKPTS / case)
    expected = {k[4:]: v for k, v in data.items() if k.startswith("var/")}
    assert sorted(values) == sorted(expected)
    for name, value in values.items():
        assert value.dtype == expected[name].dtype and value.shape == expected[name].shape, name
        np.testing.assert_array_equal(value, expected[name], err_msg=name)
        assert value.flags.writeable and value.flags.c_contiguous


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("module", ["fastrnn", "reference"])
def test_restored_model_reproduces_tf(case, module):
    mod = fastrnn if module == "fastrnn" else fastrnn.reference
    data = load_case(case)
    meta, dtype = data["meta"], np.dtype(data["meta"]["dtype"])
    if meta["driver"] == "dynamic_rnn":
        cell = interop.restore_tf(build_cell(mod, meta["cell"]), CKPTS / case)
        out, state = mod.dynamic_rnn(cell, data["inputs"], sequence_length=data["sequence_length"])
        assert_close(out, data["out"], dtype, f"{case} outputs")
        assert_close(state, states(data, "state"), dtype, f"{case} state")
    else:
        pair = (build_cell(mod, meta["cell_fw"]), build_cell(mod, meta["cell_bw"]))
        interop.restore_tf(pair, str(CKPTS / case))
        (ofw, obw), (sfw, sbw) = mod.bidirectional_dynamic_rnn(*pair, data["inputs"],
                                                               sequence_length=data["sequence_length"])
        assert_close([ofw, obw], [data["out_fw"], data["out_bw"]], dtype, f"{case} outputs")
        assert_close([sfw, sbw], [states(data, "state_fw"), states(data, "state_bw")], dtype, f"{case} states")


def test_prefix_forms_and_int64(tmp_path):
    base = CKPTS / "basic_rnn_dense"
    for form in (base, str(base) + ".index", str(base) + ".data-00000-of-00001"):
        assert interop.checkpoint_prefix(form) == str(base)
    (tmp_path / "checkpoint").write_text(f'model_checkpoint_path: "{base}"\n')
    values = interop.load_tf_checkpoint(tmp_path)
    assert values["global_step"].dtype == np.int64 and values["global_step"].shape == ()
    assert int(values["global_step"]) == 1234567890123
    only = interop.load_tf_checkpoint(base, names=["dense/kernel"])
    assert list(only) == ["dense/kernel"]
    with pytest.raises(KeyError, match="nope"):
        interop.load_tf_checkpoint(base, names=["nope"])


def test_restore_from_mapping_and_names():
    data = load_case("basic_lstm")
    mapping = {k[4:] + ":0": v for k, v in data.items() if k.startswith("var/")}
    cell = fastrnn.BasicLSTMCell(5)
    assert interop.tf_variable_names(cell) == ["rnn/basic_lstm_cell/kernel", "rnn/basic_lstm_cell/bias"]
    assert interop.restore_tf(cell, mapping) is cell
    np.testing.assert_array_equal(cell.weights["kernel"], mapping["rnn/basic_lstm_cell/kernel:0"])
    # a built float64 cell takes the values cast to its dtype
    cell64 = fastrnn.BasicLSTMCell(5, dtype=np.float64)
    cell64.build(3)
    interop.restore_tf(cell64, CKPTS / "basic_lstm")
    assert cell64.weights["kernel"].dtype == np.float64
    # a custom scope
    scoped = {"encoder/" + k: v for k, v in mapping.items()}
    interop.restore_tf(fastrnn.BasicLSTMCell(5), scoped, scope="encoder/rnn")


@pytest.mark.parametrize("make, match", [
    (lambda: fastrnn.LSTMCell(5), r"no variable\(s\) \['rnn/lstm_cell/kernel'"),           # wrong class
    (lambda: fastrnn.BasicLSTMCell(4), r"expected shape"),                                  # wrong size
    (lambda: fastrnn.MultiRNNCell([fastrnn.LSTMCell(5, use_peepholes=True, num_proj=3), fastrnn.LSTMCell(4)]),
     r"does not use"),                                                                      # a layer short
])
def test_restore_mismatch_is_clear(make, match):
    case = "multi_lstm_peep_gru" if "does not use" in match else "basic_lstm"
    with pytest.raises(ValueError, match=match):
        interop.restore_tf(make(), CKPTS / case)


def test_restore_bad_argument_types():
    with pytest.raises(TypeError, match="source"):
        interop.restore_tf(fastrnn.BasicLSTMCell(5), 42)
    with pytest.raises(TypeError, match="cell"):
        interop.restore_tf(object(), {})


def copy_case(tmp_path, case="basic_lstm"):
    for f in CKPTS.glob(case + ".*"):
        if f.suffix != ".npz":
            shutil.copy(f, tmp_path / f.name)
    return tmp_path / case


def flip(path, offset):
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x10
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage, match", [
    ("truncate_index", "basic_lstm.index"),
    ("truncate_data", r"basic_lstm.data-00000-of-00001.* truncated"),
    ("flip_data", r"basic_lstm.data-00000-of-00001.* checksum mismatch"),
    ("flip_index_block", r"basic_lstm.index.*checksum mismatch"),
    ("missing_data", r"cannot read checkpoint data shard .*basic_lstm.data-00000-of-00001"),
    ("missing_index", r"cannot read TensorFlow checkpoint index .*basic_lstm.index"),
    ("not_a_checkpoint", r"basic_lstm.index.*not a valid TensorFlow V2 checkpoint"),
    ("empty_index", r"basic_lstm.index.*not a valid"),
])
def test_damaged_checkpoint_is_a_clear_error(tmp_path, damage, match):
    prefix = copy_case(tmp_path)
    index, data = Path(str(prefix) + ".index"), Path(str(prefix) + ".data-00000-of-00001")
    if damage == "truncate_index":
        index.write_bytes(index.read_bytes()[:-7])
    elif damage == "truncate_data":
        data.write_bytes(data.read_bytes()[:100])
    elif damage == "flip_data":
        flip(data, 50)
    elif damage == "flip_index_block":
        flip(index, 20)
    elif damage == "missing_data":
        data.unlink()
    elif damage == "missing_index":
        index.unlink()
    elif damage == "not_a_checkpoint":
        index.write_bytes(b"this is a text file, not an SSTable\n" * 3)
    elif damage == "empty_index":
        index.write_bytes(b"")
    with pytest.raises(ValueError, match=match):
        interop.load_tf_checkpoint(prefix)
    cell = fastrnn.BasicLSTMCell(5)
    with pytest.raises(ValueError):
        interop.restore_tf(cell, prefix)
    assert not cell.built  # no garbage weights


def test_random_corruption_never_crashes(tmp_path):
    """Every single-byte change of the index is detected (checksums) or harmless."""
    prefix = copy_case(tmp_path)
    index = Path(str(prefix) + ".index")
    good = index.read_bytes()
    expected = interop.load_tf_checkpoint(CKPTS / "basic_lstm")
    for offset in range(len(good)):
        data = bytearray(good)
        data[offset] ^= 0xFF
        index.write_bytes(bytes(data))
        try:
            values = interop.load_tf_checkpoint(prefix)
        except ValueError:
            continue
        # only bytes no checksum covers (footer padding) may change without an error
        assert sorted(values) == sorted(expected), offset
        for k in values:
            np.testing.assert_array_equal(values[k], expected[k])


def test_crc32c_known_values_and_lanes():
    assert interop.crc32c(b"") == 0
    assert interop.crc32c(b"123456789") == 0xE3069283  # the standard check value
    assert interop.crc32c(bytes(32)) == 0x8A9136AA  # RFC 3720 B.4
    rng = np.random.default_rng(1)
    for n in (8191, 8192, 8193, 100_003):
        data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        slow = _checkpoint._crc_bytes(0xFFFFFFFF, data) ^ 0xFFFFFFFF
        assert interop.crc32c(data) == slow == interop.crc32c(np.frombuffer(data, np.uint8)), n


def test_snappy_blocks():
    # literal "abcd", then a copy of length 8 at offset 4 (overlapping its own output)
    raw = bytes([12, 3 << 2]) + b"abcd" + bytes([1 | ((8 - 4) << 2), 4])
    assert _checkpoint._snappy_decompress(raw) == b"abcd" * 3
    with pytest.raises(_checkpoint._Corrupt):
        _checkpoint._snappy_decompress(bytes([12, 3 << 2]) + b"abcd" + bytes([1 | (4 << 2), 9]))


def test_fixture_has_the_sstable_footer_magic(tmp_path):
    prefix = copy_case(tmp_path)
    index = Path(str(prefix) + ".index")
    data = bytearray(index.read_bytes())
    assert struct.unpack_from("<Q", data, len(data) - 8)[0] == 0xDB4775248B80FB57
