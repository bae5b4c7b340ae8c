"""What the repository promises about itself holds: the license it declares is there (and in the
wheel), and every file the README points to exists."""
from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).parent.parent


def test_the_declared_license_is_in_the_repository_and_the_wheel():
    assert 'license = { text = "Apache-2.0" }' in (ROOT / "pyproject.toml").read_text()
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in text
    shipped = [f for f in metadata.files("fastrnn") or [] if f.name == "LICENSE"]
    assert shipped and "Version 2.0, January 2004" in shipped[0].read_text(), "the installed wheel has no LICENSE"


def test_every_file_the_readme_names_exists():
    """Paths in backquotes or links (``bench/RESULTS.md``, ``examples/streaming.py``, ``csrc/fastrnn.h``):
    the README once sent readers to a DESIGN.md the repository does not have."""
    readme = (ROOT / "README.md").read_text()
    named = set(re.findall(r"[`(]((?:[\w.-]+/)*[\w.-]+\.(?:md|py|h|c|toml|txt))[`)]", readme))
    named |= set(re.findall(r"\b([A-Z]+\.md)\b", readme))
    assert "bench/RESULTS.md" in named  # the pattern finds what it should
    # a bare name stands in a table or tree of one of these folders (examples/, csrc/ ...)
    folders = [ROOT] + [ROOT / d for d in ("examples", "csrc", "bench", "tools", "tests", "src/fastrnn")]
    missing = sorted(p for p in named if not any((d / p).is_file() for d in folders))
    assert not missing, f"README.md names files the repository does not contain: {missing}"
