"""An LSTM followed by a dense projection and an MSE cost: the "step by step" regression example.

Mirrors "Step by step example of RNN": train_x (3 sequences, 4 steps, 2
features), train_y (one target per step), a BasicLSTMCell(hidden_dim=10), then
``out = outputs @ W_out + b_out`` squeezed to ``[batch, time]`` and
``cost = mean((out - y)^2)``.  fastrnn runs the forward pass; here the dense
head is fitted in closed form (least squares on the LSTM features) to show the
cost drop -- the tutorial trains everything with Adam in TensorFlow instead.
"""
from __future__ import annotations

from typing import Tuple

import numpy as np

import fastrnn as fr

TRAIN_X = np.array([[[1, 2], [2, 2], [5, 2], [6, 2]],
                    [[5, 2], [7, 2], [7, 2], [8, 2]],
                    [[3, 2], [4, 2], [5, 2], [7, 2]]], dtype=np.float32)
TRAIN_Y = np.array([[1, 3, 7, 11],
                    [5, 12, 14, 15],
                    [3, 7, 9, 12]], dtype=np.float32)
HIDDEN_DIM = 10


def head(outputs: np.ndarray, w_out: np.ndarray, b_out: np.ndarray) -> np.ndarray:
    """``[batch, time, hidden] @ [hidden, 1] + [1]`` squeezed to ``[batch, time]`` (tf.matmul + tf.squeeze)."""
    pred: np.ndarray = (outputs @ w_out + b_out)[..., 0]
    return pred


def cost(pred: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.square(pred - y)))  # tf.reduce_mean(tf.square(out - y))


def fit_head(outputs: np.ndarray, y: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    feats = outputs.reshape(-1, outputs.shape[-1]).astype(np.float64)
    design = np.hstack([feats, np.ones((feats.shape[0], 1))])
    coef, *_ = np.linalg.lstsq(design, y.reshape(-1).astype(np.float64), rcond=None)
    return coef[:-1, None].astype(np.float32), coef[-1:].astype(np.float32)


def main() -> None:
    cell = fr.BasicLSTMCell(HIDDEN_DIM, seed=0)
    outputs, states = fr.dynamic_rnn(cell, TRAIN_X, dtype=np.float32)
    print("outputs", outputs.shape, "= [batch_size, max_time, hidden_dim]; states.c", states.c.shape)

    rng = np.random.default_rng(0)
    w_out = rng.standard_normal((HIDDEN_DIM, 1)).astype(np.float32)  # tf.random_normal([hidden_dim, 1])
    b_out = rng.standard_normal(1).astype(np.float32)
    before = cost(head(outputs, w_out, b_out), TRAIN_Y)
    w_out, b_out = fit_head(outputs, TRAIN_Y)
    after = cost(head(outputs, w_out, b_out), TRAIN_Y)
    print(f"MSE with a random head {before:.3f}; with the least-squares head {after:.3f}")
    assert head(outputs, w_out, b_out).shape == TRAIN_Y.shape and after < before


if __name__ == "__main__":
    main()
