"""The Bayesian benchmark runs end to end in its smoke mode."""

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).parents[2] / "benchmarks" / "bayesian_sinusoid.py"


def test_bayesian_benchmark_quick_prints_tables_and_writes_results(tmp_path):
    args = [sys.executable, str(SCRIPT), "--quick", "--out", str(tmp_path)]
    done = subprocess.run(args, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "| BayesianMAML |" in done.stdout and "ManualTwin" in done.stdout
    (result,) = tmp_path.glob("bayesian_sinusoid-*.json")
    data = json.loads(result.read_text())
    assert {r["learner"] for r in data["accuracy"]} == {"MAML", "BayesianMAML"}
    assert len(list(tmp_path.glob("*.png"))) == 2
