#!/usr/bin/env python3
"""Generate golden test fixtures for fastrnn with real TensorFlow (TF1 API).

What it makes
-------------
One compressed ``tests/fixtures/<case>.npz`` per case.  Every case builds a
graph in a fresh ``tf.Graph()`` with the TF1 legacy cells
(``tf.compat.v1.nn.rnn_cell.{BasicRNNCell,BasicLSTMCell,LSTMCell,GRUCell,
MultiRNNCell}``) and one of the drivers ``tf.compat.v1.nn.dynamic_rnn``,
``static_rnn``, ``bidirectional_dynamic_rnn``, ``static_bidirectional_rnn``
(or a single ``cell(inputs, state)`` call, driver ``"cell_call"``).  After the
variables exist every trainable variable is ASSIGNED a random value
(kernels ~ U(-1,1)/sqrt(rows), biases and peephole diagonals ~ U(-0.5,0.5)),
never TF's default initialisation, so every index matters.  Inputs ~ N(0,1)
(except the tutorial cases), explicit initial states ~ U(-0.5,0.5) (one extra
case, cell_lstm_proj_clip_big_state, uses U(-2,2) so cell_clip=1.0 is hit in a
single step).  Each case uses its own
``numpy.random.default_rng(crc32(case_name))`` so the output is deterministic
(byte-identical files on re-run) and independent of case order.

Quality checks: a gradient "liveness" probe (d/dw of a random linear functional
of all results) must be non-zero for every weight element, and for LSTMCell
cases with cell_clip/proj_clip the clip must be active somewhere but not
everywhere.  If the first seed fails, the seed of "<case>#1", "<case>#2", ...
is used instead (still deterministic).  Cases where no step is computed
(all lengths 0, time=0, batch=0) are exempt from the liveness check.

File format (tests rely on it)
------------------------------
``meta``        0-d unicode array, JSON: {"case", "driver", "dtype",
                "time_major", "has_sequence_length", "has_initial_state",
                "cell": SPEC} (bidirectional: "cell_fw"/"cell_bw" instead of
                "cell"), plus informational "tf_version".  SPEC is
                {"type", "num_units", "kwargs"} or
                {"type": "MultiRNNCell", "cells": [SPEC...], "kwargs": {...}};
                kwargs are exactly the constructor keyword arguments passed
                (activation by name; MultiRNNCell always gets an explicit
                state_is_tuple).  For static drivers and cell_call
                ``time_major`` is always false (the drivers have no such
                argument); static inputs are nevertheless stored [time,batch,depth].
``inputs``      dynamic: as fed (per time_major); static: per-step list stacked
                to [time, batch, depth]; cell_call: [batch, depth].
``sequence_length``  int32 [batch], iff has_sequence_length.
``w/<name>``    (``w_fw/``, ``w_bw/`` for bidirectional) variables with the
                driver scope and the cell's own scope stripped and ":0" removed,
                e.g. rnn/lstm_cell/projection/kernel:0 -> w/projection/kernel,
                rnn/multi_rnn_cell/cell_1/gru_cell/gates/kernel:0 ->
                w/cell_1/gru_cell/gates/kernel.
``init/<i>``    (``init_fw/<i>``, ``init_bw/<i>``) initial state flattened in
                tf.nest.flatten order, iff has_initial_state (always for
                cell_call).
``out``         outputs (dynamic: as returned; static_rnn: stacked
                [time,batch,out]; static_bidirectional_rnn: stacked
                [time,batch,out_fw+out_bw]; cell_call: one-step output).
``out_fw``, ``out_bw``  bidirectional_dynamic_rnn outputs.
``state/<i>``   (``state_fw/<i>``, ``state_bw/<i>``) final state, nest order.

How to run
----------
    python3 -m venv /tmp/tfenv
    /tmp/tfenv/bin/pip install tensorflow-cpu tf_keras numpy
    /tmp/tfenv/bin/python tools/make_tf_fixtures.py            # all cases
    /tmp/tfenv/bin/python tools/make_tf_fixtures.py CASE ...   # a subset

Run from the repository root (or anywhere: paths are relative to this file).
Fixtures in the repository were produced with TensorFlow 2.21.0
(tensorflow-cpu, tf_keras 2.21.0, numpy 2.4.6, CPU, oneDNN opts disabled).
"""

import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# Plain Eigen kernels: avoids oneDNN re-association round-off differences.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import json
import sys
import warnings
import zlib

warnings.filterwarnings("ignore")

import numpy as np
import tensorflow as tf

tf.get_logger().setLevel("ERROR")
tf.compat.v1.disable_eager_execution()
tf1 = tf.compat.v1
RC = tf1.nn.rnn_cell

HERE = os.path.dirname(os.path.abspath(__file__))
OUT_DIR = os.path.join(os.path.dirname(HERE), "tests", "fixtures")

ACTIVATIONS = {"tanh": tf.tanh, "relu": tf.nn.relu, "sigmoid": tf.sigmoid}
DTYPES = {"float32": (tf.float32, np.float32), "float64": (tf.float64, np.float64)}


# --------------------------------------------------------------------------
# cell specs
# --------------------------------------------------------------------------
def spec(type_, num_units, **kwargs):
    return {"type": type_, "num_units": num_units, "kwargs": kwargs}


def multi(cells, state_is_tuple=True):
    return {"type": "MultiRNNCell", "cells": cells,
            "kwargs": {"state_is_tuple": state_is_tuple}}


def build_cell(s):
    kw = dict(s["kwargs"])
    if s["type"] == "MultiRNNCell":
        return RC.MultiRNNCell([build_cell(c) for c in s["cells"]], **kw)
    if "activation" in kw:
        kw["activation"] = ACTIVATIONS[kw["activation"]]
    return getattr(RC, s["type"])(s["num_units"], **kw)


# The cell configurations of item 2 (dynamic_rnn, float32 and float64) and
# item 6 (cell_call, float32).
CELL_CONFIGS = [
    ("basic_rnn_tanh", spec("BasicRNNCell", 5)),
    ("basic_rnn_relu", spec("BasicRNNCell", 5, activation="relu")),
    ("basic_lstm", spec("BasicLSTMCell", 5)),
    ("basic_lstm_fb05", spec("BasicLSTMCell", 5, forget_bias=0.5)),
    ("basic_lstm_nontuple", spec("BasicLSTMCell", 5, state_is_tuple=False)),
    ("lstm_plain", spec("LSTMCell", 5)),
    ("lstm_peep", spec("LSTMCell", 5, use_peepholes=True)),
    ("lstm_peep_clip", spec("LSTMCell", 5, use_peepholes=True, cell_clip=0.3)),
    ("lstm_proj", spec("LSTMCell", 5, num_proj=3)),
    ("lstm_proj_clip", spec("LSTMCell", 5, use_peepholes=True, num_proj=3,
                            proj_clip=0.2, cell_clip=1.0)),
    ("lstm_nontuple_proj", spec("LSTMCell", 5, state_is_tuple=False, num_proj=3)),
    ("gru_tanh", spec("GRUCell", 4)),
    ("gru_relu", spec("GRUCell", 4, activation="relu")),
    ("multi_lstm_gru", multi([spec("LSTMCell", 5, use_peepholes=True, num_proj=3),
                              spec("GRUCell", 4)])),
    ("multi_nontuple_gru_rnn", multi([spec("GRUCell", 3), spec("BasicRNNCell", 4)],
                                     state_is_tuple=False)),
]


# --------------------------------------------------------------------------
# random data helpers
# --------------------------------------------------------------------------
def ragged_lengths(rng, batch, time):
    """Random lengths in [0, time] containing at least one 0 and one `time`."""
    lens = rng.integers(0, time + 1, size=batch)
    pos = rng.permutation(batch)
    lens[pos[0]] = time
    lens[pos[1]] = 0
    return lens.astype(np.int32)


def random_state(rng, cell, batch, npdt, scale=0.5):
    return tf.nest.map_structure(
        lambda s: rng.uniform(-scale, scale, size=(batch, int(s))).astype(npdt),
        cell.state_size)


def random_value(rng, name, shape):
    leaf = name.split(":")[0].split("/")[-1]
    if leaf == "kernel":
        assert len(shape) == 2, (name, shape)
        return rng.uniform(-1.0, 1.0, size=shape) / np.sqrt(shape[0])
    if leaf == "bias" or (leaf.startswith("w_") and leaf.endswith("_diag")):
        assert len(shape) == 1, (name, shape)
        return rng.uniform(-0.5, 0.5, size=shape)
    raise AssertionError("no init rule for variable %s" % name)


def map_var_names(variables, prefixes):
    """prefixes: list of (tf_scope_prefix, npz_prefix).  Returns {var: key}."""
    mapping = {}
    for v in variables:
        name = v.name
        assert name.endswith(":0"), name
        name = name[:-2]
        hits = [(p, k) for p, k in prefixes if name.startswith(p)]
        assert len(hits) == 1, ("variable %s matched %d prefixes" % (v.name, len(hits)))
        p, k = hits[0]
        rest = name[len(p):]
        # strip the cell's own scope (basic_lstm_cell, lstm_cell, gru_cell,
        # basic_rnn_cell, multi_rnn_cell)
        cell_scope, _, rest = rest.partition("/")
        assert cell_scope.endswith("_cell") and rest, v.name
        mapping[v] = k + "/" + rest
    keys = list(mapping.values())
    assert len(keys) == len(set(keys)) == len(variables), keys
    return mapping


def flat_save(d, prefix, structure):
    for i, a in enumerate(tf.nest.flatten(structure)):
        d["%s/%d" % (prefix, i)] = np.asarray(a)


# --------------------------------------------------------------------------
# one case
# --------------------------------------------------------------------------
def run_case(case, salt=0):
    name = case["case"]
    driver = case["driver"]
    dtype_name = case.get("dtype", "float32")
    tfdt, npdt = DTYPES[dtype_name]
    time_major = bool(case.get("time_major", False))
    seed_text = name if salt == 0 else "%s#%d" % (name, salt)
    rng = np.random.default_rng(zlib.crc32(seed_text.encode()))
    bidi = driver in ("bidirectional_dynamic_rnn", "static_bidirectional_rnn")
    static = driver in ("static_rnn", "static_bidirectional_rnn")

    batch, time, depth = case["batch"], case.get("time"), case["depth"]

    # ---- inputs (always stored as numpy in the layout fed/stacked) ----
    if "inputs" in case:
        x = np.asarray(case["inputs"], dtype=npdt)
    elif driver == "cell_call":
        x = rng.standard_normal((batch, depth)).astype(npdt)
    elif time_major or static:
        x = rng.standard_normal((time, batch, depth)).astype(npdt)
    else:
        x = rng.standard_normal((batch, time, depth)).astype(npdt)
    if "input_hook" in case:
        x = case["input_hook"](x)

    seq = case.get("sequence_length", None)
    if isinstance(seq, str) and seq == "ragged":
        seq = ragged_lengths(rng, batch, time)
    elif seq is not None:
        seq = np.asarray(seq, dtype=np.int32)
    has_seq = seq is not None

    init_mode = case.get("initial_state", None)   # None | "random" | "zero"
    has_init = init_mode is not None or driver == "cell_call"
    if driver == "cell_call" and init_mode is None:
        init_mode = "random"

    save = {}
    g = tf.Graph()
    with g.as_default():
        if bidi:
            cell_fw, cell_bw = build_cell(case["cell_fw"]), build_cell(case["cell_bw"])
            cells = [("fw", cell_fw), ("bw", cell_bw)]
        else:
            cell = build_cell(case["cell"])
            cells = [("", cell)]

        init_np, init_tf = {}, {}
        for tag, c in cells:
            if init_mode == "random":
                init_np[tag] = random_state(rng, c, batch, npdt,
                                            case.get("init_scale", 0.5))
                init_tf[tag] = tf.nest.map_structure(tf.constant, init_np[tag])
            elif init_mode == "zero":
                init_tf[tag] = c.zero_state(batch, tfdt)
            else:
                init_tf[tag] = None

        x_tf = tf.constant(x)
        seq_tf = tf.constant(seq) if has_seq else None
        fetch = {}
        if driver == "dynamic_rnn":
            out, st = tf1.nn.dynamic_rnn(cell, x_tf, sequence_length=seq_tf,
                                         initial_state=init_tf[""], dtype=tfdt,
                                         time_major=time_major)
            fetch = {"out": out, "state": st}
            prefixes = [("rnn/", "w")]
        elif driver == "static_rnn":
            outs, st = tf1.nn.static_rnn(cell, tf.unstack(x_tf, axis=0),
                                         initial_state=init_tf[""], dtype=tfdt,
                                         sequence_length=seq_tf)
            fetch = {"out": tf.stack(outs, axis=0), "state": st}
            prefixes = [("rnn/", "w")]
        elif driver == "bidirectional_dynamic_rnn":
            (o_fw, o_bw), (s_fw, s_bw) = tf1.nn.bidirectional_dynamic_rnn(
                cell_fw, cell_bw, x_tf, sequence_length=seq_tf,
                initial_state_fw=init_tf["fw"], initial_state_bw=init_tf["bw"],
                dtype=tfdt, time_major=time_major)
            fetch = {"out_fw": o_fw, "out_bw": o_bw, "state_fw": s_fw, "state_bw": s_bw}
            prefixes = [("bidirectional_rnn/fw/", "w_fw"), ("bidirectional_rnn/bw/", "w_bw")]
        elif driver == "static_bidirectional_rnn":
            outs, s_fw, s_bw = tf1.nn.static_bidirectional_rnn(
                cell_fw, cell_bw, tf.unstack(x_tf, axis=0),
                initial_state_fw=init_tf["fw"], initial_state_bw=init_tf["bw"],
                dtype=tfdt, sequence_length=seq_tf)
            fetch = {"out": tf.stack(outs, axis=0), "state_fw": s_fw, "state_bw": s_bw}
            prefixes = [("bidirectional_rnn/fw/", "w_fw"), ("bidirectional_rnn/bw/", "w_bw")]
        elif driver == "cell_call":
            with tf1.variable_scope("cell_call"):
                out, st = cell(x_tf, init_tf[""])
            fetch = {"out": out, "state": st}
            prefixes = [("cell_call/", "w")]
        else:
            raise ValueError(driver)

        tvars = tf1.trainable_variables()
        assert tvars, "no trainable variables"
        mapping = map_var_names(tvars, prefixes)
        for v in tvars:
            assert v.dtype.base_dtype == tfdt, (v.name, v.dtype)

        # Liveness probe: gradient of a random linear functional of all the
        # results w.r.t. every weight element.  An element with (relatively)
        # zero gradient does not influence the fixture (dead ReLU unit, a unit
        # clipped at every step, ...), so write_case() tries another seed.
        prng = np.random.default_rng(12345)
        probe = tf.add_n([tf.reduce_sum(t * tf.constant(
            prng.standard_normal(t.shape.as_list()).astype(npdt)))
            for t in tf.nest.flatten(fetch)])
        grads = tf.gradients(probe, tvars)

        with tf1.Session(graph=g) as sess:
            sess.run(tf1.global_variables_initializer())
            # assign in sorted-name order so the rng stream is well defined
            for v in sorted(tvars, key=lambda v: v.name):
                val = random_value(rng, v.name, tuple(v.shape.as_list())).astype(npdt)
                v.load(val, sess)
            for v in tvars:
                key = mapping[v]
                val = sess.run(v)
                save[key] = val
            if init_mode == "zero":
                init_np = {tag: sess.run(t) for tag, t in init_tf.items()}
            res, gvals = sess.run([fetch, grads])
    gabs = np.concatenate([np.abs(np.asarray(gv, dtype=np.float64)).ravel()
                           for gv in gvals])
    n_dead = int(np.sum(gabs <= 1e-6 * gabs.max())) if gabs.max() > 0 else gabs.size

    # ---- assemble npz ----
    save["inputs"] = x
    if has_seq:
        save["sequence_length"] = seq
    if has_init:
        for tag, _ in cells:
            flat_save(save, "init_" + tag if tag else "init", init_np[tag])
    for k, v in res.items():
        if k.startswith("state"):
            flat_save(save, k, v)
        else:
            save[k] = np.asarray(v)

    meta = {"case": name, "driver": driver, "dtype": dtype_name,
            "time_major": time_major, "has_sequence_length": has_seq,
            "has_initial_state": has_init, "tf_version": tf.__version__}
    if bidi:
        meta["cell_fw"], meta["cell_bw"] = case["cell_fw"], case["cell_bw"]
    else:
        meta["cell"] = case["cell"]
    save["meta"] = np.array(json.dumps(meta, sort_keys=True))
    meta["_n_dead_weights"] = n_dead   # not saved; used by write_case()

    for k, v in save.items():
        if k != "meta":
            assert v.dtype != object, k
            if v.dtype.kind == "f":
                assert v.dtype == npdt, (k, v.dtype)
                assert np.all(np.isfinite(v)), k
    return save, meta


def clips_exercised(case, save):
    """For a single LSTMCell with cell_clip / proj_clip: True iff the clip is
    actually active somewhere (and not everywhere) in the saved results, so the
    fixture really tests it.  Other cases: always True."""
    sp = case.get("cell")
    if not sp or sp["type"] != "LSTMCell":
        return True
    kw = sp["kwargs"]
    required = case.get("require_clips", ("cell_clip", "proj_clip"))
    ok = True
    if kw.get("proj_clip") is not None and "proj_clip" in required:
        a = np.abs(save["out"]).ravel()
        hit = a >= kw["proj_clip"] * (1 - 1e-6)
        ok &= bool(hit.any() and not hit.all())
    if kw.get("cell_clip") is not None and "cell_clip" in required:
        c = save["state/0"]
        if c.shape[1] != sp["num_units"]:          # state_is_tuple=False
            c = c[:, :sp["num_units"]]
        if "sequence_length" in save:               # rows of length 0 keep init
            c = c[save["sequence_length"] > 0]
        hit = np.abs(c) >= kw["cell_clip"] * (1 - 1e-6)
        ok &= bool(hit.any() and not hit.all())
    return ok


def write_case(case, max_salt=500):
    """Run a case; if the first seed leaves a weight element without influence
    (for cases not marked allow_dead) or does not exercise the clip options,
    retry with seeds derived from "<case>#<salt>" (still deterministic)."""
    for salt in range(max_salt):
        save, meta = run_case(case, salt)
        if ((case.get("allow_dead") or meta["_n_dead_weights"] == 0)
                and clips_exercised(case, save)):
            break
    else:
        raise AssertionError("%s: no seed made every weight matter and "
                             "exercised the clip options" % case["case"])
    path = os.path.join(OUT_DIR, case["case"] + ".npz")
    np.savez_compressed(path, **save)
    return save, meta, salt


# --------------------------------------------------------------------------
# case list
# --------------------------------------------------------------------------
TUTORIAL_X = [[[0, 1, 2], [9, 8, 7]], [[3, 4, 5], [5, 1, 9]],
              [[6, 7, 8], [6, 5, 4]], [[9, 0, 1], [3, 2, 1]]]

# (time_major, has_initial_state, has_sequence_length) combos cycled over
# the item-2 cases so every combination occurs several times.
COMBOS = [(tm, ini, sl) for tm in (False, True) for ini in (False, True)
          for sl in (True, False)]


def wildml_hook(x):
    x = x.copy()
    x[1, 6:] = 0.0   # the second example is padded after 6 steps
    return x


def all_cases():
    cases = []
    # 1. tutorial
    for nm, sp in [("tutorial_basic_rnn", spec("BasicRNNCell", 5)),
                   ("tutorial_basic_lstm", spec("BasicLSTMCell", 5)),
                   ("tutorial_multi_lstm", multi([spec("BasicLSTMCell", 4),
                                                  spec("BasicLSTMCell", 5)]))]:
        cases.append(dict(case=nm, driver="dynamic_rnn", dtype="float32", cell=sp,
                          batch=4, time=2, depth=3, inputs=TUTORIAL_X,
                          sequence_length=[2, 1, 2, 2], initial_state="zero"))
    # 2. dynamic_rnn grid
    k = 0
    for i, (cname, sp) in enumerate(CELL_CONFIGS):
        for dt in ("float32", "float64"):
            # float32 cycles through the 8 combos, float64 does too, shifted
            # by 3 so the two variants of a cell always differ.
            tm, ini, sl = COMBOS[(i + (3 if dt == "float64" else 0)) % len(COMBOS)]
            k += 1
            cases.append(dict(case="dynamic_%s_%s" % (cname, dt), driver="dynamic_rnn",
                              dtype=dt, cell=sp, time_major=tm,
                              batch=5 if sl else 3, time=6 if dt == "float32" else 7,
                              depth=3 + k % 4,
                              sequence_length="ragged" if sl else None,
                              initial_state="random" if ini else None))
    lstm_pp = spec("LSTMCell", 5, use_peepholes=True, num_proj=3)
    cases.append(dict(case="dynamic_all_lengths_zero", allow_dead=True, driver="dynamic_rnn",
                      dtype="float32", cell=lstm_pp, batch=3, time=4, depth=3,
                      sequence_length=[0, 0, 0], initial_state="random"))
    cases.append(dict(case="dynamic_all_lengths_zero_noinit", allow_dead=True, driver="dynamic_rnn",
                      dtype="float32", cell=spec("GRUCell", 4), batch=3, time=4,
                      depth=3, time_major=True, sequence_length=[0, 0, 0]))
    cases.append(dict(case="dynamic_time0", allow_dead=True, driver="dynamic_rnn", dtype="float32",
                      cell=lstm_pp, batch=3, time=0, depth=3,
                      initial_state="random"))
    cases.append(dict(case="dynamic_time0_time_major_noinit", allow_dead=True, driver="dynamic_rnn",
                      dtype="float32", cell=spec("GRUCell", 4), batch=3, time=0,
                      depth=3, time_major=True))
    cases.append(dict(case="dynamic_time0_seqlen", allow_dead=True, driver="dynamic_rnn",
                      dtype="float32", cell=spec("BasicLSTMCell", 4), batch=3,
                      time=0, depth=3, sequence_length=[0, 0, 0],
                      initial_state="random"))
    cases.append(dict(case="dynamic_batch0", allow_dead=True, driver="dynamic_rnn", dtype="float32",
                      cell=spec("BasicLSTMCell", 4), batch=0, time=3, depth=3,
                      sequence_length=[], initial_state="zero"))
    # 3. static_rnn
    for cname, sp in [("basic_rnn", spec("BasicRNNCell", 5)),
                      ("basic_lstm", spec("BasicLSTMCell", 4)),
                      ("lstm_peep_proj", lstm_pp)]:
        for sl in (True, False):
            cases.append(dict(case="static_%s_%s" % (cname, "len" if sl else "nolen"),
                              driver="static_rnn", dtype="float32", cell=sp,
                              batch=5 if sl else 3, time=5, depth=4,
                              sequence_length="ragged" if sl else None,
                              initial_state="random" if (cname == "lstm_peep_proj" and sl) else None))
    # 4. bidirectional_dynamic_rnn
    cases.append(dict(case="bidi_dynamic_lstm_gru", driver="bidirectional_dynamic_rnn",
                      dtype="float32", cell_fw=spec("LSTMCell", 5), cell_bw=spec("GRUCell", 3),
                      batch=5, time=6, depth=4, sequence_length="ragged",
                      initial_state="random"))
    cases.append(dict(case="bidi_dynamic_basic_lstm_time_major",
                      driver="bidirectional_dynamic_rnn", dtype="float32",
                      cell_fw=spec("BasicLSTMCell", 4), cell_bw=spec("BasicLSTMCell", 4),
                      time_major=True, batch=5, time=6, depth=3, sequence_length="ragged"))
    cases.append(dict(case="bidi_dynamic_nolen", driver="bidirectional_dynamic_rnn",
                      dtype="float64",
                      cell_fw=spec("LSTMCell", 4, use_peepholes=True, num_proj=3),
                      cell_bw=spec("BasicRNNCell", 5), batch=3, time=5, depth=4))
    # 5. static_bidirectional_rnn
    cases.append(dict(case="static_bidi_basic_lstm_len", driver="static_bidirectional_rnn",
                      dtype="float32", cell_fw=spec("BasicLSTMCell", 4),
                      cell_bw=spec("BasicLSTMCell", 4), batch=5, time=6, depth=3,
                      sequence_length="ragged"))
    cases.append(dict(case="static_bidi_rnn_gru_nolen", driver="static_bidirectional_rnn",
                      dtype="float32", cell_fw=spec("BasicRNNCell", 5),
                      cell_bw=spec("GRUCell", 3), batch=3, time=5, depth=4))
    # 6. cell_call
    for cname, sp in CELL_CONFIGS:
        cases.append(dict(case="cell_%s" % cname, driver="cell_call", dtype="float32",
                          cell=sp, batch=4, depth=3, initial_state="random"))
    # With a U(-0.5,0.5) state one step essentially never reaches |c| = 1.0, so
    # cell_lstm_proj_clip only exercises proj_clip; this extra case uses a
    # larger initial state (U(-2,2)) so cell_clip=1.0 is active too.
    [pc] = [c for c in cases if c["case"] == "cell_lstm_proj_clip"]
    pc["require_clips"] = ("proj_clip",)
    cases.append(dict(case="cell_lstm_proj_clip_big_state", driver="cell_call",
                      dtype="float32", cell=dict(CELL_CONFIGS)["lstm_proj_clip"], batch=4, depth=3,
                      initial_state="random", init_scale=2.0))
    # 7. WildML-style tutorial
    cases.append(dict(case="lstm_float64_lengths_10_6", driver="dynamic_rnn",
                      dtype="float64", cell=spec("LSTMCell", 8), batch=2, time=10,
                      depth=8, sequence_length=[10, 6], input_hook=wildml_hook))
    return cases


def main(argv):
    os.makedirs(OUT_DIR, exist_ok=True)
    cases = all_cases()
    names = [c["case"] for c in cases]
    assert len(names) == len(set(names)), "duplicate case names"
    # weights cannot matter when no step is ever computed
    for c in cases:
        assert bool(c.get("allow_dead")) == (c["case"].startswith(
            ("dynamic_all_lengths_zero", "dynamic_time0", "dynamic_batch0"))), c["case"]
    if argv:
        unknown = set(argv) - set(names)
        assert not unknown, unknown
        cases = [c for c in cases if c["case"] in argv]
    print("TensorFlow", tf.__version__, "numpy", np.__version__)
    refused = []
    for c in cases:
        path = os.path.join(OUT_DIR, c["case"] + ".npz")
        try:
            save, meta, salt = write_case(c)
        except AssertionError:
            raise  # a bug in this script, not TF refusing the configuration
        except Exception as e:  # TF refused this configuration
            if os.path.exists(path):
                os.remove(path)
            msg = "%s: %s" % (type(e).__name__, str(e).strip().splitlines()[0][:300])
            refused.append((c["case"], msg))
            print("REFUSED %-40s %s" % (c["case"], msg))
            continue
        shapes = " ".join("%s%s" % (k, list(v.shape)) for k, v in sorted(save.items())
                          if k in ("inputs", "out", "out_fw", "out_bw"))
        print("ok      %-40s %s%s" % (c["case"], shapes,
                                         "  (seed salt %d)" % salt if salt else ""))
    total = sum(os.path.getsize(os.path.join(OUT_DIR, f))
                for f in os.listdir(OUT_DIR) if f.endswith(".npz"))
    print("%d cases written, %d refused, fixtures total %d bytes"
          % (len(cases) - len(refused), len(refused), total))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
