"""Every example runs end to end in its short mode (as Pyro's tests/test_examples.py)."""

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).parents[2] / "examples").glob("*.py"))


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.name)
def test_example_runs_quick(script, tmp_path):
    args = [sys.executable, str(script), "--quick"]
    if "--out" in script.read_text():
        args += ["--out", str(tmp_path / "figure.png")]
    done = subprocess.run(args, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "±" in done.stdout  # printed a metrics table


def test_examples_exist():
    assert len(EXAMPLES) >= 2
