"""Distributed meta-training: 2 CPU processes under torchrun match one process."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import bayesmeta as bm
from bayesmeta.training.distributed import DistributedError, is_distributed, shard

WORKER = Path(__file__).with_name("distributed_worker.py")


def torchrun(tmp_path: Path, *args: str) -> list[dict]:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            str(WORKER),
            args[0],
            str(tmp_path),
            *args[1:],
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]


def single_process(name: str) -> tuple[torch.Tensor, list[float]]:
    sys.path.insert(0, str(WORKER.parent))
    from distributed_worker import build, fit

    learner = build(name, seed=0)
    history = fit(learner, name, seed=3)
    return torch.cat([p.detach().reshape(-1) for p in learner.parameters()]), history.loss


# Reptile runs with SGD: its direction theta - mean(phi) is a difference of nearly equal
# numbers, and Adam's normalisation turns the round-off of a near-zero entry into a step
# of up to lr (see bayesmeta.training.distributed).
@pytest.mark.parametrize("name", ["maml", "reptile_sgd"])
def test_two_ranks_match_one_process(tmp_path, name):
    ranks = torchrun(tmp_path, name)
    want, losses = single_process(name)
    for result in ranks:
        got = torch.tensor(result["params"])
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(
            torch.tensor(result["loss"]), torch.tensor(losses), atol=1e-5, rtol=1e-5
        )


@pytest.mark.parametrize("name", ["bayesian_maml", "variational"])
def test_stochastic_learner_stays_in_sync(tmp_path, name):
    a, b = torchrun(tmp_path, name)
    assert a["params"] == b["params"]  # the same update on every rank
    assert all(torch.isfinite(torch.tensor(a["loss"])))
    want, _ = single_process(name)
    assert len(a["params"]) == len(want)
    moved = (torch.tensor(a["params"]) - want).abs().max()
    assert 0 < moved < 0.1  # the same fit as one process, but its own Monte Carlo draws


def test_variational_gradient_split_over_ranks_equals_one_process(tmp_path):
    """The summed gradient of every parameter, q(theta_t)'s sparse rows included."""
    sys.path.insert(0, str(WORKER.parent))
    from distributed_worker import build, variational_gradient

    learner = build("variational_gradient", seed=0)

    def one_process(tasks, generator):
        learner.meta_loss(tasks, subsample_size=5, generator=generator).backward()

    want = torch.tensor(variational_gradient(learner, 3, one_process))
    for result in torchrun(tmp_path, "variational_gradient"):
        got = torch.tensor(result["grad"])
        assert int((want != 0).sum()) > 300  # the drawn tasks' rows and the globals
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-3 * float(want.abs().max()))


def test_ranks_drawing_different_tasks_are_refused(tmp_path):
    for result in torchrun(tmp_path, "maml", "mismatch"):
        assert result["error"] == "DistributedError"
        assert "seed the task source identically" in result["message"]


def test_shard_splits_tasks_contiguously():
    batch = bm.Sinusoid(2, 2, seed=0).sample(5)
    parts = [shard(batch, r, 2) for r in range(2)]
    assert [len(p) for p in parts] == [2, 3]
    torch.testing.assert_close(torch.cat([p.support_x for p in parts]), batch.support_x)
    with pytest.raises(DistributedError, match="meta_batch_size >= 3"):
        shard(batch.select(slice(0, 2)), 0, 3)
    assert not is_distributed()
