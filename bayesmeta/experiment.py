"""Deprecated: moved to :mod:`bayesmeta.runs.experiment`; import from there.

The old path keeps working, with a ``DeprecationWarning``, for one release.
"""

from bayesmeta._deprecated import moved
from bayesmeta.runs.experiment import (
    EVAL_SEED,
    NOISE_FIT_SEED,
    RunConfig,
    RunResult,
    evaluate_held_out,
    format_table,
    resume_run,
    run_experiment,
)

__all__ = [
    "EVAL_SEED",
    "NOISE_FIT_SEED",
    "RunConfig",
    "RunResult",
    "evaluate_held_out",
    "format_table",
    "resume_run",
    "run_experiment",
]

moved(__name__, "bayesmeta.runs.experiment")
