"""``predictive_noise()``: the noise scale the meta-learners' predictions use."""

import torch

import bayesmeta as bm


def test_classifiers_have_none() -> None:
    net = torch.nn.Sequential(torch.nn.Linear(4, 3))
    for learner in (bm.ProtoNet(net), bm.BayesianProtoNet(net), bm.MatchingNet(net)):
        assert learner.predictive_noise() is None


def test_maml_reports_its_fitted_scale_and_none_before() -> None:
    torch.manual_seed(0)
    learner = bm.MAML((1, 8, 1), inner_steps=1)
    assert learner.predictive_noise() is None
    fitted = learner.fit_noise_scale(bm.Sinusoid(5, 10, seed=0).sample(20))
    torch.testing.assert_close(learner.predictive_noise(), fitted)


def test_bayesian_maml_reports_the_calibrated_scale_not_the_likelihoods() -> None:
    torch.manual_seed(0)
    learner = bm.BayesianMAML((1, 8, 1), inner_steps=1, noise_scale=0.01, learn_noise=False)
    batch = bm.Sinusoid(5, 10, seed=0).sample(8)
    learner.meta_step(batch)  # sinusoids' errors dwarf a noise scale of 0.01
    calibrated = learner.calibration.scale()
    assert calibrated is not None and float(calibrated.min()) > 0.1
    scale = learner.predictive_noise()
    assert scale is not None
    torch.testing.assert_close(scale, calibrated.detach())
    assert not torch.allclose(scale, learner.likelihood.noise_scale().detach())
