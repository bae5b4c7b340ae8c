"""The five TF1 tutorials our users have read, ported line by line (issue 13).

Each test is a tutorial's code with only what TensorFlow needs and fastrnn does not: no graph,
placeholder, session or ``feed_dict`` -- the arrays that were fed go straight into the call, the
integer batches included (TF's feed rule converts them; so does fastrnn) -- and ``tf`` standing
for the fastrnn modules of the same names (``tf.contrib.rnn`` is ``fastrnn.contrib.rnn``,
``tf.nn`` is ``fastrnn.nn``).  The tutorials' printed numbers come from random weights; their
shapes, structures and claims are checked, and every result against the reference with the same
weights.
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

import fastrnn
import fastrnn.reference as ref

from helpers import assert_close, twin

tf = SimpleNamespace(float32=np.float32, float64=np.float64, int32=np.int32,
                     contrib=fastrnn.contrib, nn=fastrnn.nn,
                     compat=SimpleNamespace(v1=SimpleNamespace(nn=fastrnn.nn)))
rnn, rnn_cell = fastrnn.nn, fastrnn.nn.rnn_cell  # from tensorflow.python.ops import rnn, rnn_cell

# "Create a batch of training examples", shape (4, 2, 3): integers, as in the tutorials
X_batch = np.array([
    # t = 0      t = 1
    [[0, 1, 2], [9, 8, 7]],  # instance 0
    [[3, 4, 5], [5, 1, 9]],  # instance 1
    [[6, 7, 8], [6, 5, 4]],  # instance 2
    [[9, 0, 1], [3, 2, 1]],  # instance 3
])


def as_reference(cell, inputs, dtype, **kwargs):
    """The reference's dynamic_rnn on ``cell``'s configuration and weights."""
    return ref.dynamic_rnn(twin(cell), np.asarray(inputs, dtype), dtype=dtype, **kwargs)


def test_contrib_rnn_is_tf_contrib_rnn():
    from fastrnn.contrib import rnn as contrib_rnn
    from fastrnn.interop import stack_bidirectional_dynamic_rnn
    for name in ("RNNCell", "BasicRNNCell", "BasicLSTMCell", "LSTMCell", "GRUCell", "MultiRNNCell", "LSTMStateTuple",
                 "static_rnn", "static_bidirectional_rnn"):
        assert getattr(contrib_rnn, name) is getattr(fastrnn, name), name
    assert contrib_rnn.stack_bidirectional_dynamic_rnn is stack_bidirectional_dynamic_rnn
    assert set(contrib_rnn.__all__) <= set(dir(contrib_rnn)) | {"stack_bidirectional_dynamic_rnn"}
    with pytest.raises(AttributeError, match="has no attribute 'dynamic_rnn'"):
        contrib_rnn.dynamic_rnn  # tf.nn's, not tf.contrib.rnn's


# ---- 000: tf.nn.dynamic_rnn in depth ------------------------------------------------------

def test_000_one_layer_basic_rnn_cell():
    input_dim = 3
    num_steps = 2
    num_units = 5

    basic_cell = tf.contrib.rnn.BasicRNNCell(num_units)

    initial_state = basic_cell.zero_state(4, tf.float32)

    seq_length_batch = np.array([2, 1, 2, 2])

    outputs_val, states_val = tf.nn.dynamic_rnn(basic_cell, X_batch, sequence_length=seq_length_batch,
                                                initial_state=initial_state, dtype=tf.float32)

    assert X_batch.shape == (4, num_steps, input_dim) and X_batch.dtype == np.int64
    assert outputs_val.shape == (4, 2, 5)            # (batch_size, num_steps, output_size)
    assert states_val.shape == (4, 5)                # (batch_size, state_size)
    # Point 4: the second step of the second example is zeros, its state is its first step's
    np.testing.assert_array_equal(outputs_val[1, 1], 0)
    np.testing.assert_array_equal(states_val, outputs_val[np.arange(4), seq_length_batch - 1])
    assert_close((outputs_val, states_val), as_reference(basic_cell, X_batch, np.float32,
                                                         sequence_length=seq_length_batch), np.float32)


def test_000_one_layer_lstm_cell():
    num_units = 5

    # NOTE: we are using BasicLSTMCell here instead of BasicRNNCell
    basic_cell = tf.contrib.rnn.BasicLSTMCell(num_units)

    initial_state = basic_cell.zero_state(4, tf.float32)

    seq_length_batch = np.array([2, 1, 2, 2])

    outputs_val, states_val = tf.nn.dynamic_rnn(basic_cell, X_batch, sequence_length=seq_length_batch,
                                                initial_state=initial_state, dtype=tf.float32)

    assert outputs_val.shape == (4, 2, 5)
    assert states_val[0].shape == (4, 5) and states_val[1].shape == (4, 5)   # c states, h states
    assert isinstance(states_val, tf.contrib.rnn.LSTMStateTuple)
    assert "LSTMStateTuple(c=array(" in repr(states_val)                     # print('detail info: ', ...)
    np.testing.assert_array_equal(states_val[1], outputs_val[np.arange(4), seq_length_batch - 1])
    assert_close((outputs_val, states_val), as_reference(basic_cell, X_batch, np.float32,
                                                         sequence_length=seq_length_batch), np.float32)


def build_cell(num_units):
    lstm = tf.contrib.rnn.BasicLSTMCell(num_units)
    return lstm


def test_000_multiple_layers_lstm_cell():
    num_units = [4, 5]
    num_layers = 2

    # We are using BasicLSTMCell here instead of BasicRNNCell
    basic_cell = tf.contrib.rnn.MultiRNNCell([build_cell(num_units[idx]) for idx in range(num_layers)])

    initial_state = basic_cell.zero_state(4, tf.float32)

    seq_length_batch = np.array([2, 1, 2, 2])

    outputs_val, states_val = tf.nn.dynamic_rnn(basic_cell, X_batch, sequence_length=seq_length_batch,
                                                initial_state=initial_state, dtype=tf.float32)

    assert outputs_val.shape == (4, 2, 5)
    assert states_val[0][0].shape == (4, 4) and states_val[0][1].shape == (4, 4)   # first layer c, h
    assert states_val[1][0].shape == (4, 5) and states_val[1][1].shape == (4, 5)   # last layer c, h
    np.testing.assert_array_equal(states_val[1][1], outputs_val[np.arange(4), seq_length_batch - 1])
    assert_close((outputs_val, states_val), as_reference(basic_cell, X_batch, np.float32,
                                                         sequence_length=seq_length_batch), np.float32)


# ---- 001: Step by step example of RNN -----------------------------------------------------

def test_001_lstm_with_an_output_projection_and_cost():
    # 3 batches, 4 time steps per batch([1,2], [2,2], [5,2], [6,2]) with 2 features per time step ([1,2])
    train_x = [[[1, 2], [2, 2], [5, 2], [6, 2]],
               [[5, 2], [7, 2], [7, 2], [8, 2]],
               [[3, 2], [4, 2], [5, 2], [7, 2]]]

    train_y = [[1, 3, 7, 11],
               [5, 12, 14, 15],
               [3, 7, 9, 12]]

    hidden_dim = 10

    rng = np.random.default_rng(0)
    W_out = rng.standard_normal([hidden_dim, 1]).astype(np.float32)   # tf.random_normal
    b_out = rng.standard_normal([1]).astype(np.float32)

    xExample = train_x   # tf.convert_to_tensor(train_x, dtype=tf.float32): the dtype does it
    cell = rnn_cell.BasicLSTMCell(hidden_dim, reuse=None, name='cell')
    outputs, states = rnn.dynamic_rnn(cell, xExample, dtype=tf.float32)
    assert np.shape(xExample) == (3, 4, 2)
    assert outputs.shape == (3, 4, 10)           # (batch_size, sequence_length, cell_state_size)
    assert states[0].shape == (3, 10)            # States (hidden state c)
    assert states[1].shape == (3, 10)            # States (activation state a)
    num_examples = np.shape(xExample)[0]
    assert num_examples == 3
    W_out_new = np.expand_dims(W_out, 0)
    assert W_out_new.shape == (1, 10, 1)
    W_repeated = np.tile(W_out_new, [num_examples, 1, 1])
    out = np.matmul(outputs, W_repeated) + b_out
    assert out.shape == (3, 4, 1)
    outSqueeze = np.squeeze(out)
    assert outSqueeze.shape == (3, 4)
    train_y_tensor = np.asarray(train_y, dtype=np.float32)
    cost = np.mean(np.square(outSqueeze - train_y_tensor))
    assert np.isfinite(cost) and cost > 0
    # "a^t can be found in the outputs as the last time step's outputs[:, -1, :]"
    np.testing.assert_array_equal(states[1], outputs[:, -1, :])
    assert cell.weights["kernel"].shape == (2 + 10, 4 * 10)
    assert_close((outputs, states), as_reference(cell, train_x, np.float32), np.float32)


# ---- 002: tf.nn.*rnn* APIs ----------------------------------------------------------------

def test_002_float64_lstm_cell_with_lengths():
    BATCH_SIZE = 2
    SEQUENCE_LENGTH = 10
    NUMBER_OF_WORDS = 8
    # Create input data
    X = np.random.default_rng(2).standard_normal((BATCH_SIZE, SEQUENCE_LENGTH, NUMBER_OF_WORDS))

    # The second example is of length 6
    X[1, 6:] = 0
    X_lengths = [10, 6]

    data = X
    cell = tf.nn.rnn_cell.LSTMCell(num_units=8, state_is_tuple=True)

    # defining initial state
    initial_state = cell.zero_state(BATCH_SIZE, dtype=tf.float64)

    encode = tf.nn.dynamic_rnn(
        cell=cell,
        dtype=tf.float64,
        sequence_length=X_lengths,
        inputs=data,
        initial_state=initial_state)

    outputs, last_states = encode
    assert outputs.dtype == np.float64 and outputs.shape == (2, 10, 8)
    np.testing.assert_array_equal(outputs[1, 6:], 0)
    np.testing.assert_array_equal(last_states.h, outputs[[0, 1], [9, 5]])
    assert_close(encode, as_reference(cell, X, np.float64, sequence_length=X_lengths), np.float64)


def test_002_the_bidirectional_section():
    """The tutorial's code under "Bidirectional RNNs" calls dynamic_rnn and unpacks its *batch* of two
    as (fw, bw); the shapes it prints, (10, 4) and (2, 4), come out the same here.  Then what the
    text describes, bidirectional_dynamic_rnn."""
    BATCH_SIZE, SEQUENCE_LENGTH, NUMBER_OF_WORDS = 2, 10, 8
    X = np.random.default_rng(3).standard_normal((BATCH_SIZE, SEQUENCE_LENGTH, NUMBER_OF_WORDS))
    X[1, 6:] = 0
    X_lengths = [10, 6]

    cell = tf.nn.rnn_cell.LSTMCell(num_units=4, state_is_tuple=True)
    initial_state = cell.zero_state(BATCH_SIZE, dtype=tf.float64)
    encode = tf.nn.dynamic_rnn(cell=cell, dtype=tf.float64, sequence_length=X_lengths, inputs=X,
                               initial_state=initial_state)
    outputs, states = encode
    output_fw, output_bw = outputs
    states_fw, states_bw = states
    assert output_bw.shape == (10, 4)     # SEQUENCE_LENGTH, LSTM_HIDDEN_SIZE
    assert states_bw.shape == (2, 4)      # BATCH_SIZE, LSTM_HIDDEN_SIZE

    cell_bw = tf.nn.rnn_cell.LSTMCell(num_units=4, state_is_tuple=True)
    (output_fw, output_bw), (states_fw, states_bw) = tf.nn.bidirectional_dynamic_rnn(
        cell, cell_bw, X, sequence_length=X_lengths, dtype=tf.float64)
    assert output_bw.shape == (2, 10, 4) and states_bw.h.shape == (2, 4)
    np.testing.assert_array_equal(output_bw[1, 6:], 0)
    np.testing.assert_array_equal(states_bw.h, output_bw[:, 0])   # the backward pass ends at t = 0
    want = ref.bidirectional_dynamic_rnn(twin(cell), twin(cell_bw), X, sequence_length=X_lengths)
    assert_close(((output_fw, output_bw), (states_fw, states_bw)), want, np.float64)


# ---- 003: tensorflow_RNN_LSTM_basic ---------------------------------------------------------

n_inputs = 3   # input vector dim at each time step
n_neurons = 5  # RNN cell hidden size

# mini batch = 4,    sentence1   sentence2  sentence3  sentence4
x0_batch = np.array([[0, 1, 2], [3, 4, 5], [6, 7, 8], [9, 0, 1]])  # t=0
x1_batch = np.array([[9, 8, 7], [0, 0, 0], [6, 5, 4], [3, 2, 1]])  # t=1


def test_003_the_hand_built_rnn_is_a_basic_rnn_cell():
    rng = np.random.default_rng(1)
    wx = rng.standard_normal((n_inputs, n_neurons)).astype(np.float32)
    wy = rng.standard_normal((n_neurons, n_neurons)).astype(np.float32)
    b = np.zeros((1, n_neurons), np.float32)

    y0 = np.tanh(np.matmul(x0_batch, wx) + b)  # shape (1,3)x(3,5)+(1,5) = (1,5)
    y1 = np.tanh(np.matmul(y0, wy) + np.matmul(x1_batch, wx) + b)

    basic_cell = tf.contrib.rnn.BasicRNNCell(num_units=n_neurons)
    basic_cell.set_weights({"kernel": np.concatenate([wx, wy]), "bias": b[0]})  # the rows: [inputs, h]
    output_seqs, states = tf.contrib.rnn.static_rnn(cell=basic_cell, inputs=[x0_batch, x1_batch], dtype=tf.float32)
    y0_val, y1_val = output_seqs
    np.testing.assert_allclose(y0_val, y0, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(y1_val, y1, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(states, y1_val)  # "the final state is simply equal to the last output"


def test_003_static_then_unstack_transpose_then_dynamic():
    basic_cell = tf.contrib.rnn.BasicRNNCell(num_units=n_neurons)
    output_seqs, states = tf.contrib.rnn.static_rnn(cell=basic_cell, inputs=[x0_batch, x1_batch], dtype=tf.float32)
    y0, y1 = output_seqs
    assert y0.shape == y1.shape == states.shape == (4, 5)

    x_batch = np.array([
        #  t = 0      t = 1
        [[0, 1, 2], [9, 8, 7]],  # instance 0
        [[3, 4, 5], [0, 0, 0]],  # instance 1
        [[6, 7, 8], [6, 5, 4]],  # instance 2
        [[9, 0, 1], [3, 2, 1]],  # instance 3
    ])
    x_seqs = list(np.transpose(x_batch, axes=[1, 0, 2]))            # tf.unstack(tf.transpose(x, perm=[1, 0, 2]))
    output_seqs, states = tf.contrib.rnn.static_rnn(basic_cell, x_seqs, dtype=tf.float32)
    outputs = np.transpose(np.stack(output_seqs), axes=[1, 0, 2])   # tf.transpose(tf.stack(output_seqs), ...)
    assert outputs.shape == (4, 2, 5)
    np.testing.assert_array_equal(states, outputs[:, -1])
    np.testing.assert_array_equal(outputs[:, 0], y0)   # the same cell, the same first steps
    np.testing.assert_array_equal(states, y1)          # x_batch's t = 1 is x1_batch

    outputs_val, states_val = tf.nn.dynamic_rnn(cell=basic_cell, inputs=x_batch, dtype=tf.float32)
    assert_close((outputs_val, states_val), (outputs, states), np.float32, "dynamic == static")
    assert_close((outputs_val, states_val), as_reference(basic_cell, x_batch, np.float32), np.float32)

    lstm_cell = tf.contrib.rnn.BasicLSTMCell(num_units=n_neurons)
    peephole_cell = tf.contrib.rnn.LSTMCell(num_units=n_neurons, use_peepholes=True)
    for cell in (lstm_cell, peephole_cell):
        got = tf.nn.dynamic_rnn(cell=cell, inputs=x_batch, dtype=tf.float32)
        assert got[0].shape == (4, 2, 5) and isinstance(got[1], tf.contrib.rnn.LSTMStateTuple)
        assert_close(got, as_reference(cell, x_batch, np.float32), np.float32)
    assert sorted(peephole_cell.weights) == ["bias", "kernel", "w_f_diag", "w_i_diag", "w_o_diag"]


# ---- 004: what dynamic_rnn returns ----------------------------------------------------------

def test_004_outputs_vs_state():
    inputs = np.random.default_rng(4).standard_normal((2, 5, 3)).astype(np.float32)  # shape=[None, None, 3]
    sequence_lengths = [5, 3]

    cell = tf.compat.v1.nn.rnn_cell.LSTMCell(num_units=4)
    outputs, state = tf.compat.v1.nn.dynamic_rnn(
        cell,
        inputs,
        sequence_length=sequence_lengths,
        dtype=tf.float32
    )

    final_c = state.c
    final_h = state.h
    assert outputs.shape == (2, 5, 4)                 # [batch_size, max_time, num_units]
    assert final_c.shape == final_h.shape == (2, 4)
    np.testing.assert_array_equal(outputs[1, 3:], 0)  # masked past the second sequence's length
    np.testing.assert_array_equal(final_h, outputs[[0, 1], [4, 2]])
    assert not np.array_equal(outputs[:, -1, :], final_h)  # "outputs[:, -1, :] is not the final state"
    assert_close((outputs, state), as_reference(cell, inputs, np.float32, sequence_length=sequence_lengths),
                 np.float32)
