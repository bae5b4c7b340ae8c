#!/usr/bin/env python3
"""Generate TF1 checkpoints and Keras weight fixtures for fastrnn's interop tests.

What it makes (under ``tests/fixtures/checkpoints/``)
-----------------------------------------------------
For each checkpoint case ``<case>``: a real TensorFlow V2 checkpoint written by
``tf.compat.v1.train.Saver`` (``<case>.index`` + ``<case>.data-00000-of-00001``)
of a small TF1 graph (legacy ``rnn_cell`` cells under ``dynamic_rnn`` /
``bidirectional_dynamic_rnn``), plus ``<case>.npz`` holding what TF computed:

``meta``       0-d unicode array, JSON: {"case", "driver", "dtype", "scope",
               "cell" (or "cell_fw"/"cell_bw"): SPEC, "extra": [names of
               non-RNN variables in the checkpoint], "tf_version"}.  SPEC is
               the cell spec of ``tools/make_tf_fixtures.py``.
``inputs``     [batch, time, depth];  ``sequence_length`` int32 [batch].
``out`` / ``out_fw``, ``out_bw``   outputs;  ``state/<i>`` (``state_fw/<i>``,
               ``state_bw/<i>``) the final state flattened in nest order.
``var/<name>`` every variable's value as TF holds it (to compare the reader).

For each Keras case ``keras_<case>.npz``: ``meta`` (JSON: {"layer": "LSTM" |
"GRU" | "SimpleRNN", "units", "config": {...}, "tf_version"}), ``weights/<i>``
the layer's ``get_weights()`` list, ``inputs`` [batch, time, depth] and ``out``
(``return_sequences=True``) and ``state/<i>`` (``return_state=True``).

Every variable gets a random non-default value; each case has its own
``default_rng(crc32(case))`` so the files are reproducible.

How to run (TensorFlow is never a test dependency)::

    /tmp/tfenv/bin/python tools/make_tf_checkpoints.py
"""

import json
import os
import sys
import warnings
import zlib

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

tf.get_logger().setLevel("ERROR")
tf1 = tf.compat.v1
RC = tf1.nn.rnn_cell

HERE = os.path.dirname(os.path.abspath(__file__))
OUT_DIR = os.path.join(os.path.dirname(HERE), "tests", "fixtures", "checkpoints")
DTYPES = {"float32": (tf.float32, np.float32), "float64": (tf.float64, np.float64)}


def spec(type_, num_units, **kwargs):
    return {"type": type_, "num_units": num_units, "kwargs": kwargs}


def multi(cells):
    return {"type": "MultiRNNCell", "cells": cells, "kwargs": {"state_is_tuple": True}}


def build_cell(s):
    kw = dict(s["kwargs"])
    if s["type"] == "MultiRNNCell":
        return RC.MultiRNNCell([build_cell(c) for c in s["cells"]], **kw)
    return getattr(RC, s["type"])(s["num_units"], **kw)


CKPT_CASES = {
    "basic_lstm": dict(driver="dynamic_rnn", dtype="float32", cell=spec("BasicLSTMCell", 5)),
    "basic_rnn_dense": dict(driver="dynamic_rnn", dtype="float32", cell=spec("BasicRNNCell", 4), extra=True),
    "multi_lstm_peep_gru": dict(driver="dynamic_rnn", dtype="float64",
                                cell=multi([spec("LSTMCell", 5, use_peepholes=True, num_proj=3),
                                            spec("LSTMCell", 4), spec("GRUCell", 3)])),
    "bidi_lstm_gru": dict(driver="bidirectional_dynamic_rnn", dtype="float32",
                          cell_fw=spec("BasicLSTMCell", 4), cell_bw=spec("GRUCell", 3)),
}


def rand_for(rng, shape):
    if len(shape) == 2:
        return rng.uniform(-1.0, 1.0, size=shape) / np.sqrt(shape[0])
    return rng.uniform(-0.5, 0.5, size=shape)


def make_ckpt(case, c):
    rng = np.random.default_rng(zlib.crc32(case.encode()))
    tfdt, npdt = DTYPES[c["dtype"]]
    batch, time, depth = 4, 3, 3
    x = rng.standard_normal((batch, time, depth)).astype(npdt)
    lens = np.array([3, 1, 0, 2], np.int32)
    out = {"inputs": x, "sequence_length": lens}
    meta = {"case": case, "driver": c["driver"], "dtype": c["dtype"], "scope": None, "extra": [],
            "tf_version": tf.__version__}
    g = tf.Graph()
    with g.as_default():
        px = tf1.placeholder(tfdt, x.shape)
        pl = tf1.placeholder(tf.int32, lens.shape)
        if c["driver"] == "dynamic_rnn":
            meta["cell"], meta["scope"] = c["cell"], "rnn"
            outputs, state = tf1.nn.dynamic_rnn(build_cell(c["cell"]), px, sequence_length=pl, dtype=tfdt)
            fetch = {"out": outputs, "state": state}
        else:
            meta["cell_fw"], meta["cell_bw"], meta["scope"] = c["cell_fw"], c["cell_bw"], "bidirectional_rnn"
            (ofw, obw), (sfw, sbw) = tf1.nn.bidirectional_dynamic_rnn(
                build_cell(c["cell_fw"]), build_cell(c["cell_bw"]), px, sequence_length=pl, dtype=tfdt)
            fetch = {"out_fw": ofw, "out_bw": obw, "state_fw": sfw, "state_bw": sbw}
        if c.get("extra"):
            # a model around the RNN: a dense head and the global step (int64) live in the same file
            tf1.layers.dense(outputs, 2, name="dense")
            tf1.train.get_or_create_global_step()
        assigns = []
        for v in tf1.global_variables():
            if v.dtype.base_dtype.is_floating:
                assigns.append(v.assign(rand_for(rng, v.shape.as_list()).astype(npdt)))
            else:
                assigns.append(v.assign(tf.constant(1234567890123, v.dtype.base_dtype)))
        meta["extra"] = sorted(v.name[:-2] for v in tf1.global_variables()
                               if not v.name.startswith(meta["scope"] + "/"))
        saver = tf1.train.Saver()
        with tf1.Session(graph=g) as sess:
            sess.run(tf1.global_variables_initializer())
            sess.run(assigns)
            res = sess.run(fetch, {px: x, pl: lens})
            for v in tf1.global_variables():
                out["var/" + v.name[:-2]] = sess.run(v)
            saver.save(sess, os.path.join(OUT_DIR, case), write_meta_graph=False, write_state=False)
    for key, value in res.items():
        if key.startswith("out"):
            out[key] = value
        else:
            for i, a in enumerate(tf.nest.flatten(value)):
                out["%s/%d" % (key, i)] = np.asarray(a)
    out["meta"] = np.array(json.dumps(meta, sort_keys=True))
    np.savez_compressed(os.path.join(OUT_DIR, case + ".npz"), **out)


KERAS_CASES = {
    "lstm": ("LSTM", 4, {}),
    "gru_reset_after": ("GRU", 4, {"reset_after": True}),
    "gru_reset_before": ("GRU", 3, {"reset_after": False}),
    "simple_rnn": ("SimpleRNN", 5, {}),
}


def make_keras(case, layer, units, config):
    tf.keras.backend.clear_session()
    rng = np.random.default_rng(zlib.crc32(("keras_" + case).encode()))
    x = rng.standard_normal((3, 4, 3)).astype(np.float32)
    with tf.Graph().as_default():
        layer_obj = getattr(tf.keras.layers, layer)(units, return_sequences=True, return_state=True, **config)
        inp = tf.keras.Input(shape=x.shape[1:])
        result = layer_obj(inp)
        model = tf.keras.Model(inp, result)
        weights = [rand_for(rng, w.shape).astype(np.float32) for w in layer_obj.get_weights()]
        layer_obj.set_weights(weights)
        res = model.predict(x, verbose=0)
    data = {"inputs": x, "out": res[0]}
    for i, a in enumerate(res[1:]):
        data["state/%d" % i] = a
    for i, w in enumerate(weights):
        data["weights/%d" % i] = w
    data["meta"] = np.array(json.dumps({"layer": layer, "units": units, "config": config,
                                        "tf_version": tf.__version__}, sort_keys=True))
    np.savez_compressed(os.path.join(OUT_DIR, "keras_%s.npz" % case), **data)


def main(argv):
    os.makedirs(OUT_DIR, exist_ok=True)
    tf1.disable_eager_execution()
    for case, c in CKPT_CASES.items():
        if not argv or case in argv:
            make_ckpt(case, c)
            print("wrote", case)
    for case, (layer, units, config) in KERAS_CASES.items():
        if not argv or "keras_" + case in argv:
            make_keras(case, layer, units, config)
            print("wrote keras_" + case)


if __name__ == "__main__":
    main(sys.argv[1:])
