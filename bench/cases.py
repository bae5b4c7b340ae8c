"""The benchmark cases (forward pass, inputs [batch, time, depth], depth = units)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np


@dataclass(frozen=True)
class Case:
    name: str
    cell: str            # "lstm", "gru", "rnn"
    batch: int
    time: int
    units: int
    dtype: str = "float32"
    layers: int = 1
    bidirectional: bool = False
    ragged: bool = False  # lengths uniform in [10, time]

    @property
    def gates(self) -> int:
        return {"lstm": 4, "gru": 3, "rnn": 1}[self.cell]

    def inputs(self, seed: int = 0) -> np.ndarray:
        rng = np.random.default_rng(seed)
        return rng.standard_normal((self.batch, self.time, self.units)).astype(self.dtype)

    def lengths(self, seed: int = 1) -> Optional[np.ndarray]:
        if not self.ragged:
            return None
        return np.random.default_rng(seed).integers(10, self.time + 1, self.batch).astype(np.int32)

    def flops(self) -> float:
        """2 * sum(lengths) * (depth + units) * gates * units, per layer and direction."""
        lens = self.lengths()
        steps = float(lens.sum()) if lens is not None else float(self.batch * self.time)
        return 2.0 * steps * (2 * self.units) * self.gates * self.units * self.layers * (2 if self.bidirectional else 1)


CASES = {c.name: c for c in [
    Case("lstm_b1_h128", "lstm", 1, 100, 128),
    Case("lstm_b16_h256", "lstm", 16, 100, 256),
    Case("lstm_b64_h512", "lstm", 64, 50, 512),
    Case("lstm_b256_h512", "lstm", 256, 50, 512),
    Case("gru_b16_h256", "gru", 16, 100, 256),
    Case("rnn_b16_h256", "rnn", 16, 100, 256),
    Case("lstm_varlen_b64", "lstm", 64, 200, 256, ragged=True),
    Case("bilstm_b16_h256", "lstm", 16, 100, 256, bidirectional=True),
    Case("lstm2x_b16_h256", "lstm", 16, 100, 256, layers=2),
    Case("lstm_f64_b16", "lstm", 16, 100, 256, dtype="float64"),
]}
