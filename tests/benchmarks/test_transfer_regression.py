"""The transfer benchmark runs end to end in its --quick mode and prints every method."""

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).parents[2] / "benchmarks" / "transfer_regression.py"


def test_quick_run_prints_a_row_per_method_and_shot_count(tmp_path):
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--shots", "1", "5", "--threads", "1"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ") and "±" in line]
    assert len(rows) == 2 * 11
    assert any(line.startswith("| transfer Laplace (learned) | 5 |") for line in rows)
