"""Classification runs score a 1-nearest-neighbour on raw inputs beside the learner."""

import json
from dataclasses import replace

import torch

from bayesmeta.cli.main import main
from bayesmeta.runs.config import RunConfig
from bayesmeta.runs.experiment import (
    BASELINE_NAME,
    EVAL_SEED,
    baseline_verdict,
    run_experiment,
)

DIGITS = RunConfig(
    learner="protonet",
    data="digits",
    backbone="conv4",
    channels=4,
    iterations=3,
    eval_tasks=8,
    meta_batch_size=2,
)


def test_the_baseline_is_1nn_on_the_same_held_out_tasks(tmp_path) -> None:
    result = run_experiment(DIGITS, out_dir=tmp_path, progress=False)
    assert result.baseline is not None
    assert result.baseline.num_tasks == result.evaluation.num_tasks
    # Its accuracy is a brute-force 1-NN's on the run's held-out tasks.
    held_out = DIGITS.held_out_tasks(EVAL_SEED)
    hits = []
    for t in range(len(held_out)):
        sx = held_out.support_x[t].flatten(1)
        qx = held_out.query_x[t].flatten(1)
        nearest = torch.cdist(qx.double(), sx.double()).argmin(1)
        hits.append((held_out.support_y[t][nearest] == held_out.query_y[t]).double().mean())
    expected = float(torch.stack(hits).mean())
    assert abs(result.baseline.summary()["accuracy"][0] - expected) < 1e-6
    saved = json.loads((result.run_dir / "metrics.json").read_text())
    assert saved["baseline"]["name"] == BASELINE_NAME
    accuracy = saved["baseline"]["metrics"]["accuracy"]["mean"]
    assert abs(accuracy - result.baseline.summary()["accuracy"][0]) < 1e-9


def test_the_verdict_says_which_side_wins(tmp_path) -> None:
    result = run_experiment(DIGITS, out_dir=None, progress=False)
    assert result.baseline is not None
    ours = result.evaluation.summary()["accuracy"][0]
    theirs = result.baseline.summary()["accuracy"][0]
    verdict = baseline_verdict(result)
    assert verdict is not None
    assert ("does NOT beat" in verdict) == (ours <= theirs)
    swapped = replace(result, evaluation=result.baseline, baseline=result.evaluation)
    other = baseline_verdict(swapped)
    assert other is not None
    if ours != theirs:
        assert ("does NOT beat" in other) != ("does NOT beat" in verdict)


def test_regression_runs_have_no_baseline() -> None:
    config = RunConfig(learner="maml", hidden=(8,), iterations=2, eval_tasks=4)
    result = run_experiment(config, out_dir=None, progress=False)
    assert result.baseline is None
    assert baseline_verdict(result) is None


def test_the_cli_prints_the_baseline_row(tmp_path, capsys) -> None:
    torch.manual_seed(0)
    code = main(
        [
            "run",
            "--learner",
            "protonet",
            "--data",
            "digits",
            "--k-support",
            "1",
            "--iterations",
            "2",
            "--eval-tasks",
            "6",
            "--no-progress",
            "--out",
            str(tmp_path),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert BASELINE_NAME in out
    assert "beat a 1-NN" in out
