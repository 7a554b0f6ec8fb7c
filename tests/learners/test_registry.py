import pytest
import torch

import bayesmeta as bm
from bayesmeta.errors import CheckpointError
from bayesmeta.io import build_learner
from bayesmeta.learners.registry import learner_class, register, registered


def test_every_learner_is_registered_by_its_class_name():
    expected = {
        "BayesianMAML",
        "BayesianProtoNet",
        "MAML",
        "MatchingNet",
        "ProtoNet",
        "Reptile",
        "TransferLearner",
        "VariationalMetaLearner",
    }
    assert expected <= set(registered())
    assert learner_class("MAML") is bm.MAML
    assert learner_class("TransferLearner") is bm.TransferLearner


def test_an_unknown_name_is_a_checkpoint_error_naming_the_known_ones():
    with pytest.raises(CheckpointError, match=r"unknown learner 'Nope'; known: .*'MAML'"):
        learner_class("Nope")
    with pytest.raises(CheckpointError, match="unknown learner None"):
        build_learner({"net": None})


def test_a_second_class_under_a_taken_name_is_refused():
    class MAML(torch.nn.Module):
        pass

    with pytest.raises(ValueError, match="already registered as 'MAML'"):
        register(MAML)
    assert register(bm.MAML) is bm.MAML  # registering the same class again is harmless


def test_run_names_are_registered_with_their_class_and_builder():
    from bayesmeta.learners.registry import run_learner, run_learners
    from bayesmeta.runs.config import RunConfig

    names = run_learners()
    assert names[:4] == ["maml", "fomaml", "reptile", "bayesian_maml"] and "transfer" in names
    assert run_learner("bayesian_maml").cls is bm.BayesianMAML
    assert run_learner("fomaml").cls is bm.MAML and run_learner("transfer").targets == "regression"
    assert run_learner("protonet").targets == "classes"
    assert "kl_weight" in run_learner("bayesian_maml").reads
    assert "kl_weight" not in run_learner("maml").reads
    learner = RunConfig(learner="fomaml", hidden=(4,)).build_learner()
    assert isinstance(learner, bm.MAML) and learner.first_order
    with pytest.raises(ValueError, match=r"must be one of 'maml', 'fomaml', .*; got 'nope'"):
        run_learner("nope")


def test_the_cli_offers_every_run_learner():
    from bayesmeta.cli.main import build_parser
    from bayesmeta.learners.registry import run_learners

    run = build_parser()._subparsers._group_actions[0].choices["run"]
    (learner,) = [a for a in run._actions if a.dest == "learner"]
    assert list(learner.choices) == run_learners()


def test_a_run_name_taken_by_another_learner_is_refused():
    from bayesmeta.learners.registry import register_run, run_learner

    maml = run_learner("maml")
    again = register_run(
        "maml",
        maml.cls,
        maml.build,
        reads=maml.reads,
        summary=maml.summary,
        defaults=maml.defaults,
        fit=maml.fit,
    )
    assert again == maml and again.cls is bm.MAML
    with pytest.raises(ValueError, match="already registered to run as 'maml'"):
        register_run("maml", maml.cls, maml.build, reads=maml.reads)  # trains otherwise
    with pytest.raises(ValueError, match="already registered to run as 'maml'"):
        register_run("maml", bm.Reptile, maml.build)
    with pytest.raises(ValueError, match=r"requires \['source'\] must be among reads"):
        register_run("other", bm.MAML, maml.build, requires=("source",))
    with pytest.raises(ValueError, match="targets must be"):
        register_run("other", bm.MAML, maml.build, targets="images")  # type: ignore[arg-type]
