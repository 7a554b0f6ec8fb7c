"""Reading and writing learners and run folders."""

from bayesmeta.io.checkpoint import CheckpointError, build_learner, load_learner, save_learner

__all__ = ["CheckpointError", "build_learner", "load_learner", "save_learner"]
