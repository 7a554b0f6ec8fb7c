"""The diagnostics benchmark runs end to end in its --quick mode and prints its tables."""

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).parents[2] / "benchmarks" / "diagnostics_sinusoid.py"


def test_quick_run_prints_the_khat_and_nuts_tables(tmp_path):
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--threads", "1"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert out.count("| BayesianMAML |") == 3  # two k-hat tables and the NUTS table
    assert "| learner vs NUTS |" in out and "max_rhat" in out
