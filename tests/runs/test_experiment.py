"""run_experiment writes a run folder from the start; resume_run finishes an interrupted run."""

import json

import pytest
import torch
from safetensors.torch import load_file

from bayesmeta.cli.main import main
from bayesmeta.diagnostics.report import diagnose_run
from bayesmeta.runs.config import RunConfig as SameConfig
from bayesmeta.runs.experiment import RunConfig, resume_run, run_experiment
from bayesmeta.runs.folder import CHECKPOINT, RunFolderError


class InterruptError(Exception):
    """Stands for a killed process: raised from inside meta-training."""


def _interrupt_after(monkeypatch, calls):
    """Make the meta-training source raise on its ``calls + 1``-th draw."""
    original = SameConfig.train_source

    def train_source(self):
        source = original(self)
        draw, count = source.sample, [0]

        def sample(num_tasks, **kwargs):
            count[0] += 1
            if count[0] > calls:
                raise InterruptError
            return draw(num_tasks, **kwargs)

        source.sample = sample
        return source

    monkeypatch.setattr(SameConfig, "train_source", train_source)


@pytest.mark.parametrize(
    "config",
    [
        RunConfig(learner="maml", hidden=(8,), iterations=7, eval_tasks=8, checkpoint_every=2),
        RunConfig(
            learner="bayesian_protonet",
            data="digits",
            backbone="conv4",
            channels=4,
            iterations=7,
            eval_tasks=8,
            meta_batch_size=2,
            checkpoint_every=2,
        ),
    ],
    ids=["maml", "bayesian_protonet"],
)
def test_an_interrupted_run_resumes_to_the_uninterrupted_result(tmp_path, monkeypatch, config):
    whole = run_experiment(config, out_dir=tmp_path / "whole", progress=False)
    assert whole.run_dir is not None and (whole.run_dir / CHECKPOINT).is_file()

    with monkeypatch.context() as patch:
        _interrupt_after(patch, 5)  # checkpoints were written after iterations 2 and 4
        with pytest.raises(InterruptError):
            run_experiment(config, out_dir=tmp_path / "cut", progress=False)
    (cut,) = (tmp_path / "cut").iterdir()
    assert {p.name for p in cut.iterdir()} == {"config.json", CHECKPOINT}
    with pytest.raises(RunFolderError, match="interrupted: continue it with `bayesmeta resume`"):
        diagnose_run(cut)

    resumed = resume_run(cut, progress=False)
    assert resumed.history.loss == whole.history.loss
    first, second = (
        load_file(whole.run_dir / "model.safetensors"),
        load_file(cut / "model.safetensors"),
    )
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
    metrics = [
        json.loads((d / "metrics.json").read_text())["metrics"] for d in (whole.run_dir, cut)
    ]
    assert metrics[0] == metrics[1]
    with pytest.raises(RunFolderError, match="has finished"):
        resume_run(cut)


def test_cli_resume(tmp_path, monkeypatch, capsys):
    args = ["run", "--iterations", "6", "--eval-tasks", "5", "--checkpoint-every", "2"]
    args += ["--out", str(tmp_path), "--no-progress"]
    with monkeypatch.context() as patch:
        _interrupt_after(patch, 3)
        with pytest.raises(InterruptError):
            main(args)
    (run_dir,) = tmp_path.iterdir()
    capsys.readouterr()
    assert main(["resume", str(run_dir), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "maml on sinusoid, 5-shot: 5 held-out tasks" in out and str(run_dir) in out
    history = json.loads((run_dir / "history.json").read_text())
    assert len(history["loss"]) == 6
    assert main(["resume", str(run_dir)]) == 1
    assert "has finished" in capsys.readouterr().err
    assert main(["resume", str(tmp_path / "nope")]) == 1
    assert "is not a folder" in capsys.readouterr().err
