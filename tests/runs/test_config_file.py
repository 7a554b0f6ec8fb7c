"""TOML run configs: the shipped ones load, bad keys and values are named, the CLI uses them."""

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bayesmeta.cli.main import main
from bayesmeta.runs.config import DATA, LEARNERS
from bayesmeta.runs.config_file import ConfigError, load_config, parse_config
from bayesmeta.runs.experiment import RunConfig, run_experiment

CONFIGS = sorted((Path(__file__).parents[2] / "examples" / "configs").glob("*.toml"))


def test_there_is_a_config_per_learner_and_per_data_source():
    assert {load_config(p).learner for p in CONFIGS} == set(LEARNERS)
    assert {load_config(p).data for p in CONFIGS} == set(DATA)


def image_folder(root, classes=8, per_class=8, size=12):
    """``root/class<i>/<j>.png``: a random pattern per class, each drawing with flipped pixels."""
    rng = np.random.default_rng(0)
    for c in range(classes):
        folder = root / f"class{c}"
        folder.mkdir(parents=True)
        pattern = rng.random((size, size)) > 0.6
        for j in range(per_class):
            noisy = pattern ^ (rng.random((size, size)) > 0.9)
            Image.fromarray(noisy.astype(np.uint8) * 255).save(folder / f"{j}.png")
    return root


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_run(path, tmp_path):
    """Each ready config runs end to end, shrunk to seconds (same learner, data and settings)."""
    config = load_config(path)
    if config.data == "image_folder":  # your own images: generated ones stand in
        config = replace(config, path=str(image_folder(tmp_path / "images", classes=30)))
    small = replace(
        config,
        iterations=2,
        meta_batch_size=2,
        eval_tasks=3,
        channels=4,
        glyph_classes=40,
        train_tasks=4,
        adapt_steps=3,
    )
    result = run_experiment(small, out_dir=None, progress=False)
    assert len(result.history.loss) == 2
    summary = result.evaluation.summary()
    assert ("accuracy" in summary) == config.classification
    assert all(v[0] == v[0] for v in summary.values())  # no NaN metric


def test_values_are_typed_and_missing_keys_keep_defaults():
    config = parse_config({"learner": "reptile", "outer_lr": 1, "hidden": [8]})
    assert config.outer_lr == 1.0 and isinstance(config.outer_lr, float)
    assert config.hidden == (8,) and config.k_support == RunConfig().k_support


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"lerner": "maml"}, "unknown key 'lerner'; the keys are learner, data"),
        ({"k_support": "5"}, "k_support must be an integer, got '5'"),
        ({"k_support": True}, "k_support must be an integer"),
        ({"learner": "sgd"}, "learner must be one of 'maml'"),
        ({"hidden": [1.5]}, "hidden must be a list of integers"),
        ({"max_grad_norm": "big"}, "max_grad_norm must be a number or left out"),
        ({"k_support": 0}, "k_support must be >= 1"),
        ({"outer_lr": 0}, "outer_lr must be positive"),
        ({"learner": "bayesian_maml", "prior_scale": -0.1}, "prior_scale must be positive"),
        ({"learner": "bayesian_maml", "kl_weight": -1}, "kl_weight must be >= 0"),
        ({"learner": "bayesian_maml", "prior": "cauchy"}, "prior must be one of normal"),
        ({"learner": "bayesian_maml", "noise": "poisson"}, "noise must be one of gaussian"),
        (
            {"learner": "bayesian_maml", "data": "digits", "noise": "student_t"},
            "noise='student_t' is for regression targets",
        ),
        ({"learner": "maml", "prior": "laplace"}, "prior has no effect on learner 'maml'"),
        ({"learner": "protonet"}, "learner 'protonet' classifies; use it with data 'glyphs'"),
        (
            {"data": "glyphs", "k_support": 10},
            "k_support \\+ k_query and k_support \\+ eval_k_query may not",
        ),
        (
            {"learner": "protonet", "data": "digits", "inner_lr": 0.1},
            "inner_lr has no effect on learner 'protonet' with data 'digits'; remove it",
        ),
        ({"hidden": [8], "data": "glyphs"}, "hidden has no effect"),
        ({"n_way": 3, "channels": 8}, "n_way, channels have no effect on learner 'maml'"),
        ({"train_tasks": 10}, "train_tasks has no effect"),
        ({"learner": "protonet", "data": "digits", "standardize": True}, "standardize has no"),
        ({"standardize": "yes"}, "standardize must be true, false or"),
    ],
)
def test_bad_configs_name_the_key(raw, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(raw, source="run.toml")


def test_bayesian_maml_runs_with_the_prior_and_noise_a_config_names():
    learner = parse_config(
        {"learner": "bayesian_maml", "prior": "student_t", "noise": "student_t"}
    ).build_learner()
    assert type(learner.prior).__name__ == "StudentT"
    assert type(learner.likelihood).__name__ == "StudentTLikelihood"


@pytest.mark.parametrize("value", [True, False, "auto"])
def test_standardize_reaches_the_learner(value):
    for name in ("maml", "bayesian_maml", "variational", "reptile"):
        learner = parse_config({"learner": name, "standardize": value}).build_learner()
        assert learner.standardize == value
    assert parse_config({"learner": "maml"}).build_learner().standardize == "auto"


def test_unreadable_files(tmp_path):
    with pytest.raises(ConfigError, match="no config file"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("learner = maml\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


def test_cli_runs_a_config_and_options_override_it(tmp_path, capsys):
    config = tmp_path / "run.toml"
    config.write_text('learner = "fomaml"\nk_support = 4\niterations = 7\nhidden = [8]\n')
    code = main(
        [
            "run",
            str(config),
            "--k-support",
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
    assert saved["learner"] == "fomaml" and saved["k_support"] == 3 and saved["iterations"] == 7
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
    config.write_text("k_support = 5\nwidth = 3\n")
    assert main(["run", str(config)]) == 2
    assert "unknown key 'width'" in capsys.readouterr().err
    config.write_text('learner = "protonet"\ndata = "digits"\n')
    assert main(["run", str(config), "--inner-lr", "0.1"]) == 2
    assert "inner_lr has no effect on learner 'protonet'" in capsys.readouterr().err
    assert main(["run", str(config), "--n-way", "7", "--quick", "--out", str(tmp_path)]) == 1
    assert "n_way=7 but only 5 classes are available" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path)]) == 1
    assert "is not a run folder" in capsys.readouterr().err


@pytest.mark.parametrize(
    "settings",
    [
        {"learner": "bayesian_protonet", "data": "digits", "hidden": [8]},
        {"learner": "bayesian_maml", "hidden": [8]},
    ],
    ids=["bayesian_protonet", "bayesian_maml"],
)
def test_evaluate_reproduces_a_sampling_learners_metrics(tmp_path, capsys, settings):
    """Posterior sampling in evaluation is seeded, so re-scoring gives the run's numbers."""
    config = tmp_path / "run.toml"
    config.write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in settings.items()))
    args = ["--iterations", "3", "--eval-tasks", "12", "--out", str(tmp_path), "--no-progress"]
    assert main(["run", str(config), *args]) == 0
    run_dir = next(p for p in tmp_path.iterdir() if p.is_dir())
    assert main(["evaluate", str(run_dir)]) == 0
    again = json.loads((run_dir / "evaluation.json").read_text())["metrics"]
    first = json.loads((run_dir / "metrics.json").read_text())["metrics"]
    assert set(again) == set(first)
    for name, value in first.items():
        assert again[name]["mean"] == pytest.approx(value["mean"], rel=1e-5), name


def _table(tmp_path, groups=10, rows=6):
    """A CSV of ``groups`` lines y = a_g x + b_g, ``rows`` points each."""
    lines = ["site,x,y,t"]
    for g in range(groups):
        lines += [f"s{g},{i / rows},{(g % 3) * i / rows + 0.1 * g},{rows - i}" for i in range(rows)]
    path = tmp_path / "sites.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_table_config_holds_groups_out_and_reads_paths_relative_to_the_file(tmp_path):
    _table(tmp_path)
    folder = tmp_path / "configs"
    folder.mkdir()
    file = folder / "table.toml"
    file.write_text(
        'data = "table"\npath = "../sites.csv"\ngroup = "site"\nx = ["x"]\ny = "y"\n'
        'order_by = "t"\nk_support = 2\nhidden = [8]\ntest_fraction = 0.3\n'
    )
    config = load_config(file)
    assert Path(config.path) == (tmp_path / "sites.csv").resolve() and config.x == ("x",)
    train, test = config.train_source(), config.held_out_source(0)
    assert len(test.group_names) == 3 and len(train.group_names) == 7
    assert not set(train.group_names) & set(test.group_names)
    held_out = config.held_out_tasks(0)
    assert len(held_out) == 3  # each held-out group once, though eval_tasks is 600
    # order_by: the support set is the rows with the smallest t, i.e. the largest x
    assert torch.all(held_out.support_x.min(dim=1).values > held_out.query_x.max(dim=1).values)
    result = run_experiment(replace(config, iterations=3), out_dir=tmp_path, progress=False)
    assert result.evaluation.num_tasks == 3 and (result.run_dir / "predictions.png").exists()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"data": "table", "group": "site"}, "data 'table' needs path, y, x"),
        ({"data": "table", "path": "p", "group": "g", "x": "x", "y": "y"}, "x must be a list"),
        ({"data": "table", "path": "p", "group": "g", "x": [1], "y": "y"}, "list of strings"),
        ({"path": "p.csv"}, "path has no effect on learner 'maml' with data 'sinusoid'"),
    ],
)
def test_bad_table_configs_are_named(raw, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(raw)


def test_a_table_with_one_group_or_a_missing_column_is_refused(tmp_path):
    path = _table(tmp_path, groups=1)
    config = RunConfig(data="table", path=str(path), group="site", x=("x",), y="y", k_support=2)
    with pytest.raises(ValueError, match="1 group\\(s\\) in column 'site'; a run needs at least 2"):
        config.train_source()
    with pytest.raises(ValueError, match="has no column 'plot'"):
        replace(config, group="plot").train_source()


def test_an_image_folder_run_holds_classes_out(tmp_path, monkeypatch):
    root = image_folder(tmp_path / "images", classes=10)
    config = parse_config(
        {
            "learner": "bayesian_protonet",
            "data": "image_folder",
            "path": str(root),
            "image_size": 12,
            "n_way": 2,
            "k_support": 2,
            "k_query": 3,
            "eval_k_query": 3,
            "channels": 4,
            "test_fraction": 0.3,
            "iterations": 3,
            "eval_tasks": 6,
        }
    )
    train, test = config.train_source(), config.held_out_source(0)
    assert len(train.classes) == 7 and len(test.classes) == 3
    assert not set(train.classes.tolist()) & set(test.classes.tolist())
    assert config.held_out_tasks(0).support_x.shape == (6, 4, 1, 12, 12)
    result = run_experiment(config, out_dir=tmp_path, progress=False)
    assert "accuracy" in result.evaluation.summary()
    # on the command line a relative path is the working directory's, saved absolute
    monkeypatch.chdir(tmp_path)
    root = image_folder(tmp_path / "more", classes=10, per_class=20)  # 5 shots + 15 queries
    args = ["run", "--learner", "protonet", "--data", "image_folder", "--path", "more"]
    code = main([*args, "--n-way", "2", "--iterations", "2", "--eval-tasks", "2", "--out", "r"])
    assert code == 0
    (run_dir,) = (tmp_path / "r").iterdir()
    assert json.loads((run_dir / "config.json").read_text())["path"] == str(root.resolve())
    with pytest.raises(ConfigError, match="data 'image_folder' needs path"):
        parse_config({"data": "image_folder"})
    with pytest.raises(ConfigError, match="image_size has no effect on learner 'maml'"):
        parse_config({"image_size": 16})
    with pytest.raises(ConfigError, match="layout must be one of 'alphabet/character', 'class'"):
        parse_config({"data": "image_folder", "path": str(root), "layout": "flat"})


def test_data_families_are_registered_with_what_they_read():
    from bayesmeta.runs.config import CLASSIFICATION_DATA, applies
    from bayesmeta.runs.data import data_families, data_family, register_data

    assert tuple(data_families()) == DATA and "table" in DATA
    assert CLASSIFICATION_DATA == ("glyphs", "digits", "image_folder")
    assert data_family("digits").classification and not data_family("table").classification
    assert applies("glyph_classes", "maml", "glyphs") and not applies(
        "glyph_classes", "maml", "digits"
    )
    assert applies("hidden", "maml", "table") and applies("hidden", "protonet", "digits")  # mlp
    assert not applies("backbone", "maml", "sinusoid")
    assert applies("seed", "protonet", "digits")  # read by every learner and data family
    with pytest.raises(ValueError, match=r"data must be one of 'sinusoid', .*; got 'mnist'"):
        data_family("mnist")
    with pytest.raises(ConfigError, match="data must be one of 'sinusoid'"):
        parse_config({"data": "mnist"})
    with pytest.raises(ValueError, match="already registered as 'table'"):
        register_data("table", data_family("sinusoid").build)
