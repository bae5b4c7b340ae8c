"""A live signal filtered sample by sample, and token streams, with ``fr.Stream``.

Mirrors the "passing state between chunks" idea of "Step by step example of RNN" (state
passed on as ``initial_state``), done by ``fr.Stream``: the state stays inside, each
``step`` feeds one time step, each ``run`` a chunk, and everything streamed equals one
``dynamic_rnn`` call over the whole sequence -- checked here, three ways:

1. a noisy sine wave, one sample at a time, through a ``BasicRNNCell(1, activation="linear")``
   whose weights make it an exponential moving average (a first-order low-pass filter):
   ``y[t] = a * y[t-1] + (1 - a) * x[t]``; preallocated buffers and ``out=`` keep the loop
   free of new arrays on the Python side;
2. tokens arriving one at a time at a two-layer LSTM;
3. a padded batch of three sequences (lengths 50, 23 and 8) fed in chunks of 16 steps, each
   chunk with its own ``sequence_length`` (``np.clip(lengths - start, 0, 16)``): rows that
   have ended output zeros and keep their final state;
4. the same tokens as 2. the TF1 way, without a Stream: ``out, state = cell(x, state)`` or a
   one-step ``dynamic_rnn(cell, x, initial_state=state)``, the state fed back by hand -- fast
   too when the arrays are already the cell's dtype and shapes (they skip the validation).
"""
from __future__ import annotations

import math
from typing import Iterator, List, Tuple

import numpy as np

import fastrnn as fr


def live_signal(steps: int, seed: int = 0) -> Iterator[float]:
    """A sensor: a slow sine wave plus noise, one sample at a time."""
    rng = np.random.default_rng(seed)
    for t in range(steps):
        yield math.sin(2 * math.pi * t / 200) + 0.3 * float(rng.standard_normal())


def ema_filter(a: float) -> fr.BasicRNNCell:
    """h' = [x, h] @ kernel + bias with kernel [[1 - a], [a]]: the exponential moving average."""
    cell = fr.BasicRNNCell(1, activation="linear")
    cell.set_weights({"kernel": np.array([[1 - a], [a]], np.float32), "bias": np.zeros(1, np.float32)})
    return cell


def filter_a_signal() -> None:
    a, steps = 0.8, 1000
    cell = ema_filter(a)
    stream = fr.Stream(cell)                       # batch 1, float32, starts from zeros
    x_t = np.zeros((1, 1), np.float32)             # the buffers every step reuses
    y_t = np.zeros((1, 1), np.float32)
    seen, filtered = np.zeros(steps, np.float32), np.zeros(steps, np.float32)
    for t, sample in enumerate(live_signal(steps)):
        x_t[0, 0] = sample
        stream.step(x_t, out=y_t)                  # y_t = a * y_(t-1) + (1 - a) * sample
        seen[t], filtered[t] = sample, y_t[0, 0]

    by_hand = np.zeros(steps, np.float32)          # the textbook recurrence
    y = np.float32(0)
    for t in range(steps):
        y = np.float32(a) * y + np.float32(1 - a) * seen[t]
        by_hand[t] = y
    np.testing.assert_allclose(filtered, by_hand, rtol=1e-5, atol=1e-6)
    whole, state = fr.dynamic_rnn(cell, seen[None, :, None])  # the whole recording at once
    np.testing.assert_allclose(filtered, whole[0, :, 0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(stream.state, state, rtol=1e-5, atol=1e-6)
    clean = np.sin(2 * np.pi * np.arange(steps) / 200)
    print(f"1. {steps} samples filtered one by one == the recurrence == one dynamic_rnn; noise (rms) "
          f"{np.sqrt(np.mean((seen - clean) ** 2)):.3f} -> {np.sqrt(np.mean((filtered[50:] - clean[50:]) ** 2)):.3f}"
          " (a lagging low-pass)")


def token_task() -> Tuple[np.ndarray, np.ndarray, fr.MultiRNNCell]:
    """An embedding table, 40 tokens and a two-layer LSTM (parts 2 and 4)."""
    vocabulary, depth, steps = 50, 8, 40
    rng = np.random.default_rng(1)
    embedding = rng.standard_normal((vocabulary, depth)).astype(np.float32)
    tokens = rng.integers(0, vocabulary, steps)
    cell = fr.MultiRNNCell([fr.LSTMCell(16, use_peepholes=True, seed=0), fr.LSTMCell(12, num_proj=6, seed=1)])
    return embedding, tokens, cell


def check_one_call(outputs: List[np.ndarray], state: object, whole: np.ndarray, final: object) -> None:
    """Steps' outputs (each [1, output_size]) and last state == one dynamic_rnn call's."""
    np.testing.assert_allclose(np.concatenate(outputs), whole[0], rtol=1e-5, atol=1e-6)
    for got, want in zip(_leaves(state), _leaves(final)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def tokens_one_at_a_time() -> None:
    embedding, tokens, cell = token_task()
    steps = len(tokens)
    stream = fr.Stream(cell)
    outputs = [stream.step(embedding[token][None]) for token in tokens]  # as each token arrives

    whole, state = fr.dynamic_rnn(cell, embedding[tokens][None])
    check_one_call(outputs, stream.state, whole, state)
    print(f"2. {steps} tokens through a 2-layer LSTM one at a time == one dynamic_rnn: outputs "
          f"{whole.shape}, state {[s.c.shape for s in stream.state]} (c of each layer)")


def a_padded_batch_in_chunks() -> None:
    rng = np.random.default_rng(2)
    lengths = np.array([50, 23, 8])
    x = rng.standard_normal((3, 50, 4)).astype(np.float32)
    cell = fr.GRUCell(10, seed=0)
    stream = fr.Stream(cell, batch_size=3)
    pieces: List[np.ndarray] = []
    for start in range(0, 50, 16):
        chunk = x[:, start:start + 16]
        pieces.append(stream.run(chunk, sequence_length=np.clip(lengths - start, 0, chunk.shape[1])))
    streamed = np.concatenate(pieces, axis=1)

    whole, state = fr.dynamic_rnn(cell, x, sequence_length=lengths)
    np.testing.assert_allclose(streamed, whole, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(stream.state, state, rtol=1e-5, atol=1e-6)
    assert not streamed[1, 23:].any() and not streamed[2, 8:].any()  # zeros past each row's length
    print("3. a padded batch (lengths 50, 23, 8) in chunks of 16 == one dynamic_rnn: outputs "
          f"{streamed.shape}, each row's final state at its own last step")


def the_tf1_loop_by_hand() -> None:
    embedding, tokens, cell = token_task()
    steps = len(tokens)
    state = cell.zero_state(1, np.float32)
    by_cell = []
    for token in tokens:                               # a TF1 decoder's loop: the cell called step by step
        out, state = cell(embedding[token][None], state)
        by_cell.append(out)
    state2 = cell.zero_state(1, np.float32)
    by_driver = []
    for token in tokens:                               # or a one-step dynamic_rnn fed its final state back
        out3, state2 = fr.dynamic_rnn(cell, embedding[token][None, None], initial_state=state2)
        by_driver.append(out3[:, 0])

    whole, final = fr.dynamic_rnn(cell, embedding[tokens][None])
    check_one_call(by_cell, state, whole, final)
    check_one_call(by_driver, state2, whole, final)
    print(f"4. the same {steps} tokens by cell(x, state) and by one-step dynamic_rnn calls, the state fed "
          "back by hand == one dynamic_rnn")


def _leaves(state: object) -> List[np.ndarray]:
    if isinstance(state, (tuple, list)):
        return [leaf for s in state for leaf in _leaves(s)]
    assert isinstance(state, np.ndarray)
    return [state]


def main() -> None:
    filter_a_signal()
    tokens_one_at_a_time()
    a_padded_batch_in_chunks()
    the_tf1_loop_by_hand()


if __name__ == "__main__":
    main()
