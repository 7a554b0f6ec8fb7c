import json
import shutil

import pytest
import torch

from bayesmeta import ProtoNet
from bayesmeta.diagnostics.report import (
    REPORT_LEVELS,
    RunDiagnostics,
    RunFolderError,
    diagnose_run,
    write_report,
)
from bayesmeta.errors import BayesmetaError
from bayesmeta.io import load_learner, save_learner
from bayesmeta.runs.experiment import EVAL_SEED, RunConfig, quick, run_experiment
from bayesmeta.scoring.evaluation import evaluate

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """One quick MAML run (50 iterations, 50 held-out tasks), shared by the tests."""
    out = tmp_path_factory.mktemp("runs")
    result = run_experiment(quick(RunConfig()), out_dir=out, progress=False)
    return result.run_dir


def _copy(run_dir, tmp_path):
    return shutil.copytree(run_dir, tmp_path / run_dir.name)


def test_report_writes_figures_and_a_markdown_summary(run_dir, tmp_path):
    run = _copy(run_dir, tmp_path)
    path = write_report(run, progress=False)
    assert path == run / "report" / "report.md"
    for name in ("pit.png", "coverage.png", "loss.png"):
        png = run / "report" / name
        assert png.stat().st_size > 1000 and png.read_bytes()[:8] == PNG
        assert f"]({name})" in path.read_text()  # relative links
    assert not (run / "report" / "reliability.png").exists()
    text = path.read_text()
    saved = json.loads((run / "metrics.json").read_text())["metrics"]
    for name, value in saved.items():
        assert f"| {name} | {value['mean']:.4f} | {value['ci95']:.4f} |" in text
    assert "# Report: maml on sinusoid, 5-shot" in text
    assert "| iterations | 50 |" in text and "| k_support | 5 |" in text
    assert "PACOH calibration error" in text and "Kolmogorov-Smirnov" in text
    assert text.count("| 0.") >= 9  # the coverage table, levels 0.1 to 0.9
    assert "50 iterations in" in text
    # a second report overwrites the first
    assert write_report(run, num_tasks=5, progress=False) == path
    assert "On the first 5 of these tasks." in path.read_text()


def test_diagnostics_rebuild_the_runs_own_held_out_tasks(run_dir):
    d = diagnose_run(run_dir, num_tasks=1000, progress=False)
    assert d.num_tasks == 50  # capped at the tasks the run scored
    assert d.pit.shape == (50 * 100,) and d.calibration_error.shape == (50,)
    assert d.levels.tolist() == pytest.approx(REPORT_LEVELS)
    # the coverage at 0.9 is the run's own coverage_90 on the same 50 tasks
    saved = json.loads((run_dir / "metrics.json").read_text())["metrics"]
    assert dict(d.coverage_rows())[0.9] == pytest.approx(saved["coverage_90"]["mean"], abs=5e-4)
    assert [a for a, _ in d.coverage_rows()] == pytest.approx([i / 10 for i in range(1, 10)])
    assert bool((d.coverage[1:] >= d.coverage[:-1]).all())  # nested intervals
    assert 0 <= d.ks_distance <= 1
    # deterministic, and fewer tasks are the first ones of the same tasks
    few = diagnose_run(run_dir, num_tasks=7, progress=False)
    assert few.num_tasks == 7
    torch.testing.assert_close(few.pit, d.pit[: 7 * 100])
    torch.testing.assert_close(diagnose_run(run_dir, progress=False).pit, d.pit)


def test_a_run_without_iterations_has_no_loss_figure(run_dir, tmp_path):
    run = _copy(run_dir, tmp_path)
    history = json.loads((run / "history.json").read_text())
    (run / "history.json").write_text(json.dumps({**history, "loss": [], "iterations": 0}))
    text = write_report(run, num_tasks=3, progress=False).read_text()
    assert "No meta-training iterations were recorded." in text
    assert not (run / "report" / "loss.png").exists()


def test_class_predictions_get_a_reliability_diagram(tmp_path):
    config = RunConfig(
        learner="protonet",
        data="digits",
        backbone="conv4",
        k_support=1,
        iterations=3,
        eval_tasks=20,
        channels=8,
    )
    run = run_experiment(config, out_dir=tmp_path, progress=False).run_dir
    assert (run / "reliability.png").read_bytes()[:8] == PNG
    d = diagnose_run(run, num_tasks=20, progress=False)
    assert isinstance(d, RunDiagnostics) and d.pit is None and d.reliability is not None
    assert int(d.reliability.count.sum()) == 20 * 5 * 15  # tasks x classes x queries per class
    saved = json.loads((run / "metrics.json").read_text())["metrics"]["ece"]["mean"]
    assert d.reliability.ece == pytest.approx(saved, abs=1e-6)  # the run's own held-out tasks
    with pytest.raises(ValueError, match="class predictions"):
        d.coverage_rows()
    path = write_report(d)
    assert (run / "report" / "reliability.png").read_bytes()[:8] == PNG
    assert not (run / "report" / "pit.png").exists()
    text = path.read_text()
    assert f"Expected calibration error (15 bins): {d.reliability.ece:.4f}" in text
    # the 1-NN the run scored stands beside the learner, and the verdict says who wins
    baseline = json.loads((run / "metrics.json").read_text())["baseline"]
    theirs = baseline["metrics"]["accuracy"]
    assert f"| metric | learner | {baseline['name']} |" in text
    assert f"| {theirs['mean']:.4f} ± {theirs['ci95']:.4f} |" in text
    assert "**Against a simple baseline:" in text
    assert "](reliability.png)" in text and "](loss.png)" in text


def test_a_folder_that_is_not_a_run_is_refused_naming_the_file(run_dir, tmp_path):
    with pytest.raises(RunFolderError, match="is not a folder"):
        diagnose_run(tmp_path / "nope")
    with pytest.raises(RunFolderError, match=r"not a run folder: it has no config\.json"):
        write_report(tmp_path)
    run = _copy(run_dir, tmp_path)
    (run / "model.safetensors").unlink()
    with pytest.raises(RunFolderError, match=r"it has no model\.safetensors") as info:
        diagnose_run(run)
    assert isinstance(info.value, BayesmetaError) and isinstance(info.value, ValueError)
    (run / "metrics.json").write_text("{not json")
    save_learner(ProtoNet([2, 4]), run / "model.safetensors")
    with pytest.raises(RunFolderError, match=r"cannot read .*metrics\.json"):
        diagnose_run(run)
    (run / "metrics.json").write_text(json.dumps({"metrics": {"mse": 1.0}}))
    with pytest.raises(RunFolderError, match=r"metrics\.json has no 'metrics' table"):
        diagnose_run(run)
    (run / "config.json").write_text(json.dumps({"learner": "maml", "colour": "red"}))
    with pytest.raises(RunFolderError, match=r"config\.json is not a valid RunConfig.*colour"):
        diagnose_run(run)
    with pytest.raises(ValueError, match="num_tasks must be >= 1"):
        diagnose_run(run, num_tasks=0)


def test_the_reports_numbers_are_evaluates_on_the_same_run(tmp_path):
    """Report and evaluation share one seeded chunk loop: the same draws, the same numbers."""
    config = RunConfig(
        learner="bayesian_maml", hidden=(8,), iterations=3, eval_tasks=12, inner_steps=1
    )
    run = run_experiment(config, out_dir=tmp_path, progress=False).run_dir
    learner = load_learner(run / "model.safetensors")
    batch = config.held_out_tasks(EVAL_SEED)
    ev = evaluate(learner, batch, chunk_size=config.eval_chunk_size, seed=EVAL_SEED)
    saved = json.loads((run / "metrics.json").read_text())["metrics"]
    assert json.loads(json.dumps(ev.to_dict())) == saved  # what the run wrote, to the bit
    d = diagnose_run(run, num_tasks=12, progress=False)
    coverage_90 = float(ev.per_task["coverage_90"].mean())
    assert dict(d.coverage_rows())[0.9] == pytest.approx(coverage_90, abs=1e-6)
