"""The machine probe: what this CPU is, which kernels fastrnn runs on it, and what its cores can do.

``python -m fastrnn --probe`` prints it (``--json`` for a program); ``fastrnn.bench.probe()``
returns it; ``bench/`` records it with every run and ``bench/report.py`` holds each case against
its FMA peak.  The measurements are C loops (``csrc/fr_probe.c``): 12 independent FMA chains held
in registers in the instruction set the kernels run (the core's peak: no real kernel beats it),
the same with ``vdpbf16ps`` and AMX ``tdpbf16ps``, a read of a buffer sized for L2, and a chain of
dependent adds for the clock.  The all-cores figures run one probe per core at once.
"""
from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional

from . import _compiled, _options, _threads


@dataclass(frozen=True)
class Machine:
    """What :func:`probe` measured.  Peaks are GFLOP/s, bandwidths GB/s; 0.0 = cannot run here."""

    cpu: str
    vendor: str
    family: int
    model: int
    stepping: int
    hypervisor: bool
    online_cpus: int
    cores: int
    isa: str
    isas: List[str]
    peak_f32: float
    peak_f64: float
    peak_f32_cores: float
    peak_f64_cores: float
    bf16_peak: float
    amx_peak: float
    avx512_bf16: bool
    amx: bool
    amx_missing: str
    bf16_paths: List[str]
    bf16_path_batch1: str
    bf16_path_batch16: str
    clock_ghz: float
    l1d_bytes: int
    l2_bytes: int
    l3_bytes: int
    l2_bandwidth: float
    flags: Dict[str, bool] = field(default_factory=dict)

    def peak(self, dtype: str, cores: Optional[int] = None) -> float:
        """The FMA peak of ``cores`` cores (default: all this probe ran on) in ``dtype``: measured on
        all of them at once when ``cores`` is that number, else per core x ``cores``."""
        per, together = (self.peak_f32, self.peak_f32_cores) if dtype == "float32" else \
            (self.peak_f64, self.peak_f64_cores)
        if cores is None or cores == self.cores:
            return together
        return per * cores

    def as_dict(self) -> Dict[str, Any]:
        return asdict(self)

    def lines(self) -> List[str]:
        """The probe as ``python -m fastrnn --probe`` prints it."""
        kib = lambda n: f"{n >> 20} MiB" if n >= 1 << 20 else f"{n >> 10} KiB"  # noqa: E731
        vm = ", in a virtual machine" if self.hypervisor else ""
        bf16 = (f"yes, {self.bf16_peak:.0f} GFLOP/s per core (vdpbf16ps)" if self.avx512_bf16
                else "no")
        amx = f"yes, {self.amx_peak:.0f} GFLOP/s per core (tdpbf16ps)" if self.amx else f"no ({self.amx_missing})"
        return [
            f"CPU          {self.cpu} ({self.vendor}, family {self.family} model {self.model} "
            f"stepping {self.stepping}{vm})",
            f"CPUs         {self.online_cpus} online; the all-cores figures below ran on {self.cores}",
            f"kernels      {self.isa} (this CPU runs: {', '.join(self.isas)}; FASTRNN_ISA chooses)",
            f"clock        {self.clock_ghz:.2f} GHz (a chain of dependent adds)",
            f"caches       L1d {kib(self.l1d_bytes)}, L2 {kib(self.l2_bytes)}, L3 {kib(self.l3_bytes)}",
            f"L2 read      {self.l2_bandwidth:.0f} GB/s per core",
            f"FMA peak     float32 {self.peak_f32:.1f} GFLOP/s per core, {self.peak_f32_cores:.1f} on "
            f"{self.cores} cores at once",
            f"             float64 {self.peak_f64:.1f} GFLOP/s per core, {self.peak_f64_cores:.1f} on "
            f"{self.cores} cores at once ({self.isa}, 12 independent chains)",
            f"AVX512-BF16  {bf16}",
            f"AMX          {amx}",
            f"bfloat16     paths here: {', '.join(self.bf16_paths)}; precision='bfloat16' runs "
            f"{self.bf16_path_batch1} at batch 1, {self.bf16_path_batch16} at batch 16 (FASTRNN_BF16 chooses)",
        ]


def _on_cores(fn: Any, cores: int) -> float:
    """The sum of ``fn()`` run on ``cores`` threads at once (the probes release the GIL)."""
    results = [0.0] * cores
    barrier = threading.Barrier(cores)

    def run(i: int) -> None:
        barrier.wait()
        results[i] = fn()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(cores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(results)


def amx_missing(info: Dict[str, Any], paths: List[str]) -> str:
    """Why AMX cannot run here ("" when it can)."""
    if "amx" in paths:
        return ""
    if not (info["amx_tile"] and info["amx_bf16"]):
        return "the CPU lacks amx-tile/amx-bf16"
    if not info["os_amx"]:
        return "the OS does not enable the tile state (XCR0)"
    if not info["amx_granted"]:
        return "the OS refused the tile data permission (arch_prctl ARCH_REQ_XCOMP_PERM)"
    return "fastrnn's AVX-512 kernels do not run here"


def probe(seconds: float = 0.2, cores: Optional[int] = None) -> Machine:
    """Measure this machine (about ``12 * seconds``): see :class:`Machine`.  ``cores``: how many
    cores the all-cores peaks run on (default: fastrnn's thread count)."""
    k = _compiled.require_kernels()
    if cores is None:
        cores = _threads.get_num_threads()
    if isinstance(cores, bool) or not isinstance(cores, int) or cores < 1:
        raise ValueError(f"cores: expected a positive integer, got {cores!r}")
    current = _options.current()
    isa = k.resolve_isa(current.isa)
    info = k.cpu_info()
    paths = k.available_bf16_paths()
    if info["amx_tile"] and info["amx_bf16"]:
        k.amx_request()
        info = k.cpu_info()
    f32 = k.probe_fma_peak(isa, "float32", seconds)
    f64 = k.probe_fma_peak(isa, "float64", seconds)
    f32_all = _on_cores(lambda: k.probe_fma_peak(isa, "float32", seconds), cores) if cores > 1 else f32
    f64_all = _on_cores(lambda: k.probe_fma_peak(isa, "float64", seconds), cores) if cores > 1 else f64
    l2 = int(info["l2_bytes"]) or (1 << 20)

    def path(batch: int) -> str:
        try:
            return str(k.resolve_bf16(current.bf16_path, current.isa, batch))
        except ValueError as e:  # the path FASTRNN_BF16 asked for is not here
            return f"none ({e})"

    return Machine(
        cpu=info["brand"] or "unknown", vendor=info["vendor"] or "unknown", family=info["family"],
        model=info["model"], stepping=info["stepping"], hypervisor=info["hypervisor"],
        online_cpus=k.online_cpus(), cores=cores,
        isa=isa, isas=k.available_isas(), peak_f32=f32, peak_f64=f64, peak_f32_cores=f32_all,
        peak_f64_cores=f64_all, bf16_peak=k.probe_bf16_peak(seconds), amx_peak=k.probe_amx_peak(seconds),
        avx512_bf16="avx512_bf16" in paths, amx="amx" in paths, amx_missing=amx_missing(info, paths),
        bf16_paths=paths, bf16_path_batch1=path(1), bf16_path_batch16=path(16),
        clock_ghz=k.probe_clock_ghz(seconds), l1d_bytes=int(info["l1d_bytes"]), l2_bytes=int(info["l2_bytes"]),
        l3_bytes=int(info["l3_bytes"]), l2_bandwidth=k.probe_bandwidth(l2 // 2, seconds),
        flags={name: v for name, v in info.items() if isinstance(v, bool) and name != "hypervisor"})
