"""TOML run configs: the shipped ones load, bad keys and values are named, the CLI uses them."""

import json
from pathlib import Path

import pytest

from bayesmeta.cli.main import main
from bayesmeta.config import ConfigError, load_config, parse_config
from bayesmeta.experiment import RunConfig

CONFIGS = sorted((Path(__file__).parents[1] / "examples" / "configs").glob("*.toml"))


def test_there_is_a_config_per_learner():
    learners = {load_config(p).learner for p in CONFIGS}
    assert learners == {"maml", "fomaml", "reptile", "bayesian_maml"}
    assert {load_config(p).data for p in CONFIGS} == {"sinusoid", "sinusoid_or_line"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_load(path):
    config = load_config(path)
    assert isinstance(config, RunConfig)
    assert config.hidden == (40, 40)


def test_values_are_typed_and_missing_keys_keep_defaults():
    config = parse_config({"learner": "reptile", "outer_lr": 1, "hidden": [8]})
    assert config.outer_lr == 1.0 and isinstance(config.outer_lr, float)
    assert config.hidden == (8,) and config.shots == RunConfig().shots


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"lerner": "maml"}, "unknown key 'lerner'; the keys are learner, data"),
        ({"shots": "5"}, "shots must be an integer, got '5'"),
        ({"shots": True}, "shots must be an integer"),
        ({"learner": "sgd"}, "learner must be one of 'maml'"),
        ({"hidden": [1.5]}, "hidden must be a list of integers"),
        ({"max_grad_norm": "big"}, "max_grad_norm must be a number or left out"),
        ({"shots": 0}, "shots must be >= 1"),
    ],
)
def test_bad_configs_name_the_key(raw, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(raw, source="run.toml")


def test_unreadable_files(tmp_path):
    with pytest.raises(ConfigError, match="no config file"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("learner = maml\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


def test_cli_runs_a_config_and_options_override_it(tmp_path, capsys):
    config = tmp_path / "run.toml"
    config.write_text('learner = "fomaml"\nshots = 4\niterations = 7\nhidden = [8]\n')
    code = main(
        [
            "run",
            str(config),
            "--shots",
            "3",
            "--quick",
            "--out",
            str(tmp_path),
            "--no-progress",
            "--eval-tasks",
            "10",
        ]
    )
    assert code == 0
    run_dir = next(p for p in tmp_path.iterdir() if p.is_dir())
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["learner"] == "fomaml" and saved["shots"] == 3 and saved["iterations"] == 7
    assert saved["hidden"] == [8]
    capsys.readouterr()
    assert main(["evaluate", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "10 held-out tasks" in out
    evaluation = json.loads((run_dir / "evaluation.json").read_text())
    metrics = json.loads((run_dir / "metrics.json").read_text())["metrics"]
    # MAML is deterministic: the re-evaluation reproduces the run's own numbers
    assert evaluation["metrics"]["mse"]["mean"] == pytest.approx(metrics["mse"]["mean"], rel=1e-6)


def test_cli_reports_config_errors(tmp_path, capsys):
    config = tmp_path / "run.toml"
    config.write_text("shots = 5\nwidth = 3\n")
    assert main(["run", str(config)]) == 2
    assert "unknown key 'width'" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path)]) == 1
    assert "is not a run folder" in capsys.readouterr().err
