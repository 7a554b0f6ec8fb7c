"""The learner-agnostic parts of meta-training.

- :mod:`~bayesmeta.training.loop`: the meta-training loop (:class:`History`,
  progress, stops at a non-finite loss).
- :mod:`~bayesmeta.training.state`: training checkpoints to resume ``meta_fit``.
- :mod:`~bayesmeta.training.distributed`: data-parallel meta-training over
  ``torch.distributed`` ranks.
"""

from bayesmeta.training.loop import History, check_finite, run_meta_fit
from bayesmeta.training.state import load_training_state, resume, save_training_state

__all__ = [
    "History",
    "check_finite",
    "load_training_state",
    "resume",
    "run_meta_fit",
    "save_training_state",
]
