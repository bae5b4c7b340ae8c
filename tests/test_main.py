"""``python -m fastrnn``: the main job runs, explains itself and has a --help.

One real subprocess run with small sizes (the way users start it); the other
option combinations call ``main()`` in-process, which is the same code and
avoids paying the interpreter + torch start-up each time.
"""
from __future__ import annotations

import subprocess
import sys

import pytest

from fastrnn.__main__ import main


def test_subprocess_small_run():
    res = subprocess.run([sys.executable, "-m", "fastrnn", "--batch", "3", "--time", "4", "--units", "8",
                          "--repeat", "3", "--threads", "1"], capture_output=True, text=True, timeout=120, cwd="/")
    assert res.returncode == 0, res.stderr
    out = res.stdout
    for text in ("BasicRNNCell(5)", "BasicLSTMCell(5)", "MultiRNNCell", "shape (4, 2, 5)", "LSTMStateTuple",
                 "final h for every row: True", "fastrnn.interop", "LSTM batch 3, time 4, units 8",
                 "threads: 1", "fastrnn (compiled)", "fastrnn.reference (NumPy)", "checked against the reference"):
        assert text in out, text
    assert "timing fastrnn (compiled)" in res.stderr  # the progress line


def test_help_lists_options(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: python -m fastrnn")
    for opt in ("--cell", "--batch", "--time", "--units", "--dtype", "--threads", "--repeat", "--no-timing"):
        assert opt in out


def test_tutorial_only(capsys):
    assert main(["--no-timing"]) == 0
    out = capsys.readouterr().out
    assert "LSTMStateTuple" in out and "timing" not in out


@pytest.mark.parametrize("cell, dtype", [("gru", "float64"), ("rnn", "float32")])
def test_other_cells(cell, dtype, capsys):
    assert main(["--cell", cell, "--dtype", dtype, "--batch", "2", "--time", "3", "--units", "4", "--repeat", "3"]) == 0
    out = capsys.readouterr().out
    assert f"{cell.upper()} batch 2, time 3, units 4" in out and dtype in out


@pytest.mark.parametrize("args", [["--batch", "0"], ["--cell", "tcn"], ["--dtype", "int8"], ["--threads", "-1"], ["--json"]])
def test_bad_options(args, capsys):
    with pytest.raises(SystemExit) as e:
        main(args + ["--no-timing"])
    assert e.value.code == 2
    assert "usage: python -m fastrnn" in capsys.readouterr().err


def test_the_header_names_only_the_peers_that_run(monkeypatch, capsys):
    """Without PyTorch and ONNX Runtime (unimportable here, even if their metadata is installed) the
    threads line and the table mention neither."""
    monkeypatch.setitem(sys.modules, "torch", None)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    assert main(["--batch", "2", "--time", "3", "--units", "4", "--repeat", "2", "--threads", "1"]) == 0
    timing = capsys.readouterr().out.split("timing dynamic_rnn")[1]
    assert "threads: 1 (fastrnn: 1, NumPy BLAS" in timing, timing
    assert "PyTorch" not in timing and "ONNX" not in timing, timing


def test_probe_says_what_the_machine_is_and_can_do():
    """``--probe`` in a subprocess (as users run it): the CPU, the kernels chosen, the FMA peaks per
    core and on both cores at once, bfloat16 and AMX, the bfloat16 path; ``--json`` the same as data."""
    from fastrnn import _kernels
    res = subprocess.run([sys.executable, "-m", "fastrnn", "--probe", "--threads", "2"], capture_output=True,
                         text=True, timeout=120, cwd="/")
    assert res.returncode == 0, res.stderr
    for text in ("CPU ", "kernels      " + _kernels.resolve_isa("auto"), "FMA peak     float32", "float64",
                 "AVX512-BF16", "AMX", "bfloat16     paths here: portable", "on 2 cores at once", "L2 read"):
        assert text in res.stdout, (text, res.stdout)
    res = subprocess.run([sys.executable, "-m", "fastrnn", "--probe", "--json", "--threads", "1"],
                         capture_output=True, text=True, timeout=120, cwd="/")
    assert res.returncode == 0, res.stderr
    import json
    m = json.loads(res.stdout)
    assert m["isa"] == _kernels.resolve_isa("auto") and m["cores"] == 1
    assert m["peak_f32"] > 0 and m["peak_f64"] > 0 and m["peak_f32_cores"] == m["peak_f32"]
    assert 1.3 < m["peak_f32"] / m["peak_f64"] < 2.7  # twice the lanes, the same instructions
    assert m["bf16_paths"][0] == "portable" and m["bf16_path_batch16"] in m["bf16_paths"]
    assert (m["bf16_peak"] > 0) == m["avx512_bf16"]
    assert (m["amx_peak"] > 0) == m["amx"] and (m["amx_missing"] == "") == m["amx"]


def test_probe_functions_refuse_bad_arguments():
    from fastrnn import _kernels
    with pytest.raises(ValueError, match="isa: expected one of"):
        _kernels.probe_fma_peak("AVX512", "float32", 0.01)
    with pytest.raises(ValueError, match="dtype: expected float32 or float64"):
        _kernels.probe_fma_peak("generic", "float16", 0.01)
    with pytest.raises(ValueError, match="seconds"):
        _kernels.probe_clock_ghz(0)
    with pytest.raises(ValueError, match="nbytes"):
        _kernels.probe_bandwidth(100, 0.01)
    with pytest.raises(ValueError, match="cores"):
        import fastrnn.bench
        fastrnn.bench.probe(cores=0)
    for isa in ("generic", "avx2", "avx512"):  # an ISA the CPU lacks measures 0, never runs
        assert (_kernels.probe_fma_peak(isa, "float32", 0.01) > 0) == (isa in _kernels.available_isas())
