"""The verdict on a run: plain findings a user can act on, from numbers the run folder holds.

:func:`verdict` turns a run's held-out metrics, its loss trace and, where the run folder
gives them, PIT values, reliability-diagram data and PSIS k-hat values into one
:class:`Finding` per topic: calibration, bias, training convergence and the quality of
the variational posterior. Each finding says ``"ok"``, ``"warning"`` or ``"problem"``, by
how much, and what to change; a topic whose numbers the run does not hold says
``"missing"`` rather than guessing. :func:`format_verdict` writes them as markdown (the
top of ``report.md``). The function is pure: no files, no model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from bayesmeta.diagnostics.findings import (
    _PIT_STD,
    _POINT_LEARNERS,
    _VARIATIONAL_LEARNERS,
    BIAS_OK,
    BIAS_WARN,
    COVERAGE_OK,
    COVERAGE_WARN,
    ECE_OK,
    ECE_WARN,
    Finding,
    Status,
    _iterations,
    _pct,
)
from bayesmeta.diagnostics.verdict_training import convergence_finding, posterior_finding
from bayesmeta.runs.config import RunConfig
from bayesmeta.runs.experiment import BASELINE_ADVICE, compare_with_baseline
from bayesmeta.scoring.reliability import Reliability
from bayesmeta.training.loop import History

__all__ = [
    "BIAS_OK",
    "BIAS_WARN",
    "COVERAGE_OK",
    "COVERAGE_WARN",
    "ECE_OK",
    "ECE_WARN",
    "Finding",
    "Status",
    "format_verdict",
    "verdict",
]


def verdict(
    summary: Mapping[str, Any],
    history: Sequence[float] | Mapping[str, Any] | History | None = None,
    *,
    config: RunConfig | None = None,
    pit: Tensor | Sequence[float] | None = None,
    reliability: Reliability | None = None,
    khat: float | Sequence[float] | Tensor | None = None,
) -> list[Finding]:
    """The findings on a run, one per topic the numbers allow.

    Parameters
    ----------
    summary
        The held-out metrics: a ``metrics.json`` (``{"metrics": {...}, "num_tasks": T}``)
        or its ``metrics`` table; each metric a ``{"mean": m, "ci95": h}``, a
        ``(mean, ci)`` pair or a number. Read: ``coverage_90`` (regression), ``ece`` and
        ``accuracy`` (classification), and ``khat`` (PSIS k-hat) if present; a top-level
        ``khat`` list (one value per task) also counts, and so does a top-level
        ``baseline`` (``{"name": ..., "metrics": {...}}``, the 1-NN a classification run
        scores on the same tasks).
    history
        The meta-training losses, one per iteration: a list, ``history.json`` or the
        :class:`~bayesmeta.learners.training.History` of ``meta_fit`` (its ``loss``).
    config
        The run's config: the learner (which topics apply, which advice fits) and the
        current values the advice refers to.
    pit
        PIT values of held-out query targets (regression): the bias finding, and the
        shape of the calibration error. Pooled ``[P]``, or ``[T, P]`` per task, which
        also tells whether a bias stands out from the spread between tasks.
    reliability
        Reliability-diagram data (classification): over- or under-confidence.
    khat
        PSIS k-hat per task (or one value); overrides the one in ``summary``.

    Returns
    -------
    list of Finding
        Calibration, bias (regression), the comparison with a simple baseline (when
        ``summary`` is a ``metrics.json`` holding one, as classification runs write),
        training convergence, and the variational
        posterior (for ``variational`` and ``bayesian_maml``, or whenever a k-hat is
        given), in that order.

    """
    table = summary.get("metrics", summary)
    if not isinstance(table, Mapping):
        table = {}
    num_tasks = summary.get("num_tasks") if "metrics" in summary else None
    pit_2d = None if pit is None else torch.as_tensor(pit, dtype=torch.float64)
    pit_t = None if pit_2d is None else pit_2d.reshape(-1)
    classification = (
        reliability is not None
        or "ece" in table
        or "accuracy" in table
        or (config is not None and config.classification)
    )
    findings = [
        _class_calibration(table, reliability, config)
        if classification
        else _calibration(table, pit_t, num_tasks, config)
    ]
    if not classification:
        findings.append(_bias(pit_2d))
    baseline = summary.get("baseline")
    if classification and isinstance(baseline, Mapping):
        findings.append(_against_baseline(table, baseline, config))
    if isinstance(history, History):
        losses: Any = history.loss
    else:
        losses = history.get("loss", []) if isinstance(history, Mapping) else history
    findings.append(
        convergence_finding(None if losses is None else [float(v) for v in losses], config)
    )
    if khat is None:
        khat = summary.get("khat", _mean(table, "khat"))
    learner = None if config is None else config.learner
    if khat is not None or learner in _VARIATIONAL_LEARNERS:
        findings.append(posterior_finding(khat, learner))
    return findings


def _mean(table: Mapping[str, Any], name: str) -> float | None:
    """The mean of metric ``name`` in any of the accepted forms, or ``None``."""
    value = _entry(table, name)
    return None if value is None else value[0]


def _entry(table: Mapping[str, Any], name: str) -> tuple[float, float | None] | None:
    value = table.get(name)
    if isinstance(value, Mapping):
        mean, ci = value.get("mean"), value.get("ci95")
        return None if mean is None else (float(mean), None if ci is None else float(ci))
    if isinstance(value, (tuple, list)) and value:
        return float(value[0]), float(value[1]) if len(value) > 1 else None
    if isinstance(value, (int, float)):
        return float(value), None
    return None


def _calibration(
    table: Mapping[str, Any], pit: Tensor | None, num_tasks: Any, config: RunConfig | None
) -> Finding:
    topic = "Calibration"
    entry = _entry(table, "coverage_90")
    where = "of query points"
    if entry is None and pit is not None and pit.numel():
        inside = float(((pit >= 0.05) & (pit <= 0.95)).double().mean())
        entry, where = (inside, None), f"of {pit.numel()} query points (from their PIT)"
    if entry is None:
        return Finding(
            topic,
            "missing",
            "the run has no 90% interval coverage (`coverage_90`) and no "
            "PIT values; its predictions may have no noise model, hence no intervals.",
        )
    cov, ci = entry
    lo, hi = COVERAGE_OK
    spread = ""
    if ci is not None:
        tasks = f" over {num_tasks} held-out tasks" if num_tasks is not None else ""
        spread = f" (± {ci:.2f}{tasks})"
    shape = ""
    if pit is not None and pit.numel() > 1:
        std = float(pit.std())
        if std > 1.1 * _PIT_STD:
            shape = f"; the PIT histogram is U-shaped (std {std:.3f}, uniform {_PIT_STD:.3f})"
        elif std < 0.9 * _PIT_STD:
            shape = f"; the PIT histogram is hump-shaped (std {std:.3f}, uniform {_PIT_STD:.3f})"
    covers = f"90% intervals cover {_pct(cov)} {where}{spread}"
    gap = round(100 * abs(cov - 0.9))
    if lo <= cov <= hi:
        return Finding(topic, "ok", f"calibrated: {covers}{shape}.")
    if ci is not None and cov - ci <= hi and cov + ci >= lo:
        shape += f"; the 95% CI reaches {_pct(lo)}-{_pct(hi)}, so more held-out tasks may settle it"
    status: Status = "warning" if COVERAGE_WARN[0] <= cov <= COVERAGE_WARN[1] else "problem"
    if cov < lo:
        message = f"over-confident: {covers}, {gap} points short of 90%{shape}."
        return Finding(topic, status, message, _over_confident_advice(config))
    message = f"under-confident (intervals too wide): {covers}, {gap} points above 90%{shape}."
    return Finding(topic, status, message, _under_confident_advice(config))


def _over_confident_advice(config: RunConfig | None) -> str:
    learner = None if config is None else config.learner
    longer = f"train longer{_iterations(config)}"
    if learner in _POINT_LEARNERS:
        return (
            f"{longer}; the intervals come from one noise scale fitted after meta-training "
            "and carry no weight uncertainty: a Bayesian learner (`learner = "
            '"bayesian_maml"` or `"variational"`) widens them where the fit is uncertain.'
        )
    if learner == "bayesian_maml":
        return (
            f'{longer}; a larger `prior_scale`; `noise = "student_t"` for heavy-tailed '
            'targets; or `learner = "variational"`, which fits each task\'s posterior by SVI.'
        )
    if learner == "variational":
        steps = "" if config is None else f" (this run: {config.adapt_steps})"
        return f"{longer}; a larger `prior_scale`; more SVI steps per task, `adapt_steps`{steps}."
    return (
        f"{longer}; a larger noise or prior scale; a heavy-tailed likelihood "
        '(`likelihood="student_t"`); or a Bayesian learner such as VariationalMetaLearner.'
    )


def _under_confident_advice(config: RunConfig | None) -> str:
    learner = None if config is None else config.learner
    longer = f"train longer{_iterations(config)}, so the learned noise and prior shrink"
    if learner in _POINT_LEARNERS:
        return (
            f"{longer}; a few large errors inflate the fitted noise scale, so check the "
            "held-out data for outliers or a different scale."
        )
    if learner == "bayesian_maml":
        return f'{longer}; a smaller `prior_scale`; `noise = "student_t"` if a few outliers.'
    return f"{longer}; a smaller prior scale (`prior_scale`)."


def _class_calibration(
    table: Mapping[str, Any], rel: Reliability | None, config: RunConfig | None
) -> Finding:
    topic = "Calibration"
    ece = _mean(table, "ece")
    if ece is None and rel is not None and int(rel.count.sum()):
        ece = rel.ece
    if ece is None:
        return Finding(topic, "missing", "the run has no expected calibration error (`ece`).")
    conf = acc = None
    if rel is not None and int(rel.count.sum()):
        n = rel.count.double().sum()
        conf = float((rel.count * rel.confidence.double().nan_to_num(0.0)).sum() / n)
        acc = float((rel.count * rel.accuracy.double().nan_to_num(0.0)).sum() / n)
    if acc is None:
        acc = _mean(table, "accuracy")
    said = f"expected calibration error {ece:.3f}"
    if conf is not None and acc is not None:
        said += f"; mean confidence {_pct(conf)} against accuracy {_pct(acc)}"
    if ece < ECE_OK:
        return Finding(topic, "ok", f"calibrated: {said}.")
    status: Status = "warning" if ece <= ECE_WARN else "problem"
    longer = f"train longer{_iterations(config)}"
    if conf is None or acc is None:
        return Finding(
            topic,
            status,
            f"mis-calibrated: {said} (at least {ECE_OK}); the run holds no mean confidence "
            "to tell over- from under-confidence.",
            f"{longer}; see the reliability diagram.",
        )
    learner = None if config is None else config.learner
    if conf > acc:
        bayes = (
            ""
            if learner in ("bayesian_protonet", "bayesian_maml")
            else '; a Bayesian learner (`learner = "bayesian_protonet"` or "bayesian_maml") '
            "averages over weights and tempers its confidence"
        )
        message = f"over-confident: {said}, {round(100 * (conf - acc))} points too sure."
        return Finding(topic, status, message, f"{longer}; more shots per class{bayes}.")
    message = f"under-confident: {said}, {round(100 * (acc - conf))} points too unsure."
    return Finding(topic, status, message, f"{longer}; a smaller `prior_scale`.")


def _against_baseline(
    table: Mapping[str, Any], baseline: Mapping[str, Any], config: RunConfig | None
) -> Finding:
    """The finding on whether the learner beats the baseline scored on the same tasks.

    ``ok`` when its accuracy is higher by more than the two 95% half-widths combined
    in quadrature (conservative for paired tasks), ``warning`` when higher by less,
    ``problem`` when not higher.
    """
    topic = "Against a simple baseline"
    theirs_table = baseline.get("metrics", {})
    ours = _entry(table, "accuracy")
    theirs = _entry(theirs_table, "accuracy") if isinstance(theirs_table, Mapping) else None
    if ours is None or theirs is None:
        return Finding(topic, "missing", "the run holds no accuracy for it or for the baseline.")
    learner = "the learner" if config is None else config.learner
    sentence = compare_with_baseline(learner, ours[0], theirs[0])
    if ours[0] <= theirs[0]:
        return Finding(topic, "problem", sentence, f"try {BASELINE_ADVICE}.")
    gap = math.hypot(ours[1] or 0.0, theirs[1] or 0.0)
    if ours[0] - theirs[0] <= gap:
        return Finding(
            topic,
            "warning",
            f"{sentence[:-1]}, but by less than the 95% intervals' combined half-width "
            f"({gap:.3f}).",
            "score more held-out tasks (`eval_tasks`) to tell them apart, or try "
            f"{BASELINE_ADVICE}.",
        )
    return Finding(topic, "ok", sentence)


def _bias(pit: Tensor | None) -> Finding:
    topic = "Bias"
    if pit is None or not pit.numel():
        return Finding(
            topic,
            "missing",
            "it needs the PIT values of held-out targets (`bayesmeta report` computes them).",
        )
    mean = float(pit.mean())
    above = float((pit > 0.5).double().mean())
    said = (
        f"mean PIT {mean:.3f} (ideal 0.5); {_pct(above)} of {pit.numel()} query "
        "targets lie above the predictive median"
    )
    off = abs(mean - 0.5)
    if off <= BIAS_OK:
        return Finding(topic, "ok", f"unbiased: {said}.")
    if pit.dim() == 2 and pit.shape[0] > 1:  # [T, P]: is the bias beyond the spread of tasks?
        task_means = pit.mean(dim=1)
        se = float(task_means.std()) / math.sqrt(task_means.numel())
        if off <= 2 * se:
            said += (
                f", within the spread of {task_means.numel()} tasks (± {2 * se:.3f}): "
                "more held-out tasks may settle it"
            )
    status: Status = "warning" if off <= BIAS_WARN else "problem"
    way = "low" if mean > 0.5 else "high"
    return Finding(
        topic,
        status,
        f"predictions biased {way}: {said}.",
        "check that the held-out tasks come from the meta-training distribution (scale, "
        "offset, units of the targets) and standardise the targets; train longer.",
    )


_LABEL = {"ok": "ok", "warning": "warning", "problem": "problem", "missing": "not assessed"}


def format_verdict(findings: Sequence[Finding]) -> list[str]:
    """The findings as markdown lines: a count, then one bullet per finding with its advice."""
    counts = []
    for status, word in (("problem", "problem"), ("warning", "warning")):
        c = sum(f.status == status for f in findings)
        if c:
            counts.append(f"{c} {word}{'s' if c > 1 else ''}")
    head = ", ".join(counts) if counts else "No problems found"
    missing = sum(f.status == "missing" for f in findings)
    if missing:
        head += f"; {missing} topic{'s' if missing > 1 else ''} not assessed"
    lines = [f"**{head}.**\n"]
    for f in findings:
        lines.append(f"- **{f.topic}: {_LABEL[f.status]}.** {_capital(f.message)}")
        if f.advice:
            lines.append(f"  *What to do:* {f.advice}")
    return lines


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]
