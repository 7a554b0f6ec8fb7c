"""What the verdict's findings share: the status, the thresholds, the :class:`Finding` record."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from bayesmeta.runs.config import RunConfig

__all__ = [
    "BIAS_OK",
    "BIAS_WARN",
    "COVERAGE_OK",
    "COVERAGE_WARN",
    "ECE_OK",
    "ECE_WARN",
    "Finding",
    "Status",
]

Status = Literal["ok", "warning", "problem", "missing"]

#: 90% intervals covering a share of query points in this range are calibrated.
COVERAGE_OK = (0.85, 0.95)
#: Outside :data:`COVERAGE_OK` but inside this range: a warning; beyond it, a problem.
COVERAGE_WARN = (0.75, 0.98)
#: Expected calibration error of class predictions below this is calibrated ...
ECE_OK = 0.05
#: ... and up to this a warning; above it, a problem.
ECE_WARN = 0.15
#: Mean PIT within this of 0.5 is unbiased ...
BIAS_OK = 0.05
#: ... and within this a warning; beyond it, a problem.
BIAS_WARN = 0.10
#: Standard deviation of uniform PIT values, ``1 / sqrt(12)``.
_PIT_STD = 1 / math.sqrt(12)
#: Fewer loss values than this are too few to judge convergence (2 per 10% window).
_MIN_ITERATIONS = 20
#: Regression learners whose intervals come from a noise scale fitted after meta-training.
_POINT_LEARNERS = ("maml", "fomaml", "reptile")
#: Learners with a Gaussian task posterior that ``vi_quality`` can score.
_VARIATIONAL_LEARNERS = ("variational", "bayesian_maml")


@dataclass(frozen=True)
class Finding:
    """One conclusion of the verdict.

    Attributes
    ----------
    topic : str
        What it is about: ``"Calibration"``, ``"Bias"``, ``"Training convergence"`` or
        ``"Variational posterior"``.
    status : str
        ``"ok"``, ``"warning"``, ``"problem"``, or ``"missing"`` when the run folder
        lacks the numbers to judge the topic.
    message : str
        What the numbers say, with the numbers.
    advice : str
        What to change (empty when there is nothing to do).

    """

    topic: str
    status: Status
    message: str
    advice: str = ""


def _iterations(config: RunConfig | None) -> str:
    return "" if config is None else f" (this run: {config.meta_iterations} meta-iterations)"


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"
