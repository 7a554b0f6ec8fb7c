"""Whole experiments, as ``bayesmeta run`` does them: config, data, run folder, results.

- :mod:`~bayesmeta.runs.config`: :class:`RunConfig`, the validated settings of a run,
  and the learner and data it builds.
- :mod:`~bayesmeta.runs.config_file`: run configs in TOML.
- :mod:`~bayesmeta.runs.learners`: the learners a run can name, registered with
  their builders; :mod:`~bayesmeta.runs.transfer`: a transfer run's source network.
- :mod:`~bayesmeta.runs.data`: the task data of a run.
- :mod:`~bayesmeta.runs.folder`: the run folder, its files, and reading them back.
- :mod:`~bayesmeta.runs.experiment`: meta-train, evaluate, write the run folder.
"""

from bayesmeta.runs import learners as learners  # registers the learners a run can name
from bayesmeta.runs.config import RunConfig
from bayesmeta.runs.config_file import ConfigError, load_config
from bayesmeta.runs.experiment import RunResult, resume_run, run_experiment
from bayesmeta.runs.folder import RunFolderError

__all__ = [
    "ConfigError",
    "RunConfig",
    "RunFolderError",
    "RunResult",
    "load_config",
    "resume_run",
    "run_experiment",
]
