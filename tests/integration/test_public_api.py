"""Every public name is documented, and every public callable is annotated."""

import inspect

import pytest

import bayesmeta
import bayesmeta.diagnostics
import bayesmeta.guides
import bayesmeta.inference
import bayesmeta.inference.gaussian_vi
import bayesmeta.inference.guide_svi
import bayesmeta.inference.svi
import bayesmeta.io
import bayesmeta.learners
import bayesmeta.learners.registry
import bayesmeta.model
import bayesmeta.model.likelihood
import bayesmeta.model.likelihoods
import bayesmeta.model.priors
import bayesmeta.model.task_model
import bayesmeta.model.weight_prior
import bayesmeta.nets
import bayesmeta.nets.losses
import bayesmeta.nets.spec
import bayesmeta.posteriors
import bayesmeta.posteriors.guided
import bayesmeta.predictions
import bayesmeta.predictions.class_prediction
import bayesmeta.predictions.prediction
import bayesmeta.priors
import bayesmeta.runs
import bayesmeta.runs.config
import bayesmeta.runs.config_file
import bayesmeta.runs.data
import bayesmeta.runs.experiment
import bayesmeta.runs.folder
import bayesmeta.runs.learners
import bayesmeta.runs.transfer
import bayesmeta.scoring
import bayesmeta.scoring.calibration
import bayesmeta.scoring.chunks
import bayesmeta.scoring.evaluation
import bayesmeta.scoring.metrics
import bayesmeta.scoring.plotting
import bayesmeta.scoring.reliability
import bayesmeta.tasks
import bayesmeta.training
import bayesmeta.training.distributed
import bayesmeta.training.loop
import bayesmeta.training.state
import bayesmeta.transfer

MODULES = [
    bayesmeta,
    bayesmeta.diagnostics,
    bayesmeta.guides,
    bayesmeta.inference,
    bayesmeta.inference.gaussian_vi,
    bayesmeta.inference.guide_svi,
    bayesmeta.inference.svi,
    bayesmeta.io,
    bayesmeta.learners,
    bayesmeta.learners.registry,
    bayesmeta.model,
    bayesmeta.model.likelihood,
    bayesmeta.model.likelihoods,
    bayesmeta.model.priors,
    bayesmeta.model.task_model,
    bayesmeta.model.weight_prior,
    bayesmeta.nets,
    bayesmeta.nets.losses,
    bayesmeta.nets.spec,
    bayesmeta.posteriors,
    bayesmeta.posteriors.guided,
    bayesmeta.predictions,
    bayesmeta.predictions.class_prediction,
    bayesmeta.predictions.prediction,
    bayesmeta.priors,
    bayesmeta.runs,
    bayesmeta.runs.config,
    bayesmeta.runs.config_file,
    bayesmeta.runs.data,
    bayesmeta.runs.experiment,
    bayesmeta.runs.folder,
    bayesmeta.runs.learners,
    bayesmeta.runs.transfer,
    bayesmeta.scoring,
    bayesmeta.scoring.calibration,
    bayesmeta.scoring.chunks,
    bayesmeta.scoring.evaluation,
    bayesmeta.scoring.metrics,
    bayesmeta.scoring.plotting,
    bayesmeta.scoring.reliability,
    bayesmeta.tasks,
    bayesmeta.training,
    bayesmeta.training.distributed,
    bayesmeta.training.loop,
    bayesmeta.training.state,
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
    import bayesmeta.scoring.evaluation

    assert bayesmeta.evaluate is bayesmeta.scoring.evaluation.evaluate
