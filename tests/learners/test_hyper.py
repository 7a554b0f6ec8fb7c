"""The learner contract: hyper-parameters in a frozen dataclass, config() derived from it."""

import dataclasses
import inspect
import json
import warnings

import pytest
import torch

import bayesmeta as bm
from bayesmeta.io import build_learner, load_learner, save_learner
from bayesmeta.learners.hyper import GradientHyper, LearnerHyper
from bayesmeta.learners.registry import learner_class, registered
from bayesmeta.nets import MLP

#: Constructor arguments that are not hyper-parameters: the networks (a head is the
#: prior's centre, a network), an optimiser factory (not JSON), the display of progress.
NOT_HYPER = {"net", "encoder", "source", "head", "optimizer", "progress"}


def _make(name: str):
    cls = learner_class(name)
    if name == "TransferLearner":
        return cls(MLP((1, 8, 1)), steps=2)
    if name == "BayesianLastLayer":
        return cls.from_network(MLP((2, 8, 3)))
    return cls((2, 8, 3))


def _default(value: object) -> object:
    """A missing default, as inspect and dataclasses each write it."""
    missing = value is inspect.Parameter.empty or value is dataclasses.MISSING
    return "<required>" if missing else value


@pytest.mark.parametrize("name", registered())
def test_constructor_keywords_are_the_dataclass_fields_with_the_same_defaults(name):
    cls = learner_class(name)
    learner = _make(name)
    params = {
        p.name: _default(p.default)
        for p in inspect.signature(cls).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name not in NOT_HYPER
    }
    fields = {f.name: _default(f.default) for f in dataclasses.fields(learner.hparams)}
    assert params == fields
    assert dataclasses.is_dataclass(learner.hparams)
    assert type(learner.hparams).__dataclass_params__.frozen  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", registered())
def test_config_is_the_hparams_and_rebuilds_an_equal_learner(name):
    learner = _make(name)
    cfg = json.loads(json.dumps(learner.config()))  # JSON-ready
    assert cfg["learner"] == name
    hp = {f.name for f in dataclasses.fields(learner.hparams)}
    assert set(cfg) == hp | {"learner", "net"}
    twin = build_learner(cfg)
    assert type(twin) is type(learner) and twin.hparams == learner.hparams
    assert twin.config() == learner.config()


@pytest.mark.parametrize("name", registered())
def test_hyper_parameters_read_as_attributes_and_are_frozen(name):
    learner = _make(name)
    field = dataclasses.fields(learner.hparams)[0].name
    if field not in type(learner).__dict__ and not hasattr(type(learner), field):
        pytest.skip(f"{field} is not an attribute of {name}")
    assert getattr(learner, field) == getattr(learner.hparams, field)
    with pytest.raises(AttributeError, match="frozen"):
        setattr(learner, field, getattr(learner.hparams, field))
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(learner.hparams, field, None)


def test_each_family_shares_its_base_dataclass():
    assert isinstance(bm.MAML((1, 4, 1)).hparams, GradientHyper)
    assert isinstance(bm.Reptile((1, 4, 1)).hparams, GradientHyper)
    for cls in (bm.BayesianMAML, bm.VariationalMetaLearner, bm.ProtoNet, bm.MatchingNet):
        assert isinstance(cls((1, 4, 1)).hparams, LearnerHyper)


def test_a_bad_value_is_refused_by_the_dataclass_naming_it():
    with pytest.raises(ValueError, match="inner_lr must be positive"):
        bm.MAML((1, 4, 1), inner_lr=0.0)
    with pytest.raises(ValueError, match="inner_lr must be positive"):
        GradientHyper(inner_lr=-1.0)
    with pytest.raises(ValueError, match="num_particles must be >= 1"):
        bm.BayesianMAML((1, 4, 1), num_particles=0)


def test_adapt_steps_defaults_to_inner_steps():
    assert bm.MAML((1, 4, 1), inner_steps=3).adapt_steps == 3
    assert bm.MAML((1, 4, 1), inner_steps=3, adapt_steps=7).adapt_steps == 7
    assert bm.BayesianMAML((1, 4, 1), inner_steps=2).hparams.adapt_steps == 2


@pytest.mark.parametrize(
    ("cls", "old", "new"),
    [
        (bm.MAML, "eval_inner_steps", "adapt_steps"),
        (bm.Reptile, "eval_inner_steps", "adapt_steps"),
        (bm.BayesianMAML, "eval_inner_steps", "adapt_steps"),
        (bm.BayesianMAML, "num_samples", "inner_num_particles"),
        (bm.BayesianMAML, "outer_samples", "num_particles"),
    ],
)
def test_old_keywords_warn_at_the_callers_line_and_stand_for_the_new(cls, old, new):
    with pytest.warns(DeprecationWarning, match=f"{old} is renamed {new}") as caught:
        learner = cls((1, 4, 1), **{old: 3})
    assert caught[0].filename == __file__
    assert getattr(learner.hparams, new) == 3
    with pytest.warns(DeprecationWarning, match=f"{old} is renamed {new}"):
        assert getattr(learner, old) == 3


def test_an_old_keyword_and_its_new_name_together_are_refused():
    with (
        pytest.raises(TypeError, match="pass only num_particles"),
        pytest.warns(DeprecationWarning),
    ):
        bm.BayesianMAML((1, 4, 1), outer_samples=2, num_particles=3)
    with pytest.raises(TypeError, match="unexpected keyword argument"):
        bm.MAML((1, 4, 1), nonsense=1)


def test_a_checkpoint_config_in_the_old_form_loads_silently_with_the_new_names():
    old = {
        "learner": "BayesianMAML",
        "outer_lr": 0.001,
        "max_grad_norm": None,
        "likelihood": "gaussian",
        "prior": {"family": "normal"},
        "noise_scale": 0.1,
        "learn_noise": True,
        "prior_scale": 0.02,
        "scale_per": "weight",
        "posterior": "gaussian",
        "inner_lr": 0.01,
        "inner_steps": 5,
        "eval_inner_steps": 10,
        "num_samples": 2,
        "objective": "predictive",
        "outer_samples": 4,
        "kl_weight": 1.0,
        "scale_update": "natural",
        "scale_rate": 0.5,
        "first_order": False,
        "calibrate_noise": True,
        "net": {"sizes": [1, 8, 1], "activation": "relu"},
    }
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        learner = build_learner(old)
        maml = build_learner(
            {"learner": "MAML", "eval_inner_steps": 4, "net": {"sizes": [1, 4, 1]}}
        )
        transfer = build_learner(
            {"learner": "TransferLearner", "num_samples": 2, "net": {"sizes": [1, 4, 1]}}
        )
    hp = learner.hparams
    assert (hp.adapt_steps, hp.inner_num_particles, hp.num_particles) == (10, 2, 4)
    assert maml.hparams.adapt_steps == 4 and transfer.hparams.num_particles == 2


def test_a_saved_learner_round_trips_its_hparams(tmp_path):
    learner = bm.BayesianMAML((1, 8, 1), inner_steps=2, num_particles=3, kl_weight=0.5)
    path = save_learner(learner, tmp_path / "m.safetensors")
    again = load_learner(path)
    assert again.hparams == learner.hparams
    x = torch.linspace(-1, 1, 5)[:, None]
    torch.testing.assert_close(again.net(x), learner.net(x))


@pytest.mark.parametrize("centred", [True, False])
def test_a_bayesian_last_layer_round_trips_a_checkpoint(tmp_path, centred):
    torch.manual_seed(0)
    source = MLP((1, 16, 16, 1), activation="tanh")
    learner = bm.BayesianLastLayer.from_network(source, centre_on_head=centred, noise_scale=0.3)
    g = torch.Generator().manual_seed(1)
    x = torch.rand(3, 6, 1, generator=g) * 4 - 2
    y = torch.sin(x) + 0.1 * torch.randn(3, 6, 1, generator=g)
    learner.fit_prior(x, y, steps=20)
    again = load_learner(save_learner(learner, tmp_path / "bll.safetensors"))
    assert isinstance(again, bm.BayesianLastLayer) and again.hparams == learner.hparams
    assert (again.head is None) == (not centred)
    torch.testing.assert_close(again.prior_scale_, learner.prior_scale_)
    torch.testing.assert_close(again.noise_scale_, learner.noise_scale_)
    xq = torch.linspace(-2, 2, 9)[:, None]
    ours = learner.adapt(x[0], y[0]).predict(xq, generator=torch.Generator().manual_seed(2))
    theirs = again.adapt(x[0], y[0]).predict(xq, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(theirs.function_samples, ours.function_samples)


def test_a_bayesian_last_layer_on_a_conv4_encoder_round_trips(tmp_path):
    torch.manual_seed(0)
    encoder = bm.nets.Conv4(1, None, hidden=4, image_size=8)
    head = torch.nn.Linear(encoder(torch.rand(2, 1, 8, 8)).shape[-1], 3)
    learner = bm.BayesianLastLayer(
        encoder, num_outputs=3, head=head, classification=True, prior_scale=0.5, svi_steps=5
    )
    again = load_learner(save_learner(learner, tmp_path / "conv.safetensors"))
    assert again.hparams == learner.hparams and again.feature_dims == 3
    x = torch.rand(4, 1, 8, 8)
    torch.testing.assert_close(again.features(x), learner.features(x))
    torch.testing.assert_close(again.head.weight, head.weight)


def test_hparams_can_be_replaced_before_training():
    learner = bm.Reptile((1, 4, 1))
    learner.hparams = dataclasses.replace(learner.hparams, train_on="support")
    assert learner.train_on == "support" and learner.config()["train_on"] == "support"
