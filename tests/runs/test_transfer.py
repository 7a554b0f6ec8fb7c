"""``bayesmeta run --learner transfer``: a prior centred on a source network, from the CLI."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from bayesmeta import TransferLearner
from bayesmeta.cli.main import main
from bayesmeta.io import load_learner, save_learner
from bayesmeta.learners import MAML, ProtoNet
from bayesmeta.nets import MLP
from bayesmeta.runs.config import RunConfig
from bayesmeta.runs.experiment import run_experiment
from bayesmeta.runs.transfer import SourceError, source_network

CHICKS = Path(__file__).parents[2] / "examples" / "data" / "chickweight.csv"
TINY = ["--iterations", "2", "--eval-tasks", "3", "--no-progress"]


def _config(path, **settings):
    lines = [f"{k} = {json.dumps(v)}" for k, v in settings.items()]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def _tiny_transfer(tmp_path, **settings):
    """A transfer config of seconds: 4 tasks for the prior, 3 steps per adaptation."""
    base = {"learner": "transfer", "train_tasks": 4, "adapt_steps": 3, "hidden": [8]}
    return _config(tmp_path / "transfer.toml", **{**base, **settings})


@pytest.fixture(scope="module")
def maml_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("source")
    config = _config(out / "maml.toml", learner="maml", hidden=[8], standardize=False)
    assert main(["run", config, "--out", str(out / "runs"), *TINY]) == 0
    (run_dir,) = (out / "runs").iterdir()
    return run_dir


def test_transfer_from_a_run_folder_runs_reports_and_re_evaluates(maml_run, tmp_path, capsys):
    config = _tiny_transfer(tmp_path)
    out = tmp_path / "runs"
    assert main(["run", config, "--source", str(maml_run), "--out", str(out), *TINY]) == 0
    assert "transfer on sinusoid, 5-shot: 3 held-out tasks" in capsys.readouterr().out
    (run_dir,) = out.iterdir()
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["learner"] == "transfer" and saved["source"] == str(maml_run.resolve())
    learner = load_learner(run_dir / "model.safetensors")
    assert isinstance(learner, TransferLearner) and learner.steps == 3
    assert learner.prior_scale_ is not None and learner.predictive_noise_ is not None
    source = load_learner(maml_run / "model.safetensors").net
    torch.testing.assert_close(
        learner.centre, torch.cat([p.reshape(-1) for p in source.parameters()])
    )
    history = json.loads((run_dir / "history.json").read_text())
    assert history["iterations"] == 2 and len(history["loss"]) == 2  # the prior's fit
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert set(metrics["metrics"]) == {"mse", "nll", "coverage_90", "crps"}
    assert metrics["noise_scale"] == pytest.approx(learner.predictive_noise_.tolist())
    assert main(["evaluate", str(run_dir)]) == 0
    again = json.loads((run_dir / "evaluation.json").read_text())["metrics"]
    assert again == metrics["metrics"]  # the same seeded draws
    assert main(["report", str(run_dir), "--tasks", "3", "--no-progress"]) == 0
    text = (run_dir / "report" / "report.md").read_text()
    assert "# Report: transfer on sinusoid, 5-shot" in text and "| source |" in text
    assert "| inner_lr |" not in text and "| outer_lr |" not in text  # not read by transfer


def test_transfer_from_a_state_dict_on_table_data(tmp_path):
    net = MLP((1, 8, 1))
    save_file(
        {k: v.contiguous() for k, v in net.state_dict().items()}, tmp_path / "net.safetensors"
    )
    config = RunConfig(
        learner="transfer",
        data="table",
        path=str(CHICKS),
        group="chick",
        x=("day",),
        y="weight_100g",
        order_by="time",
        k_support=4,
        hidden=(8,),
        source=str(tmp_path / "net.safetensors"),
        iterations=2,
        train_tasks=4,
        adapt_steps=3,
        eval_tasks=3,
    )
    result = run_experiment(config, out_dir=None, progress=False)
    assert result.evaluation.num_tasks == 3
    assert all(v[0] == v[0] for v in result.evaluation.summary().values())  # no NaN
    torch.testing.assert_close(
        result.learner.centre[: net.layers[0].weight.numel()], net.layers[0].weight.reshape(-1)
    )


def test_a_missing_source_is_refused_before_any_file(tmp_path, capsys):
    out = tmp_path / "runs"
    assert main(["run", "--learner", "transfer", "--out", str(out), *TINY]) == 2
    assert (
        "learner 'transfer' needs source (--source on the command line)" in capsys.readouterr().err
    )
    config = _tiny_transfer(tmp_path)
    assert main(["run", config, "--source", str(tmp_path / "nope"), "--out", str(out), *TINY]) == 1
    assert "does not exist: give a run folder or a .safetensors file" in capsys.readouterr().err
    assert main(["run", config, "--source", str(tmp_path), "--out", str(out), *TINY]) == 1
    assert "is a folder without model.safetensors" in capsys.readouterr().err
    assert not out.exists()  # nothing written for a run that cannot start


def test_a_source_that_does_not_fit_is_named(tmp_path):
    def config(source, **kw):
        return RunConfig(learner="transfer", source=str(source), hidden=(8,), **kw)

    save_file({"w": torch.zeros(2)}, tmp_path / "other.safetensors")
    with pytest.raises(SourceError, match=r"does not fit the run's MLP \(1, 8, 1\)"):
        source_network(config(tmp_path / "other.safetensors"))
    save_learner(ProtoNet([2, 4]), tmp_path / "protonet.safetensors")
    with pytest.raises(SourceError, match=r"\(2, 4\)\) does not fit data 'sinusoid'.*1 input"):
        source_network(config(tmp_path / "protonet.safetensors"))
    (tmp_path / "junk.safetensors").write_text("not a safetensors file")
    with pytest.raises(SourceError, match="not a readable safetensors file"):
        source_network(config(tmp_path / "junk.safetensors"))
    standardized = MAML((1, 8, 1), standardize=True)
    standardized.units.fit(torch.randn(10, 1) * 100, None)
    save_learner(standardized, tmp_path / "standardized.safetensors")
    with pytest.raises(SourceError, match="standardised its data"):
        source_network(config(tmp_path / "standardized.safetensors"))
    with pytest.raises(ValueError, match="'transfer' is for regression"):
        config(tmp_path / "other.safetensors", data="digits")
    with pytest.raises(ValueError, match="'transfer' needs source"):
        RunConfig(learner="transfer")
