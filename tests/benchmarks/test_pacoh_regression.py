"""The PACOH-protocol benchmark: its task pool, its scaling, and a --quick run."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import torch

import bayesmeta as bm
from bayesmeta.tasks import PacohCauchy, PacohSinusoid

SCRIPT = Path(__file__).parents[2] / "benchmarks" / "pacoh_regression.py"


def _module():
    if "pacoh_regression" not in sys.modules:
        spec = importlib.util.spec_from_file_location("pacoh_regression", SCRIPT)
        module = importlib.util.module_from_spec(spec)
        sys.modules["pacoh_regression"] = module  # dataclasses look their module up
        spec.loader.exec_module(module)
    return sys.modules["pacoh_regression"]


def test_split_pool_resplits_the_fixed_tasks():
    pr = _module()
    tasks = PacohCauchy.meta_train_tasks(0, num_tasks=4)  # 20 points each
    pool = pr.SplitPool(tasks, 15, seed=0)
    for num_tasks in (3, 9):  # without and with replacement
        batch = pool.sample(num_tasks)
        assert batch.support_x.shape == (num_tasks, 15, 2)
        assert batch.query_y.shape == (num_tasks, 5, 1)
        for task in batch:
            # The split is a permutation of one fixed task's points.
            x = torch.cat([task.support_x, task.query_x])
            matches = [
                t
                for t in tasks
                if torch.equal(x[x[:, 0].argsort()], t.support_x[t.support_x[:, 0].argsort()])
            ]
            assert len(matches) == 1
    first, second = pool.sample(4), pool.sample(4)
    assert not torch.equal(first.support_x, second.support_x)  # fresh splits each draw


def test_scaling_round_trips_predictions():
    pr = _module()
    raw = PacohSinusoid.meta_train_tasks(0)
    scaling = pr.Scaling.fit(raw)
    scaled = scaling.batch(raw)
    pooled = torch.cat([scaled.support_y, scaled.query_y], 1).flatten()
    assert abs(float(pooled.mean())) < 1e-5 and abs(float(pooled.std()) - 1) < 1e-5
    pred = bm.Prediction(torch.randn(3, 2, 4, 1), torch.tensor(0.5))
    back = scaling.unscale(pred)
    y = torch.randn(2, 4, 1)
    y_raw = y * scaling.y_std + scaling.y_mean
    # Densities change by the Jacobian of the scaling; CDFs not at all.
    assert torch.allclose(back.log_prob(y_raw), pred.log_prob(y) - scaling.y_std.log(), atol=1e-5)
    assert torch.allclose(back.cdf(y_raw), pred.cdf(y), atol=1e-5)


def test_quick_run(tmp_path):
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "±" in done.stdout
    (result,) = tmp_path.glob("pacoh_regression-*.json")
    rows = json.loads(result.read_text())["rows"]
    learners = {(r["env"], r["learner"]) for r in rows if not r["learner"].startswith("reference")}
    assert learners == {
        (env, name)
        for env in ("sinusoid", "cauchy")
        for name in ("VariationalMetaLearner", "BayesianMAML", "MAML")
    }
    references = [r for r in rows if r["learner"].startswith("reference")]
    assert {r["env"] for r in references} == {"sinusoid", "cauchy"}
    for r in references:  # predictors that know the environment are calibrated
        assert abs(r["coverage_90"][0] - 0.9) < 0.1
