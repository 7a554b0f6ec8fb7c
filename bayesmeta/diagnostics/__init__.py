"""Posterior diagnostics: ArviZ export, VI quality, reference posteriors, calibration.

- :func:`to_inference_data`: any task posterior (and query data) as an
  ``arviz.InferenceData`` (the only module that speaks ArviZ).
- :func:`vi_quality` / :func:`psis_diagnostic`: the PSIS k-hat of variational
  task posteriors against their exact unnormalised posteriors.
- :func:`reference_posterior` / :func:`nuts_posterior`: NUTS on a small model's
  weights, with R-hat and ESS; :func:`compare_predictives` measures the gap.
- :func:`simulation_based_calibration` / :func:`learner_sbc`: rank statistics of
  the inference on data simulated from the learned prior.
- :func:`diagnose_run` / :func:`write_report`: calibration figures and a summary
  of a ``bayesmeta run`` folder (``bayesmeta report RUN_DIR``); :func:`verdict`: the
  report's plain findings (:class:`Finding`) on calibration, bias, convergence and the
  variational posterior.
"""

from bayesmeta.diagnostics.inference_data import to_inference_data
from bayesmeta.diagnostics.reference import (
    ReferencePosterior,
    compare_predictives,
    nuts_posterior,
    reference_posterior,
)
from bayesmeta.diagnostics.report import RunDiagnostics, RunFolderError, diagnose_run, write_report
from bayesmeta.diagnostics.sbc import SBCResult, learner_sbc, simulation_based_calibration
from bayesmeta.diagnostics.verdict import Finding, verdict
from bayesmeta.diagnostics.vi_quality import (
    KHAT_GOOD,
    KHAT_USABLE,
    VIQuality,
    khat_reading,
    log_joint,
    pareto_khat,
    psis_diagnostic,
    vi_quality,
)

__all__ = [
    "KHAT_GOOD",
    "KHAT_USABLE",
    "Finding",
    "ReferencePosterior",
    "RunDiagnostics",
    "RunFolderError",
    "SBCResult",
    "VIQuality",
    "compare_predictives",
    "diagnose_run",
    "khat_reading",
    "learner_sbc",
    "log_joint",
    "nuts_posterior",
    "pareto_khat",
    "psis_diagnostic",
    "reference_posterior",
    "simulation_based_calibration",
    "to_inference_data",
    "verdict",
    "vi_quality",
    "write_report",
]
