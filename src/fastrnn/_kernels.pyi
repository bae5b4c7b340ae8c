"""Type stub of the private compiled module fastrnn._kernels (src/fastrnn/_kernels.pyx)."""
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

FLOAT32: int
FLOAT64: int
CELL_RNN: int
CELL_LSTM: int
CELL_GRU: int
ACTIVATIONS: Dict[str, int]
ISAS: Dict[str, int]
XPROJ: Dict[str, int]
SCHEDULES: Dict[str, int]
GEMMS: Dict[str, int]
PRECISIONS: Dict[str, int]
BF16_PATHS: Dict[str, int]
WORKSPACE_CACHE_BYTES: int
MAX_IDLE_WORKSPACES: int

def cell_gates(cell: int) -> int: ...
def online_cpus() -> int: ...
def resolve_isa(isa: str) -> str: ...
def available_isas() -> List[str]: ...
def resolve_bf16(path: str, isa: str, batch: int) -> str: ...
def available_bf16_paths() -> List[str]: ...

class Options:
    isa: str
    xproj: str
    schedule: str
    gemm: str
    nthreads: int
    tile_rows: int
    precision: str
    bf16_path: str
    resolved_isa: int
    def __init__(self, *, isa: str, xproj: str, schedule: str, gemm: str, nthreads: int,
                 tile_rows: int, precision: str, bf16_path: str) -> None: ...

class Layer:
    cell: int
    dtype: int
    units: int
    proj: int
    depth: int
    arrays: Tuple[Optional[np.ndarray], ...]
    def __init__(self, *, cell: int, dtype: int, activation: int, depth: int, units: int, proj: int,
                 kernel: np.ndarray, bias: np.ndarray, cand_kernel: Optional[np.ndarray],
                 cand_bias: Optional[np.ndarray], cand_recurrent_bias: Optional[np.ndarray],
                 w_i_diag: Optional[np.ndarray], w_f_diag: Optional[np.ndarray], w_o_diag: Optional[np.ndarray],
                 proj_kernel: Optional[np.ndarray], forget_bias: Optional[float], cell_clip: Optional[float],
                 proj_clip: Optional[float]) -> None: ...
    def packed_for(self, options: Options) -> np.ndarray: ...

def release_memory() -> None: ...
def idle_workspace_bytes() -> int: ...
def apply_activation(isa: str, activation: int, x: np.ndarray) -> None: ...
def layer_forward(layer: Layer, options: Options, x: np.ndarray, lengths: Optional[np.ndarray], h0: np.ndarray,
                  c0: Optional[np.ndarray], time_major: bool, reverse: bool, batch: int,
                  time: int) -> Tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]: ...
def cpu_info() -> Dict[str, Any]: ...
def amx_request() -> bool: ...
def probe_fma_peak(isa: str, dtype: Any, seconds: float) -> float: ...
def probe_bf16_peak(seconds: float) -> float: ...
def probe_amx_peak(seconds: float) -> float: ...
def probe_bandwidth(nbytes: int, seconds: float) -> float: ...
def probe_clock_ghz(seconds: float) -> float: ...
