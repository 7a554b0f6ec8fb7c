"""Every public name is documented, and every public callable is annotated."""

import inspect

import pytest

import bayesmeta
import bayesmeta.calibration
import bayesmeta.class_prediction
import bayesmeta.config
import bayesmeta.diagnostics
import bayesmeta.evaluation
import bayesmeta.experiment
import bayesmeta.guides
import bayesmeta.inference
import bayesmeta.inference.gaussian_vi
import bayesmeta.inference.guide_svi
import bayesmeta.inference.svi
import bayesmeta.io
import bayesmeta.learners
import bayesmeta.losses
import bayesmeta.metrics
import bayesmeta.model
import bayesmeta.model.likelihood
import bayesmeta.model.likelihoods
import bayesmeta.model.priors
import bayesmeta.model.task_model
import bayesmeta.model.weight_prior
import bayesmeta.nets
import bayesmeta.nets.spec
import bayesmeta.plotting
import bayesmeta.posteriors
import bayesmeta.posteriors.guided
import bayesmeta.prediction
import bayesmeta.priors
import bayesmeta.reliability
import bayesmeta.run_config
import bayesmeta.run_data
import bayesmeta.run_folder
import bayesmeta.tasks
import bayesmeta.training
import bayesmeta.training.distributed
import bayesmeta.transfer

MODULES = [
    bayesmeta,
    bayesmeta.calibration,
    bayesmeta.class_prediction,
    bayesmeta.config,
    bayesmeta.diagnostics,
    bayesmeta.evaluation,
    bayesmeta.experiment,
    bayesmeta.guides,
    bayesmeta.inference,
    bayesmeta.inference.gaussian_vi,
    bayesmeta.inference.guide_svi,
    bayesmeta.inference.svi,
    bayesmeta.io,
    bayesmeta.learners,
    bayesmeta.training,
    bayesmeta.training.distributed,
    bayesmeta.losses,
    bayesmeta.metrics,
    bayesmeta.model,
    bayesmeta.model.likelihood,
    bayesmeta.model.likelihoods,
    bayesmeta.model.priors,
    bayesmeta.model.task_model,
    bayesmeta.model.weight_prior,
    bayesmeta.nets,
    bayesmeta.nets.spec,
    bayesmeta.plotting,
    bayesmeta.posteriors,
    bayesmeta.posteriors.guided,
    bayesmeta.prediction,
    bayesmeta.priors,
    bayesmeta.reliability,
    bayesmeta.run_config,
    bayesmeta.run_data,
    bayesmeta.run_folder,
    bayesmeta.tasks,
    bayesmeta.transfer,
]


def public_objects():
    seen = set()
    for module in MODULES:
        assert module.__doc__, f"{module.__name__} has no docstring"
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.ismodule(obj) or not (inspect.isclass(obj) or inspect.isfunction(obj)):
                continue
            if id(obj) in seen:
                continue
            seen.add(id(obj))
            yield f"{module.__name__}.{name}", obj
            if inspect.isclass(obj):
                for attr, member in vars(obj).items():
                    if attr.startswith("_") or not (
                        inspect.isfunction(member) or isinstance(member, property)
                    ):
                        continue
                    yield f"{module.__name__}.{name}.{attr}", member


@pytest.mark.parametrize(
    ("name", "obj"), list(public_objects()), ids=lambda v: v if isinstance(v, str) else ""
)
def test_documented(name, obj):
    doc = obj.__doc__ if not isinstance(obj, property) else obj.fget.__doc__
    assert doc and doc.strip(), f"{name} has no docstring"


def test_top_level_exports_resolve():
    for name in bayesmeta.__all__:
        assert hasattr(bayesmeta, name)


def test_evaluate_is_at_the_top_level():
    import bayesmeta.evaluation

    assert bayesmeta.evaluate is bayesmeta.evaluation.evaluate
