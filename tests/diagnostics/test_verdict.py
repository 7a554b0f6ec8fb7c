"""The report's verdict: findings from hand-made summaries, the settings filter, end to end."""

import math

import pytest
import torch

from bayesmeta.cli.main import main
from bayesmeta.diagnostics.report import settings_rows
from bayesmeta.diagnostics.verdict import Finding, format_verdict, verdict
from bayesmeta.runs.config import RunConfig
from bayesmeta.scoring.reliability import reliability
from bayesmeta.training.loop import History


def _by_topic(findings):
    return {f.topic: f for f in findings}


def _summary(coverage, ci=0.05):
    return {"num_tasks": 50, "metrics": {"coverage_90": {"mean": coverage, "ci95": ci}}}


def _converged(n=200):
    """A loss that falls fast and levels off, with a little noise."""
    g = torch.Generator().manual_seed(0)
    t = torch.arange(n, dtype=torch.float64)
    return (1 + 4 * torch.exp(-t / 10) + 0.01 * torch.randn(n, generator=g)).tolist()


# Calibration (regression): 90% interval coverage


def test_coverage_of_043_is_over_confident_by_47_points():
    config = RunConfig(learner="variational")
    cal = _by_topic(verdict(_summary(0.429, 0.065), config=config))["Calibration"]
    assert cal.status == "problem"
    assert cal.message.startswith("over-confident: 90% intervals cover 43% of query points")
    assert (
        "47 points short of 90%" in cal.message and "± 0.07 over 50 held-out tasks" in cal.message
    )
    assert "train longer (this run: 10000 meta-iterations)" in cal.advice
    assert "prior_scale" in cal.advice and "adapt_steps` (this run: 300)" in cal.advice
    assert "CI reaches" not in cal.message
    near = _by_topic(verdict(_summary(0.8, 0.1)))["Calibration"]
    assert near.status == "warning" and "the 95% CI reaches 85%-95%" in near.message


def test_coverage_of_090_is_calibrated_and_099_under_confident():
    ok = _by_topic(verdict(_summary(0.9)))["Calibration"]
    assert ok.status == "ok" and ok.message.startswith("calibrated: 90% intervals cover 90%")
    assert ok.advice == ""
    wide = _by_topic(verdict(_summary(0.99)))["Calibration"]
    assert wide.status == "problem"
    assert wide.message.startswith("under-confident") and "9 points above 90%" in wide.message
    assert _by_topic(verdict(_summary(0.97)))["Calibration"].status == "warning"
    assert _by_topic(verdict(_summary(0.80)))["Calibration"].status == "warning"
    assert _by_topic(verdict(_summary(0.85)))["Calibration"].status == "ok"  # band edges


def test_the_pit_shape_and_tuple_metrics_are_read():
    u_shaped = torch.cat([torch.full((500,), 0.01), torch.full((500,), 0.99)])
    cal = _by_topic(verdict({"coverage_90": (0.5, 0.1)}, pit=u_shaped))["Calibration"]
    assert cal.status == "problem" and "U-shaped" in cal.message
    # without coverage_90, the PIT values give the 90% coverage
    cal = _by_topic(verdict({"mse": 1.0}, pit=u_shaped))["Calibration"]
    assert "cover 0% of 1000 query points (from their PIT)" in cal.message


def test_a_missing_metric_is_said_not_invented():
    findings = _by_topic(verdict({"mse": {"mean": 1.0, "ci95": 0.1}}, []))
    assert findings["Calibration"].status == "missing"
    assert "coverage_90" in findings["Calibration"].message
    assert findings["Bias"].status == "missing"
    assert findings["Training convergence"].status == "missing"
    assert "Variational posterior" not in findings  # MAML-like: no topic
    text = "\n".join(format_verdict(list(findings.values())))
    assert text.startswith("**No problems found; 3 topics not assessed.**")


# Bias


def test_pit_mean_far_from_half_is_bias():
    g = torch.Generator().manual_seed(0)
    uniform = torch.rand(4000, generator=g, dtype=torch.float64)
    assert _by_topic(verdict(_summary(0.9), pit=uniform))["Bias"].status == "ok"
    low = _by_topic(verdict(_summary(0.9), pit=uniform**0.5))["Bias"]  # targets above
    assert low.status == "problem" and low.message.startswith("predictions biased low")
    assert "mean PIT 0.66" in low.message
    high = _by_topic(verdict(_summary(0.9), pit=uniform * 0.85))["Bias"]
    assert high.status == "warning" and "biased high" in high.message
    assert "spread of" not in high.message
    # per task [T, P]: two tasks biased opposite ways, a mean off 0.5 within their spread
    tasks = torch.stack([uniform[:2000] ** 0.2, uniform[2000:] ** 2.5])
    spread = _by_topic(verdict(_summary(0.9), pit=tasks))["Bias"]
    assert "within the spread of 2 tasks" in spread.message


# Training convergence


def test_a_loss_that_falls_and_levels_off_has_converged():
    conv = _by_topic(verdict(_summary(0.9), _converged()))["Training convergence"]
    assert conv.status == "ok" and conv.message.startswith("converged")
    assert conv.message.endswith("over the last 10%).") and "of 200 iterations" in conv.message
    from_fit = verdict(_summary(0.9), History(loss=_converged()))  # meta_fit's History
    assert _by_topic(from_fit)["Training convergence"] == conv


def test_a_rising_loss_is_a_problem():
    rising = [1.0 + 0.01 * i for i in range(100)]
    conv = _by_topic(verdict(_summary(0.9), {"loss": rising}, config=RunConfig()))[
        "Training convergence"
    ]
    assert conv.status == "problem" and conv.message.startswith("the loss rose (+")
    assert "outer_lr` (this run: 0.001)" in conv.advice and "data scale" in conv.advice
    late = _converged()[:100] + [1.0 + 0.02 * i for i in range(100)]
    conv = _by_topic(verdict(_summary(0.9), late))["Training convergence"]
    assert conv.status == "problem" and "rose again in the second half" in conv.message


def test_a_loss_still_falling_steeply_is_not_converged():
    falling = [10.0 - 0.05 * i for i in range(100)]
    conv = _by_topic(verdict(_summary(0.9), falling))["Training convergence"]
    assert conv.status == "warning" and conv.message.startswith("not converged")
    assert "train longer" in conv.advice


def test_a_noisy_flat_loss_did_not_fall_and_short_traces_are_not_judged():
    g = torch.Generator().manual_seed(1)
    noisy = (1e6 + 1e5 * torch.randn(50, generator=g)).tolist()
    conv = _by_topic(verdict(_summary(0.9), noisy))["Training convergence"]
    assert conv.status == "warning" and "did not fall measurably" in conv.message
    short = _by_topic(verdict(_summary(0.9), [3.0, 2.0, 1.0]))["Training convergence"]
    assert short.status == "warning" and "only 3 meta-iterations" in short.message
    broken = _by_topic(verdict(_summary(0.9), [1.0] * 30 + [math.nan]))
    assert broken["Training convergence"].status == "problem"


# Variational posterior: PSIS k-hat


@pytest.mark.parametrize(
    ("khat", "status", "words"),
    [
        (0.3, "ok", "good: PSIS k-hat 0.30"),
        (0.6, "warning", "usable: PSIS k-hat 0.60"),
        (0.9, "problem", "the variational posterior is not trustworthy: PSIS k-hat 0.90"),
    ],
)
def test_khat_bands(khat, status, words):
    post = _by_topic(verdict(_summary(0.9), khat=khat))["Variational posterior"]
    assert post.status == status and post.message.startswith(words)
    if status == "problem":
        assert "NUTS reference" in post.advice


def test_khat_per_task_from_metrics_json_and_missing_for_variational_learners():
    summary = {"metrics": {"coverage_90": {"mean": 0.9, "ci95": 0.0}}, "khat": [0.2, 0.8, 0.9]}
    post = _by_topic(verdict(summary))["Variational posterior"]
    assert post.status == "problem"
    assert "median PSIS k-hat 0.80 over 3 tasks (67% above 0.7)" in post.message
    mean_only = {"metrics": {"khat": {"mean": 0.4, "ci95": 0.1}}}
    assert _by_topic(verdict(mean_only))["Variational posterior"].status == "ok"
    for learner in ("variational", "bayesian_maml"):
        post = _by_topic(verdict(_summary(0.9), config=RunConfig(learner=learner)))
        assert post["Variational posterior"].status == "missing"
        assert "vi_quality" in post["Variational posterior"].advice


# Classification


def test_class_calibration_from_ece_and_the_reliability_data():
    assert _by_topic(verdict({"ece": 0.02, "accuracy": 0.8}))["Calibration"].status == "ok"
    # always sure (confidence 0.95), right half the time: over-confident
    probs = torch.tensor([[0.95, 0.05]]).expand(200, 2)
    labels = torch.arange(200) % 2
    findings = _by_topic(verdict({"ece": 0.45}, reliability=reliability(probs, labels)))
    cal = findings["Calibration"]
    assert cal.status == "problem" and cal.message.startswith("over-confident")
    assert "mean confidence 95% against accuracy 50%, 45 points too sure" in cal.message
    assert "bayesian_protonet" in cal.advice
    assert "Bias" not in findings  # a regression topic
    unsure = verdict(
        {"ece": 0.1, "accuracy": 0.9},
        reliability=reliability(
            torch.tensor([[0.6, 0.4]]).expand(10, 2), torch.zeros(10, dtype=torch.long)
        ),
    )
    assert unsure[0].status == "warning" and unsure[0].message.startswith("under-confident")


def _with_baseline(ours: float, ours_ci: float, theirs: float, theirs_ci: float) -> dict:
    return {
        "num_tasks": 100,
        "metrics": {"accuracy": {"mean": ours, "ci95": ours_ci}, "ece": {"mean": 0.02, "ci95": 0}},
        "baseline": {
            "name": "1-NN (raw inputs)",
            "metrics": {"accuracy": {"mean": theirs, "ci95": theirs_ci}},
        },
    }


@pytest.mark.parametrize(
    ("ours", "theirs", "status"),
    [
        (0.80, 0.70, "ok"),  # gap 0.10 > hypot(0.02, 0.02) = 0.028
        (0.72, 0.70, "warning"),  # higher by 0.02, inside the intervals
        (0.70, 0.70, "problem"),  # a tie does not beat it
        (0.60, 0.70, "problem"),
    ],
)
def test_the_simple_baseline_is_a_finding_of_classification_runs(ours, theirs, status):
    config = RunConfig(learner="protonet", data="digits")
    found = _by_topic(verdict(_with_baseline(ours, 0.02, theirs, 0.02), config=config))
    finding = found["Against a simple baseline"]
    assert finding.status == status
    assert f"accuracy {ours:.3f} against {theirs:.3f}" in finding.message
    assert finding.message.startswith("protonet")
    assert ("does NOT beat" in finding.message) == (status == "problem")
    if status != "ok":
        assert "augment_classes" in finding.advice
    # a run without a baseline (regression, older folders) has no such finding
    assert "Against a simple baseline" not in _by_topic(verdict({"accuracy": ours, "ece": 0.02}))


def test_format_verdict_counts_and_lists_the_findings():
    findings = [
        Finding("Calibration", "problem", "over-confident: x.", "do y."),
        Finding("Bias", "ok", "unbiased: z."),
        Finding("Training convergence", "warning", "not converged.", "train longer."),
        Finding("Variational posterior", "missing", "no k-hat."),
    ]
    lines = format_verdict(findings)
    assert lines[0] == "**1 problem, 1 warning; 1 topic not assessed.**\n"
    assert lines[1] == "- **Calibration: problem.** Over-confident: x."
    assert lines[2] == "  *What to do:* do y."
    assert "- **Variational posterior: not assessed.** No k-hat." in lines
    assert format_verdict([findings[1]])[0] == "**No problems found.**\n"


# Settings table


def test_settings_apply_to_the_runs_learner_and_data():
    sinusoid = dict(settings_rows(RunConfig(learner="variational", data="sinusoid")))
    for name in ("image_size", "layout", "invert", "n_way", "channels", "glyph_classes"):
        assert name not in sinusoid
    for name in ("path", "group", "x", "inner_lr", "kl_weight", "noise"):
        assert name not in sinusoid
    for name in ("learner", "data", "k_support", "iterations", "hidden", "prior_scale", "seed"):
        assert name in sinusoid
    assert sinusoid["adapt_steps"] == 300 and sinusoid["k_query"] == "default (10)"
    protonet = dict(settings_rows(RunConfig(learner="protonet", data="digits")))
    assert "inner_lr" not in protonet
    assert protonet["n_way"] == 5 and protonet["backbone"] == "mlp"


# End to end


def test_bayesmeta_report_opens_with_the_verdict(tmp_path, capsys):
    config = tmp_path / "tiny.toml"
    config.write_text(
        'learner = "maml"\ndata = "sinusoid"\nhidden = [8]\niterations = 20\n'
        "meta_batch_size = 2\ninner_steps = 1\nadapt_steps = 1\neval_tasks = 4\n"
        "eval_k_query = 20\n"
    )
    out = tmp_path / "runs"
    assert main(["run", str(config), "--out", str(out), "--no-progress"]) == 0
    (run_dir,) = list(out.iterdir())
    capsys.readouterr()
    assert main(["report", str(run_dir), "--tasks", "4", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "verdict" in printed and "  Calibration: " in printed
    assert "  Training convergence: " in printed
    text = (run_dir / "report" / "report.md").read_text()
    title, rest = text.split("\n", 1)
    assert title == "# Report: maml on sinusoid, 5-shot"
    assert rest.lstrip().startswith("## Verdict\n")
    verdict_part = rest.split("## Run")[0]
    assert "- **Calibration: " in verdict_part and "- **Bias: " in verdict_part
    assert "- **Training convergence: " in verdict_part
    assert "Variational posterior" not in verdict_part  # MAML has no variational posterior
    assert "| hidden | (8,) |" in text and "| image_size |" not in text
    assert "| eval_k_query | 20 |" in text
