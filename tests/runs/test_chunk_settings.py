"""The run settings ``task_chunk`` and ``particle_chunk``: read by the learners they reach."""

import pytest

from bayesmeta.runs.config_file import ConfigError, parse_config


@pytest.mark.parametrize("learner", ["maml", "fomaml", "bayesian_maml"])
def test_task_chunk_reaches_the_learner(learner):
    built = parse_config({"learner": learner, "task_chunk": 4}).build_learner()
    assert built.hparams.task_chunk == 4
    assert parse_config({"learner": learner}).build_learner().hparams.task_chunk is None


def test_both_chunks_reach_bayesian_maml():
    raw = {"learner": "bayesian_maml", "task_chunk": 2, "particle_chunk": 1}
    hp = parse_config(raw).build_learner().hparams
    assert (hp.task_chunk, hp.particle_chunk) == (2, 1)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"learner": "maml", "task_chunk": 0}, "task_chunk must be >= 1"),
        ({"learner": "maml", "task_chunk": "2"}, "task_chunk must be an integer"),
        ({"learner": "reptile", "task_chunk": 2}, "task_chunk has no effect on learner 'reptile'"),
        ({"learner": "variational", "task_chunk": 2}, "task_chunk has no effect"),
        ({"learner": "maml", "particle_chunk": 2}, "particle_chunk has no effect"),
    ],
)
def test_bad_chunk_settings_name_the_key(raw, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(raw)
