#!/usr/bin/env python3
"""Generate TF1 artifacts (training checkpoints, a SavedModel, frozen graphs) for fastrnn's interop tests.

What it makes (under ``tests/fixtures/artifacts/``), each with ``<case>.npz``
holding the inputs and what real TensorFlow computed from that artifact:

``train_adam_ema``        a checkpoint saved by ``tf.train.Saver`` after 3 ``AdamOptimizer`` steps with
                          an ``ExponentialMovingAverage(0.5)`` applied after each: a two-layer
                          ``MultiRNNCell([LSTMCell(5, use_peepholes=True), GRUCell(3)])`` under
                          ``encoder/rnn``, a dense head, ``global_step``, Adam's slots and
                          ``beta1_power``/``beta2_power``, every trainable variable's moving average.
                          ``out``/``state/<i>``: the trained weights' outputs; ``ema_out``/``ema_state/<i>``:
                          the outputs of the same model restored in a fresh graph with
                          ``Saver(ema.variables_to_restore())`` (TF1's way to evaluate the averages).
``train_slots``           float64; four RNNs each trained 2 steps by its own optimizer, so the checkpoint
                          holds Momentum, RMSProp (2 slots), Adagrad and Ftrl (2 slots) slot variables:
                          ``momentum/rnn`` BasicLSTMCell(4), ``rmsprop/rnn`` GRUCell(3), ``adagrad/rnn``
                          BasicRNNCell(3), ``ftrl/rnn`` LSTMCell(3, num_proj=2).
                          ``out/<scope>``, ``state/<scope>/<i>``.
``saved_model_peephole/`` a SavedModel (``tf.compat.v1.saved_model.simple_save``) of
                          ``LSTMCell(6, use_peepholes=True, num_proj=4)`` under ``encoder/rnn``; the golden
                          outputs come from loading that SavedModel in a fresh session.
``frozen_stack.pb``       a frozen GraphDef (``convert_variables_to_constants``) built the TF 1.x way
                          (reference variables, while-loop control flow v1): ``dynamic_rnn`` over
                          ``MultiRNNCell([BasicLSTMCell(4), GRUCell(3), BasicRNNCell(3)])``; inputs
                          ``inputs:0`` [batch, time, 3] and ``lengths:0``, outputs ``outputs:0`` and the final
                          state ``state_<i>:0``; the golden outputs come from running the frozen graph.
``frozen_static.pb``      a frozen GraphDef (resource variables, control flow v2) with ``static_rnn`` of a
                          BasicLSTMCell(4) under ``decoder``, without sequence_length (its per-step constants
                          ``decoder/basic_lstm_cell/Const_*`` live under the cell's scope) and, with
                          ``sequence_length``, ``static_bidirectional_rnn`` of
                          ``LSTMCell(4, use_peepholes=True)`` / ``GRUCell(3)``, plus float constants stored as
                          one value broadcast to a shape, and float64 ones (``const/<name>``: their values).

Every ``.npz`` has ``meta`` (0-d unicode, JSON): {"case", "kind", "dtype", "tf_version", "discover":
{scope: SPEC or [SPEC_fw, SPEC_bw]} -- the cells the TF code built, what ``find_tf_cells`` must find --,
and per kind the tensor names}, ``inputs`` [batch, time, depth] and ``sequence_length``.  SPEC is the
cell spec of ``tools/make_tf_fixtures.py``.  Checkpoints also store ``var/<name>`` (every variable's value).

Every weight starts from a random non-default value; each case has its own
``default_rng(crc32(case))``.  Run (TensorFlow is never a test dependency)::

    /work/tfenv/bin/python tools/make_tf_artifacts.py [CASE ...]
"""

import json
import os
import shutil
import sys
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_tf_checkpoints import DTYPES, build_cell, multi, rand_for, spec, tf, tf1  # noqa: E402

import numpy as np  # noqa: E402

OUT_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "fixtures",
                       "artifacts")
BATCH, TIME, DEPTH = 4, 3, 3
LENGTHS = np.array([3, 1, 0, 2], np.int32)


def start(case, dtype):
    rng = np.random.default_rng(zlib.crc32(case.encode()))
    x = rng.standard_normal((BATCH, TIME, DEPTH)).astype(DTYPES[dtype][1])
    meta = {"case": case, "dtype": dtype, "tf_version": tf.__version__}
    return rng, x, meta, {"inputs": x, "sequence_length": LENGTHS}


def randomize(sess, rng, variables, npdt):
    sess.run([v.assign(rand_for(rng, v.shape.as_list()).astype(npdt)) for v in variables])


def put_state(data, key, state):
    for i, a in enumerate(tf.nest.flatten(state)):
        data["%s/%d" % (key, i)] = np.asarray(a)


def save_npz(case, data, meta):
    data["meta"] = np.array(json.dumps(meta, sort_keys=True))
    np.savez_compressed(os.path.join(OUT_DIR, case + ".npz"), **data)


def make_train_adam_ema(case):
    rng, x, meta, data = start(case, "float32")
    tfdt, npdt = DTYPES["float32"]
    cell_spec = multi([spec("LSTMCell", 5, use_peepholes=True), spec("GRUCell", 3)])
    target = rng.standard_normal((BATCH, TIME, 2)).astype(npdt)

    def model(px, pl):
        with tf1.variable_scope("encoder"):
            outputs, state = tf1.nn.dynamic_rnn(build_cell(cell_spec), px, sequence_length=pl, dtype=tfdt)
        return outputs, state, tf1.layers.dense(outputs, 2, name="head")

    g = tf.Graph()
    with g.as_default():
        px, pl = tf1.placeholder(tfdt, x.shape), tf1.placeholder(tf.int32, LENGTHS.shape)
        outputs, state, logits = model(px, pl)
        loss = tf.reduce_mean(tf.square(logits - target))
        step = tf1.train.AdamOptimizer(0.05).minimize(loss, global_step=tf1.train.get_or_create_global_step())
        ema = tf1.train.ExponentialMovingAverage(0.5)
        with tf.control_dependencies([step]):
            train = ema.apply(tf1.trainable_variables())
        with tf1.Session(graph=g) as sess:
            sess.run(tf1.global_variables_initializer())
            randomize(sess, rng, tf1.trainable_variables(), npdt)
            # the random values play the initializers' part: the moving averages start from them
            sess.run([ema.average(v).assign(v) for v in tf1.trainable_variables()])
            for _ in range(3):
                sess.run(train, {px: x, pl: LENGTHS})
            tf1.train.Saver().save(sess, os.path.join(OUT_DIR, case), write_meta_graph=False, write_state=False)
            out, st = sess.run([outputs, state], {px: x, pl: LENGTHS})
            for v in tf1.global_variables():
                data["var/" + v.op.name] = sess.run(v)
    data["out"] = out
    put_state(data, "state", st)
    # TF1's evaluation of the averages: a fresh graph, the moving averages restored into the variables.
    g = tf.Graph()
    with g.as_default():
        px, pl = tf1.placeholder(tfdt, x.shape), tf1.placeholder(tf.int32, LENGTHS.shape)
        outputs, state, _ = model(px, pl)
        saver = tf1.train.Saver(tf1.train.ExponentialMovingAverage(0.5).variables_to_restore())
        with tf1.Session(graph=g) as sess:
            saver.restore(sess, os.path.join(OUT_DIR, case))
            out, st = sess.run([outputs, state], {px: x, pl: LENGTHS})
    data["ema_out"] = out
    put_state(data, "ema_state", st)
    meta.update(kind="checkpoint", scope="encoder/rnn", cell=cell_spec, discover={"encoder/rnn": cell_spec})
    save_npz(case, data, meta)


SLOT_CASES = {
    "momentum": (spec("BasicLSTMCell", 4), lambda: tf1.train.MomentumOptimizer(0.1, 0.9)),
    "rmsprop": (spec("GRUCell", 3), lambda: tf1.train.RMSPropOptimizer(0.01)),
    "adagrad": (spec("BasicRNNCell", 3), lambda: tf1.train.AdagradOptimizer(0.1)),
    "ftrl": (spec("LSTMCell", 3, num_proj=2), lambda: tf1.train.FtrlOptimizer(0.1)),
}


def make_train_slots(case):
    rng, x, meta, data = start(case, "float64")
    tfdt, npdt = DTYPES["float64"]
    g = tf.Graph()
    with g.as_default():
        px, pl = tf1.placeholder(tfdt, x.shape), tf1.placeholder(tf.int32, LENGTHS.shape)
        fetch, steps = {}, []
        for name, (cell_spec, optimizer) in SLOT_CASES.items():
            with tf1.variable_scope(name):
                outputs, state = tf1.nn.dynamic_rnn(build_cell(cell_spec), px, sequence_length=pl, dtype=tfdt)
            fetch[name] = (outputs, state)
            mine = [v for v in tf1.trainable_variables() if v.op.name.startswith(name + "/")]
            steps.append(optimizer().minimize(tf.reduce_sum(tf.square(outputs - 0.5)), var_list=mine))
        with tf1.Session(graph=g) as sess:
            sess.run(tf1.global_variables_initializer())
            randomize(sess, rng, tf1.trainable_variables(), npdt)
            for _ in range(2):
                sess.run(steps, {px: x, pl: LENGTHS})
            tf1.train.Saver().save(sess, os.path.join(OUT_DIR, case), write_meta_graph=False, write_state=False)
            res = sess.run(fetch, {px: x, pl: LENGTHS})
            for v in tf1.global_variables():
                data["var/" + v.op.name] = sess.run(v)
    for name, (out, st) in res.items():
        data["out/%s/rnn" % name] = out
        put_state(data, "state/%s/rnn" % name, st)
    meta.update(kind="checkpoint", discover={name + "/rnn": s for name, (s, _) in SLOT_CASES.items()})
    save_npz(case, data, meta)


def make_saved_model(case):
    rng, x, meta, data = start(case, "float32")
    tfdt, npdt = DTYPES["float32"]
    cell_spec = spec("LSTMCell", 6, use_peepholes=True, num_proj=4)
    path = os.path.join(OUT_DIR, case)
    shutil.rmtree(path, ignore_errors=True)
    g = tf.Graph()
    with g.as_default():
        px = tf1.placeholder(tfdt, [None, None, DEPTH], name="inputs")
        pl = tf1.placeholder(tf.int32, [None], name="lengths")
        with tf1.variable_scope("encoder"):
            outputs, state = tf1.nn.dynamic_rnn(build_cell(cell_spec), px, sequence_length=pl, dtype=tfdt)
        with tf1.Session(graph=g) as sess:
            sess.run(tf1.global_variables_initializer())
            randomize(sess, rng, tf1.global_variables(), npdt)
            tf1.saved_model.simple_save(sess, path, {"inputs": px, "lengths": pl},
                                        {"outputs": outputs, "c": state.c, "h": state.h})
    # The golden numbers: the SavedModel loaded back by TensorFlow.
    g = tf.Graph()
    with g.as_default(), tf1.Session(graph=g) as sess:
        sig = tf1.saved_model.loader.load(sess, ["serve"], path).signature_def["serving_default"]
        names = {k: v.name for k, v in sig.outputs.items()}
        res = sess.run(names, {sig.inputs["inputs"].name: x, sig.inputs["lengths"].name: LENGTHS})
    data["out"] = res["outputs"]
    data["state/0"], data["state/1"] = res["c"], res["h"]
    meta.update(kind="saved_model", scope="encoder/rnn", cell=cell_spec, discover={"encoder/rnn": cell_spec})
    save_npz(case, data, meta)


def freeze(sess, g, outputs, path):
    frozen = tf1.graph_util.convert_variables_to_constants(sess, g.as_graph_def(), outputs)
    with open(path, "wb") as f:
        f.write(frozen.SerializeToString(deterministic=True))  # attribute maps in a fixed order


def run_frozen(path, feeds, fetches):
    """Run a frozen graph as a user serving it would: import it into a fresh graph."""
    gd = tf1.GraphDef()
    with open(path, "rb") as f:
        gd.ParseFromString(f.read())
    g = tf.Graph()
    with g.as_default():
        tf1.import_graph_def(gd, name="")
        with tf1.Session(graph=g) as sess:
            return sess.run(fetches, feeds)


def make_frozen_stack(case):
    rng, x, meta, data = start(case, "float32")
    tfdt, npdt = DTYPES["float32"]
    cell_spec = multi([spec("BasicLSTMCell", 4), spec("GRUCell", 3), spec("BasicRNNCell", 3)])
    path = os.path.join(OUT_DIR, case + ".pb")
    # TF 1.x's defaults: reference variables (Variable + Identity '/read'), while-loop control flow v1.
    tf1.disable_resource_variables()
    tf1.disable_control_flow_v2()
    try:
        g = tf.Graph()
        with g.as_default():
            px = tf1.placeholder(tfdt, [None, None, DEPTH], name="inputs")
            pl = tf1.placeholder(tf.int32, [None], name="lengths")
            outputs, state = tf1.nn.dynamic_rnn(build_cell(cell_spec), px, sequence_length=pl, dtype=tfdt)
            names = ["outputs"] + ["state_%d" % i for i in range(len(tf.nest.flatten(state)))]
            for name, t in zip(names, [outputs] + tf.nest.flatten(state)):
                tf.identity(t, name=name)
            with tf1.Session(graph=g) as sess:
                sess.run(tf1.global_variables_initializer())
                randomize(sess, rng, tf1.global_variables(), npdt)
                freeze(sess, g, names, path)
    finally:
        tf1.enable_resource_variables()
        tf1.enable_control_flow_v2()
    res = run_frozen(path, {"inputs:0": x, "lengths:0": LENGTHS}, [n + ":0" for n in names])
    data["out"] = res[0]
    for i, a in enumerate(res[1:]):
        data["state/%d" % i] = a
    meta.update(kind="frozen_graph", scope="rnn", cell=cell_spec, discover={"rnn": cell_spec},
                feeds=["inputs:0", "lengths:0"], fetches=[n + ":0" for n in names])
    save_npz(case, data, meta)


STATIC_CONSTS = {  # name -> (value, dtype, shape): stored as TF's make_tensor_proto stores them
    "aux/broadcast": (0.25, "float32", [2, 3]),           # one float_val, broadcast to the shape
    "aux/double": (np.arange(6.0).reshape(2, 3) * 0.5 - 1, "float64", None),   # tensor_content
    "aux/double_broadcast": (1.5, "float64", [4]),       # one double_val, broadcast
    "aux/scalar": (-2.5, "float32", None),               # a scalar float_val
    "aux/int": ([1, 2, 3], "int32", None),               # not a float: left out by load_tf_graph
}


def make_frozen_static(case):
    rng, x, meta, data = start(case, "float32")
    tfdt, npdt = DTYPES["float32"]
    dec_spec = spec("BasicLSTMCell", 4)
    fw_spec, bw_spec = spec("LSTMCell", 4, use_peepholes=True), spec("GRUCell", 3)
    path = os.path.join(OUT_DIR, case + ".pb")
    g = tf.Graph()
    with g.as_default():
        px = tf1.placeholder(tfdt, [None, TIME, DEPTH], name="inputs")
        pl = tf1.placeholder(tf.int32, [None], name="lengths")
        steps = tf.unstack(px, axis=1)
        # without sequence_length, static_rnn's per-step constants (decoder/basic_lstm_cell/Const_1, ...) sit
        # under the cell's own scope, next to its weights
        dec_out, dec_state = tf1.nn.static_rnn(build_cell(dec_spec), steps, dtype=tfdt, scope="decoder")
        bi_out, st_fw, st_bw = tf1.nn.static_bidirectional_rnn(build_cell(fw_spec), build_cell(bw_spec), steps,
                                                               sequence_length=pl, dtype=tfdt)
        fetch = {"out_decoder": tf.stack(dec_out, 1), "out_bidi": tf.stack(bi_out, 1)}
        for key, st in (("state_decoder", dec_state), ("state_fw", st_fw), ("state_bw", st_bw)):
            for i, t in enumerate(tf.nest.flatten(st)):
                fetch["%s/%d" % (key, i)] = t
        for name, (value, dtype, shape) in STATIC_CONSTS.items():
            fetch["const/" + name] = tf.constant(value, dtype=getattr(tf, dtype), shape=shape, name=name)
        outs = {}
        for key, t in fetch.items():
            outs[key] = tf.identity(t, name="fetch/" + key).op.name
        with tf1.Session(graph=g) as sess:
            sess.run(tf1.global_variables_initializer())
            randomize(sess, rng, tf1.global_variables(), npdt)
            freeze(sess, g, sorted(outs.values()), path)
    res = run_frozen(path, {"inputs:0": x, "lengths:0": LENGTHS}, {k: v + ":0" for k, v in outs.items()})
    data.update(res)
    meta.update(kind="frozen_graph", discover={"decoder": dec_spec, "bidirectional_rnn": [fw_spec, bw_spec]},
                feeds=["inputs:0", "lengths:0"])
    save_npz(case, data, meta)


CASES = {"train_adam_ema": make_train_adam_ema, "train_slots": make_train_slots,
         "saved_model_peephole": make_saved_model, "frozen_stack": make_frozen_stack,
         "frozen_static": make_frozen_static}


def main(argv):
    os.makedirs(OUT_DIR, exist_ok=True)
    tf1.disable_eager_execution()
    for case, make in CASES.items():
        if not argv or case in argv:
            make(case)
            print("wrote", case)


if __name__ == "__main__":
    main(sys.argv[1:])
