import json

import pytest

from bayesmeta.cli.main import main
from bayesmeta.io import load_learner


def test_run_quick_writes_run_folder_and_prints_table(tmp_path, capsys):
    assert main(["run", "--quick", "--out", str(tmp_path), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "mse" in out and "coverage_90" in out and "±" in out
    (run_dir,) = list(tmp_path.iterdir())
    names = {p.name for p in run_dir.iterdir()}
    assert {
        "config.json",
        "history.json",
        "metrics.json",
        "model.safetensors",
        "predictions.png",
    } <= names
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["num_tasks"] == 50
    assert metrics["metrics"]["mse"]["mean"] > 0
    history = json.loads((run_dir / "history.json").read_text())
    assert history["iterations"] == 50 and len(history["loss"]) == 50
    config = json.loads((run_dir / "config.json").read_text())
    assert config["learner"] == "maml" and config["k_support"] == 5
    learner = load_learner(run_dir / "model.safetensors")
    assert learner.noise_scale.numel() == 1


def test_run_other_learner_and_data(tmp_path, capsys):
    assert (
        main(
            [
                "run",
                "--quick",
                "--learner",
                "reptile",
                "--data",
                "sinusoid_or_line",
                "--k-support",
                "3",
                "--out",
                str(tmp_path),
                "--no-progress",
            ]
        )
        == 0
    )
    assert "reptile" in capsys.readouterr().out


def test_bad_arguments_exit_with_message(tmp_path, capsys):
    assert main(["run", "--quick", "--k-support", "0", "--out", str(tmp_path)]) == 2
    assert "k_support must be >= 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["run", "--learner", "nope"])


def test_run_bayesian_maml_writes_a_run_with_its_learned_noise(tmp_path):
    args = ["run", "--quick", "--learner", "bayesian_maml", "--no-progress"]
    assert main([*args, "--out", str(tmp_path)]) == 0
    (run_dir,) = list(tmp_path.iterdir())
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["noise_scale"][0] > 0
    assert {"mse", "nll", "coverage_90", "crps"} <= set(metrics["metrics"])
    assert (run_dir / "model.safetensors").is_file()


def test_report_writes_the_report_and_prints_the_coverage_table(tmp_path, capsys):
    assert main(["run", "--quick", "--out", str(tmp_path), "--no-progress"]) == 0
    (run_dir,) = list(tmp_path.iterdir())
    capsys.readouterr()
    assert main(["report", str(run_dir), "--quick", "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert "20 held-out tasks" in captured.out and "central-interval coverage" in captured.out
    assert "Kolmogorov-Smirnov" in captured.out
    assert "    0.9  " in captured.out and "    0.1  " in captured.out
    verdict = captured.out.split("verdict (what to do: see the report)\n")[1]
    assert verdict.startswith("  Calibration: ") and "  Training convergence: " in verdict
    report = run_dir / "report" / "report.md"
    assert f"report: {report}" in captured.out
    assert captured.err == ""  # no progress bar off a terminal
    names = {p.name for p in report.parent.iterdir()}
    assert names == {"report.md", "pit.png", "coverage.png", "loss.png"}
    assert main(["report", str(run_dir), "--tasks", "3"]) == 0
    assert "3 held-out tasks" in capsys.readouterr().out


def test_report_of_a_bad_folder_exits_with_a_one_line_error(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("bayesmeta report: error: ") and err.count("\n") == 1
    assert "not a run folder" in err and "config.json" in err
    assert main(["report", str(tmp_path / "missing")]) == 1
    assert "is not a folder" in capsys.readouterr().err
    assert main(["report", str(tmp_path), "--tasks", "0"]) == 2
    assert "--tasks must be >= 1" in capsys.readouterr().err
