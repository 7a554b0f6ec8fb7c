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
    assert config["learner"] == "maml" and config["shots"] == 5
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
                "--shots",
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
    assert main(["run", "--quick", "--shots", "0", "--out", str(tmp_path)]) == 2
    assert "shots must be >= 1" in capsys.readouterr().err
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
