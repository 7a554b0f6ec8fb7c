"""The few-shot classification benchmark runs end to end in its smoke mode."""

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).parents[2] / "benchmarks" / "fewshot_classification.py"


def test_fewshot_benchmark_quick_prints_tables_and_writes_results(tmp_path):
    args = [sys.executable, str(SCRIPT), "--quick", "--threads", "1", "--out", str(tmp_path)]
    args += ["--datasets", "glyphs", "digits", "glyphs2digits"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "| glyphs | 1 | BayesianProtoNet |" in done.stdout
    assert "| MAML |" in done.stdout and "speed-up" in done.stdout
    (result,) = tmp_path.glob("fewshot_classification-*.json")
    data = json.loads(result.read_text())
    assert (
        "| digits | 1 | *1-NN* |" in done.stdout
        and "| glyphs2digits | 1 | *Baseline++* |" in done.stdout
    )
    learners = {r["learner"] for r in data["accuracy"] if r["kind"] == "learner"}
    baselines = {(r["dataset"], r["learner"]) for r in data["accuracy"] if r["kind"] == "baseline"}
    assert baselines == {
        (d, b)
        for d in ("glyphs", "digits", "glyphs2digits")
        for b in ("1-NN", "centroid", "probe", "Baseline", "Baseline++", "BayesianLastLayer")
    }
    for r in data["accuracy"]:
        if r["kind"] == "baseline":
            fitted = r["prior_scale"] if r["learner"] == "BayesianLastLayer" else r["temperature"]
            assert fitted > 0
    assert learners == {
        "ProtoNet",
        "BayesianProtoNet",
        "MatchingNet",
        "MAML",
        "FOMAML",
        "Reptile",
        "BayesianMAML",
    }
    for row in data["accuracy"]:
        assert 0.0 <= row["accuracy"][0] <= 1.0 and 0.0 <= row["ece"][0] <= 1.0
    assert {r["learner"] for r in data["speed"]} == {"ProtoNet", "MAML"}


def test_fewshot_benchmark_runs_jitter_pixel_skip_and_support_copies(tmp_path):
    args = [sys.executable, str(SCRIPT), "--quick", "--threads", "1", "--out", str(tmp_path)]
    args += ["--only", "accuracy", "--datasets", "glyphs2digits", "--baselines", "1-NN"]
    args += ["--learners", "ProtoNet", "FOMAML", "--train-jitter", "--pixel-skip", "--pool-digits"]
    args += ["--support-copies", "2", "--jitter-rotation", "5", "--baseline-copies", "3"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    (result,) = tmp_path.glob("fewshot_classification-*.json")
    data = json.loads(result.read_text())
    assert data["args"]["train_jitter"] and data["args"]["support_copies"] == 2
    assert data["args"]["jitter_rotation"] == 5.0 and data["args"]["pixel_skip"]
    names = {r["learner"] for r in data["accuracy"]}
    assert names == {"1-NN", "1-NN + 3 copies", "ProtoNet", "FOMAML"}
    for row in data["accuracy"]:
        assert 0.0 <= row["accuracy"][0] <= 1.0


def test_validation_script_scores_digits_0_to_4_with_copies(tmp_path):
    script = SCRIPT.parent / "fewshot_validation.py"
    args = [sys.executable, str(script), "--learners", "ProtoNet", "--iters", "2"]
    args += ["--val-every", "1", "--glyph-classes", "60", "--val-tasks", "4", "--hidden", "8"]
    args += ["--score-tasks", "6", "--copies", "0", "2", "--nn", "--train-jitter"]
    args += ["--tag", "smoke", "--out", str(tmp_path)]
    done = subprocess.run(args, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    (result,) = tmp_path.glob("fewshot_validation-smoke-*.json")
    rows = json.loads(result.read_text())["rows"]
    scored = {(r["learner"], r["copies"]) for r in rows if "copies" in r}
    assert scored == {("1-NN", 0), ("1-NN", 2), ("ProtoNet", 0), ("ProtoNet", 2)}
    assert "val acc" in done.stdout and "test" not in done.stdout


def test_bpn_rule_check_prints_both_rules():
    script = SCRIPT.parent / "bpn_rule_check.py"
    args = [sys.executable, str(script), "--iters", "2", "--val-every", "1", "--hidden", "8"]
    args += ["--glyph-classes", "60", "--val-tasks", "4", "--score-tasks", "6"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "tau" in done.stdout and done.stdout.count("ProtoNet's rule on its embedding") == 2
