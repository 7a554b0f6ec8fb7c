"""Reading and writing learners and run folders."""

from bayesmeta.io.checkpoint import CheckpointError, build_learner, load_learner, save_learner
from bayesmeta.training.state import load_training_state, save_training_state

__all__ = [
    "CheckpointError",
    "build_learner",
    "load_learner",
    "load_training_state",
    "save_learner",
    "save_training_state",
]
