"""Every script in examples/ runs (as a user would: a subprocess) and checks its own claims."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).parent.parent / "examples").glob("*.py"))


def test_examples_exist():
    names = {p.stem for p in EXAMPLES}
    assert {"outputs_vs_state", "static_vs_dynamic", "bidirectional", "chunked_sequence", "lstm_regression",
            "restore_tf_checkpoint", "from_pytorch", "serve_frozen_graph", "streaming"} <= names


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_runs(path):
    doc = ast.get_docstring(ast.parse(path.read_text()))
    assert doc, f"{path.name} needs a docstring saying what it shows and which tutorial it mirrors"
    res = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, timeout=180, cwd="/")
    assert res.returncode == 0, f"{path.name} failed:\n{res.stdout}\n{res.stderr}"
    assert res.stdout.strip(), f"{path.name} printed nothing"
