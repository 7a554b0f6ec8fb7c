"""The modules that moved still import from their old paths, for one release, with a warning."""

import importlib
import sys

import pytest

import bayesmeta

MOVED = {
    "bayesmeta.calibration": "bayesmeta.scoring.calibration",
    "bayesmeta.class_prediction": "bayesmeta.predictions.class_prediction",
    "bayesmeta.config": "bayesmeta.runs.config_file",
    "bayesmeta.evaluation": "bayesmeta.scoring.evaluation",
    "bayesmeta.experiment": "bayesmeta.runs.experiment",
    "bayesmeta.io.training_state": "bayesmeta.training.state",
    "bayesmeta.learners.distributed": "bayesmeta.training.distributed",
    "bayesmeta.learners.training": "bayesmeta.training.loop",
    "bayesmeta.losses": "bayesmeta.nets.losses",
    "bayesmeta.metrics": "bayesmeta.scoring.metrics",
    "bayesmeta.plotting": "bayesmeta.scoring.plotting",
    "bayesmeta.prediction": "bayesmeta.predictions.prediction",
    "bayesmeta.priors.hierarchical": "bayesmeta.model.hyper",
    "bayesmeta.reliability": "bayesmeta.scoring.reliability",
    "bayesmeta.run_config": "bayesmeta.runs.config",
    "bayesmeta.run_data": "bayesmeta.runs.data",
    "bayesmeta.run_folder": "bayesmeta.runs.folder",
}


@pytest.mark.parametrize(("old", "new"), sorted(MOVED.items()))
def test_old_path_warns_with_the_new_one_and_gives_the_same_objects(old, new, monkeypatch):
    # Import the shim afresh, and leave the parent's attribute as it was afterwards (the
    # import binds it to the shim; bayesmeta.metrics is a public name of its own).
    monkeypatch.delitem(sys.modules, old, raising=False)
    parent, _, leaf = old.rpartition(".")
    package = importlib.import_module(parent)
    monkeypatch.setattr(package, leaf, getattr(package, leaf, None), raising=False)
    with pytest.warns(DeprecationWarning, match=f"{old} moved to {new}"):
        shim = importlib.import_module(old)
    target = importlib.import_module(new)
    assert shim.__all__
    for name in shim.__all__:
        assert getattr(shim, name) is getattr(target, name), name


def test_the_top_level_names_do_not_warn():
    # bayesmeta.metrics and bayesmeta.evaluate are public names, not old paths.
    assert bayesmeta.metrics.mse is importlib.import_module("bayesmeta.scoring.metrics").mse
    assert bayesmeta.evaluate is importlib.import_module("bayesmeta.scoring.evaluation").evaluate
