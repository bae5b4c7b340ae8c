"""Benchmarks run from bench/: make its helper modules importable, refuse Debug/editable builds."""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))


def pytest_configure(config):
    import fastrnn
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if os.path.abspath(fastrnn.__file__).startswith(os.path.join(here, "src")):
        raise SystemExit("bench/: fastrnn is imported from the source tree; benchmark an installed Release build")
