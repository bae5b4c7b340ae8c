"""A trained PyTorch LSTM (or GRU / RNN) run by fastrnn with the same numbers, and back.

Not from a TF1 tutorial: the other way people arrive.  ``from_torch`` converts
the gate order (PyTorch i, f, g, o -> TF i, j, f, o), sums the two biases and,
for a GRU, keeps PyTorch's reset-after form (``GRUCell(reset_after=True)``).
Skips (exit 0) when torch is not installed.
"""
from __future__ import annotations

import numpy as np

import fastrnn as fr
from fastrnn import interop


def main() -> None:
    try:
        import torch
    except ImportError:
        print("torch is not installed; skipping")
        return
    torch.manual_seed(0)
    net = torch.nn.LSTM(input_size=3, hidden_size=8, num_layers=2, batch_first=True).eval()
    x = np.random.default_rng(0).standard_normal((4, 10, 3)).astype(np.float32)
    with torch.no_grad():
        want, (h_n, c_n) = net(torch.from_numpy(x))

    cell = interop.from_torch(net)                    # a MultiRNNCell of two BasicLSTMCell(8, forget_bias=0)
    outputs, state = fr.dynamic_rnn(cell, x)          # batch_first=True <-> time_major=False
    np.testing.assert_allclose(outputs, want.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(state[1].h, h_n[1].numpy(), rtol=1e-5, atol=1e-6)
    print("fastrnn == PyTorch:", outputs.shape, "; weights:", sorted(cell.weights)[:2], "...")

    back = interop.to_torch(cell)                     # and back to a torch.nn.LSTM
    with torch.no_grad():
        np.testing.assert_allclose(back(torch.from_numpy(x))[0].numpy(), outputs, rtol=1e-5, atol=1e-6)


if __name__ == "__main__":
    main()
