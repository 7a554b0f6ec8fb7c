"""A run's ``metrics.json`` reports the noise scale its predictions use."""

import json

from bayesmeta.runs.config import RunConfig
from bayesmeta.runs.experiment import run_experiment


def test_a_runs_metrics_report_the_scale_predictions_use(tmp_path) -> None:
    config = RunConfig(learner="bayesian_maml", iterations=3, eval_tasks=4, meta_batch_size=4)
    result = run_experiment(config, out_dir=tmp_path, progress=False)
    saved = json.loads((result.run_dir / "metrics.json").read_text())
    scale = result.learner.predictive_noise()
    assert scale is not None
    assert saved["noise_scale"] == [float(v) for v in scale]
