"""Issue 17's renames: old setting, flag and keyword names keep working for one release."""

import json
import warnings

import pytest
import torch

import bayesmeta as bm
from bayesmeta.cli.main import main
from bayesmeta.runs import RunConfig
from bayesmeta.runs.config_file import ConfigError, parse_config
from bayesmeta.runs.folder import read_run_config


def test_old_config_keys_warn_and_are_read_as_the_new_ones():
    old = {"learner": "maml", "shots": 3, "query": 4, "eval_query": 6, "eval_inner_steps": 2}
    with pytest.warns(DeprecationWarning) as caught:
        config = parse_config(old)
    assert {str(w.message).split(": the setting ")[1].split()[0] for w in caught} == {
        "shots",
        "query",
        "eval_query",
        "eval_inner_steps",
    }
    assert (config.k_support, config.k_query, config.eval_k_query) == (3, 4, 6)
    assert config.adapt_steps == 2


def test_an_old_key_beside_its_new_name_is_refused():
    with (
        pytest.raises(ConfigError, match="shots is the old name of k_support"),
        pytest.warns(DeprecationWarning),
    ):
        parse_config({"shots": 3, "k_support": 4})


def test_adapt_steps_defaults_by_learner():
    assert RunConfig(learner="maml").adapt_steps == 10
    assert RunConfig(learner="variational").adapt_steps == 300
    assert RunConfig(learner="protonet", data="digits").adapt_steps is None


def test_old_config_attributes_warn():
    config = RunConfig(k_support=3)
    with pytest.warns(DeprecationWarning, match="RunConfig.shots is renamed k_support"):
        assert config.shots == 3


def test_runconfig_takes_the_old_keywords_with_a_warning_pointing_at_the_caller():
    with pytest.warns(DeprecationWarning, match="is renamed") as record:
        config = RunConfig(shots=3, query=7)
    assert [str(w.message).split(";")[0] for w in record] == [
        "RunConfig: the setting shots is renamed k_support",
        "RunConfig: the setting query is renamed k_query",
    ]
    assert {w.filename for w in record} == {__file__}
    assert (config.k_support, config.k_query) == (3, 7)
    assert config == RunConfig(k_support=3, k_query=7)
    with pytest.warns(DeprecationWarning, match="eval_inner_steps"):
        assert RunConfig(learner="maml", eval_inner_steps=4).adapt_steps == 4
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="give only k_support"):
        RunConfig(shots=3, k_support=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        RunConfig(k_support=3)  # the new names: no warning


@pytest.mark.parametrize(
    ("learner", "adapt_steps"), [("maml", 7), ("variational", 300), ("bayesian_maml", 5)]
)
def test_a_run_folder_written_with_the_old_keys_loads_silently(tmp_path, learner, adapt_steps):
    # config.json as runs wrote it before the renames: every field, eval_inner_steps and
    # the SVI learners' adapt_steps side by side.
    old = {
        "learner": learner,
        "data": "sinusoid",
        "shots": 4,
        "query": None,
        "eval_query": 50,
        "inner_steps": 5,
        "eval_inner_steps": None if learner == "bayesian_maml" else 7,
        "adapt_steps": 300,
        "iterations": 3,
    }
    (tmp_path / "config.json").write_text(json.dumps(old))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        config = read_run_config(tmp_path)
    assert (config.k_support, config.k_query, config.eval_k_query) == (4, None, 50)
    assert config.adapt_steps == adapt_steps  # eval_inner_steps None meant inner_steps


def test_the_old_flags_still_work_with_a_warning_on_stderr(tmp_path, capsys):
    assert main(["run", "--shots", "0", "--eval-inner-steps", "3", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--shots is renamed --k-support" in err
    assert "--eval-inner-steps is renamed --adapt-steps" in err
    assert "k_support must be >= 1" in err  # the old flag's value reached the new setting


def test_old_episode_keywords_and_attributes_warn():
    x, y = torch.randn(40, 3), torch.arange(4).repeat(10)
    with pytest.warns(DeprecationWarning) as caught:
        source = bm.tasks.Episodes(x, y, n_way=2, k_shot=2, q_query=3, seed=0)
    assert [str(w.message).split(":")[0] for w in caught] == [
        "k_shot is renamed k_support",
        "q_query is renamed k_query",
    ]
    assert {w.filename for w in caught} == {__file__}
    assert (source.k_support, source.k_query) == (2, 3)
    with pytest.warns(DeprecationWarning, match="q_query is renamed k_query"):
        assert source.q_query == 3
    batch = source.sample(2)
    assert batch.support_x.shape[1] == 4 and batch.query_x.shape[1] == 6
    with pytest.warns(DeprecationWarning):
        sources = bm.tasks.digits_episodes(n_way=2, k_shot=1, q_query=2)
    assert sources["train"].k_support == 1
    with pytest.raises(TypeError, match="missing k_support"):
        bm.tasks.Episodes(x, y, n_way=2)
