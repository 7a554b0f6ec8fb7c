"""Training checkpoints: an interrupted meta_fit resumes to the same result; bad files refused."""

import pytest
import torch

import bayesmeta as bm
from bayesmeta.io import (
    CheckpointError,
    load_learner,
    load_training_state,
    save_learner,
    save_training_state,
)


class InterruptedRunError(Exception):
    pass


def params(learner):
    return torch.cat([p.detach().reshape(-1) for p in learner.parameters()])


def make(name):
    torch.manual_seed(0)
    if name == "maml":
        return bm.MAML((1, 8, 1), inner_steps=2)
    if name == "reptile":
        return bm.Reptile((1, 8, 1), inner_steps=2)
    return bm.BayesianMAML((1, 8, 1), inner_steps=2)  # draws noise from torch's generator


@pytest.mark.parametrize("name", ["maml", "reptile", "bayesian_maml"])
def test_resumed_run_ends_like_an_uninterrupted_one(tmp_path, name):
    whole = make(name)
    full = whole.meta_fit(bm.Sinusoid(5, 5, seed=1), 10, 4, progress=False)

    path = tmp_path / "train.safetensors"
    first = make(name)

    def stop(it, loss):
        if it == 6:  # after the checkpoint at 4 iterations, before the one at 8
            raise InterruptedRunError

    with pytest.raises(InterruptedRunError):
        first.meta_fit(
            bm.Sinusoid(5, 5, seed=1),
            10,
            4,
            progress=False,
            checkpoint=path,
            checkpoint_every=4,
            callback=stop,
        )
    torch.manual_seed(123)  # a different global state: the checkpoint restores its own
    resumed = make(name)
    history = resumed.meta_fit(
        bm.Sinusoid(5, 5, seed=1), 10, 4, progress=False, checkpoint=path, checkpoint_every=4
    )
    assert history.iterations == 10 and len(history.loss) == 10
    torch.testing.assert_close(torch.tensor(history.loss), torch.tensor(full.loss))
    torch.testing.assert_close(params(resumed), params(whole), rtol=0, atol=0)
    # the final checkpoint is the finished run: resuming it does nothing more
    again = make(name)
    assert again.meta_fit(bm.Sinusoid(5, 5, seed=1), 10, 4, checkpoint=path).iterations == 10
    torch.testing.assert_close(params(again), params(whole), rtol=0, atol=0)


def test_a_checkpoint_of_another_learner_or_architecture_is_refused(tmp_path):
    path = tmp_path / "t.safetensors"
    learner = bm.MAML((1, 8, 1))
    learner.meta_fit(bm.Sinusoid(5, 5, seed=0), 2, 4, progress=False, checkpoint=path)
    with pytest.raises(CheckpointError, match=r"different learner or architecture.*net"):
        load_training_state(path, bm.MAML((1, 16, 1)), None)
    with pytest.raises(CheckpointError, match="learner: 'MAML' in the checkpoint, 'Reptile'"):
        load_training_state(path, bm.Reptile((1, 8, 1)), None)


def test_corrupted_and_truncated_files_are_detected(tmp_path):
    path = tmp_path / "t.safetensors"
    learner = bm.MAML((1, 8, 1))
    save_training_state(path, learner, bm.History(), bm.Sinusoid(5, 5, seed=0))
    data = bytearray(path.read_bytes())
    flipped = tmp_path / "flipped.safetensors"
    data[-3] ^= 0xFF  # a bit flip inside the last tensor's bytes
    flipped.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupted"):
        load_training_state(flipped, bm.MAML((1, 8, 1)), None)
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(CheckpointError, match="not a readable"):
        load_training_state(truncated, bm.MAML((1, 8, 1)), None)
    model_only = save_learner(learner, tmp_path / "model.safetensors")
    with pytest.raises(CheckpointError, match="not a bayesmeta training checkpoint"):
        load_training_state(model_only, bm.MAML((1, 8, 1)), None)
    assert not list(tmp_path.glob("*.tmp"))  # writes are atomic renames


def test_variational_learner_resumes_with_its_tasks_posteriors(tmp_path):
    batch = bm.Sinusoid(5, 5, seed=0).sample(8)

    def fresh():
        torch.manual_seed(0)
        return bm.VariationalMetaLearner((1, 4, 1))

    whole = fresh()
    full = whole.meta_fit(batch, 9, 3, progress=False)
    path = tmp_path / "v.safetensors"

    def stop(it, loss):
        if it == 5:
            raise InterruptedRunError

    with pytest.raises(InterruptedRunError):
        fresh().meta_fit(
            batch, 9, 3, progress=False, checkpoint=path, checkpoint_every=3, callback=stop
        )
    torch.manual_seed(99)
    resumed = fresh()
    history = resumed.meta_fit(batch, 9, 3, progress=False, checkpoint=path, checkpoint_every=3)
    torch.testing.assert_close(torch.tensor(history.loss), torch.tensor(full.loss))
    torch.testing.assert_close(params(resumed), params(whole), rtol=0, atol=0)


def test_a_saved_learner_with_a_flipped_bit_is_refused(tmp_path):
    path = save_learner(bm.MAML((1, 8, 1)), tmp_path / "m.safetensors")
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupted"):
        load_learner(path)
