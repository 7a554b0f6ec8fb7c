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
